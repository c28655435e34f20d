#include "models/layers/Conv2d.h"

#include "models/core/Error.h"
#include "models/layers/ActivationNames.h"

namespace dptrain {

Conv2d::Conv2d(const Conv2dOptions& options) : o_(options) {
  auto positive = [](int64_t v, const char* what) {
    if (v <= 0) fail_input(std::string("conv2d: ") + what + " must be positive, got " + std::to_string(v));
  };
  positive(o_.out_channels, "out_channels");
  positive(o_.kernel_h, "kernel");
  positive(o_.kernel_w, "kernel");
  positive(o_.stride, "stride");
  positive(o_.dilation, "dilation");
  positive(o_.groups, "groups");
  if (o_.padding < 0) fail_input("conv2d: padding must be >= 0");
}

std::string Conv2d::describe() const {
  return "conv2d " + std::to_string(g_.channels) + "->" + std::to_string(o_.out_channels) + " k" +
         std::to_string(o_.kernel_h) + "x" + std::to_string(o_.kernel_w) + " s" + std::to_string(o_.stride) + " p" +
         std::to_string(o_.padding) + (o_.dilation > 1 ? " d" + std::to_string(o_.dilation) : "") +
         (o_.groups > 1 ? " g" + std::to_string(o_.groups) : "") +
         (o_.activation == Activation::identity ? "" : " " + activation_name(o_.activation));
}

Shape Conv2d::setup(const Shape& in, ParamRegistry& registry) {
  if (in.rank() != 3)
    fail_input("conv2d: input must be [channels, height, width] per sample, got " + in.str() +
               " (reshape flat features with a 'reshape' layer)");
  g_ = {in[0],     in[1],      in[2],      o_.kernel_h, o_.kernel_w, o_.stride,
        o_.stride, o_.padding, o_.padding, o_.dilation, o_.dilation};
  if (g_.channels % o_.groups || o_.out_channels % o_.groups)
    fail_input("conv2d: groups = " + std::to_string(o_.groups) + " must divide in channels (" +
               std::to_string(g_.channels) + ") and out_channels (" + std::to_string(o_.out_channels) + ")");
  if (g_.out_h() <= 0 || g_.out_w() <= 0)
    fail_input("conv2d: kernel " + std::to_string(o_.kernel_h) + "x" + std::to_string(o_.kernel_w) +
               " does not fit input " + in.str() + " with padding " + std::to_string(o_.padding));
  spec_ = {g_, o_.out_channels, o_.groups};
  out_hw_ = g_.out_h() * g_.out_w();
  col_rows_ = g_.channels / o_.groups * o_.kernel_h * o_.kernel_w;
  bool he = o_.activation == Activation::relu || o_.activation == Activation::leaky_relu;
  ParamInit w{he ? ParamInit::he_uniform : ParamInit::xavier_uniform, 0.0f, col_rows_,
              o_.out_channels / o_.groups * o_.kernel_h * o_.kernel_w};
  registry.declare("weight", {o_.out_channels, g_.channels / o_.groups, o_.kernel_h, o_.kernel_w}, w, &weight_,
                   &dweight_);
  if (o_.bias) registry.declare("bias", {o_.out_channels}, {ParamInit::zeros}, &bias_, &dbias_);
  return {o_.out_channels, g_.out_h(), g_.out_w()};
}

void Conv2d::forward(const Tensor& in, Tensor& out, const StepContext&) {
  KernelBackend& k = kernels(in.device());
  out.resize({in.rows(), o_.out_channels, g_.out_h(), g_.out_w()}, in.device());
  k.conv2d_forward(spec_, in.rows(), in.data(), weight_.data(), o_.bias ? bias_.data() : nullptr, o_.activation,
                   o_.slope, out.data(), scratch_);
}

void Conv2d::backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) {
  KernelBackend& k = kernels(in.device());
  if (din) din->resize(in.shape(), in.device());
  const bool params = ctx.parameter_gradients;
  k.conv2d_backward(spec_, in.rows(), in.data(), weight_.data(), out.data(), dout.data(), o_.activation, o_.slope,
                    din ? din->data() : nullptr, params ? dweight_.data() : nullptr,
                    params && o_.bias ? dbias_.data() : nullptr, scratch_);
}

}  // namespace dptrain
