#include "models/layers/Upsample2d.h"

#include "models/core/Error.h"
#include "models/kernels/KernelBackend.h"

namespace dptrain {

Upsample2d::Upsample2d(int64_t scale_h, int64_t scale_w) : sh_(scale_h), sw_(scale_w) {
  if (scale_h <= 0 || scale_w <= 0) fail_input("upsample2d: scale must be positive");
}

std::string Upsample2d::describe() const { return "upsample2d x" + std::to_string(sh_) + "x" + std::to_string(sw_); }

Shape Upsample2d::setup(const Shape& in, ParamRegistry&) {
  if (in.rank() != 3) fail_input("upsample2d: input must be [channels, height, width], got " + in.str());
  c_ = in[0];
  h_ = in[1];
  w_ = in[2];
  return {c_, h_ * sh_, w_ * sw_};
}

void Upsample2d::forward(const Tensor& in, Tensor& out, const StepContext&) {
  out.resize({in.rows(), c_, h_ * sh_, w_ * sw_}, in.device());
  kernels(in.device()).upsample_nearest(in.rows() * c_, h_, w_, sh_, sw_, in.data(), out.data());
}

void Upsample2d::backward(const Tensor& in, const Tensor&, const Tensor& dout, Tensor* din, const StepContext&) {
  if (!din) return;
  din->resize(in.shape(), in.device());
  kernels(in.device()).upsample_nearest_backward(in.rows() * c_, h_, w_, sh_, sw_, dout.data(), din->data());
}

}  // namespace dptrain
