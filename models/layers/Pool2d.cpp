#include "models/layers/Pool2d.h"

#include "models/core/Error.h"

namespace dptrain {

Pool2d::Pool2d(Kind kind, int64_t kernel, int64_t stride, int64_t padding)
    : kind_(kind), kernel_(kernel), stride_(stride), padding_(padding) {
  if (kernel < 0 || stride < 0 || padding < 0) fail_input(this->kind() + ": kernel, stride and padding must be >= 0");
}

std::string Pool2d::describe() const {
  return kind() + " k" + std::to_string(g_.kernel_h) + "x" + std::to_string(g_.kernel_w) + " s" +
         std::to_string(g_.stride_h);
}

Shape Pool2d::setup(const Shape& in, ParamRegistry&) {
  if (in.rank() != 3) fail_input(kind() + ": input must be [channels, height, width] per sample, got " + in.str());
  int64_t kh = kernel_ ? kernel_ : in[1], kw = kernel_ ? kernel_ : in[2];
  int64_t sh = stride_ ? stride_ : kh, sw = stride_ ? stride_ : kw;
  g_ = {in[0], in[1], in[2], kh, kw, sh, sw, padding_, padding_, 1, 1};
  if (2 * padding_ > kh || 2 * padding_ > kw) fail_input(kind() + ": padding must be at most half the kernel");
  if (g_.out_h() <= 0 || g_.out_w() <= 0)
    fail_input(kind() + ": kernel " + std::to_string(kh) + " does not fit input " + in.str());
  return {g_.channels, g_.out_h(), g_.out_w()};
}

void Pool2d::forward(const Tensor& in, Tensor& out, const StepContext&) {
  KernelBackend& k = kernels(in.device());
  const int64_t n = in.rows();
  out.resize({n, g_.channels, g_.out_h(), g_.out_w()}, in.device());
  if (kind_ == Kind::max)
    k.max_pool(n, g_, in.data(), out.data(), argmax_.reserve(out.numel(), in.device()));
  else
    k.avg_pool(n, g_, in.data(), out.data());
}

void Pool2d::backward(const Tensor& in, const Tensor&, const Tensor& dout, Tensor* din, const StepContext&) {
  if (!din) return;
  KernelBackend& k = kernels(in.device());
  din->resize(in.shape(), in.device());
  if (kind_ == Kind::max)
    k.max_pool_backward(in.rows(), g_, dout.data(), argmax_.data(), din->data());
  else
    k.avg_pool_backward(in.rows(), g_, dout.data(), din->data());
}

}  // namespace dptrain
