#include "models/layers/ConvTranspose2d.h"

#include "models/core/Error.h"
#include "models/layers/ActivationNames.h"

namespace dptrain {

ConvTranspose2d::ConvTranspose2d(const ConvTranspose2dOptions& options) : o_(options) {
  if (o_.out_channels <= 0 || o_.kernel_h <= 0 || o_.kernel_w <= 0 || o_.stride <= 0 || o_.dilation <= 0)
    fail_input("conv_transpose2d: filters, kernel, stride and dilation must be positive");
  if (o_.padding < 0) fail_input("conv_transpose2d: padding must be >= 0");
  if (o_.output_padding < 0 || o_.output_padding >= o_.stride)
    fail_input("conv_transpose2d: output_padding must be >= 0 and smaller than stride");
}

std::string ConvTranspose2d::describe() const {
  return "conv_transpose2d " + std::to_string(in_channels_) + "->" + std::to_string(o_.out_channels) + " k" +
         std::to_string(o_.kernel_h) + "x" + std::to_string(o_.kernel_w) + " s" + std::to_string(o_.stride) + " p" +
         std::to_string(o_.padding) +
         (o_.activation == Activation::identity ? "" : " " + activation_name(o_.activation));
}

Shape ConvTranspose2d::setup(const Shape& in, ParamRegistry& registry) {
  if (in.rank() != 3) fail_input("conv_transpose2d: input must be [channels, height, width], got " + in.str());
  in_channels_ = in[0];
  in_hw_ = in[1] * in[2];
  const int64_t oh = (in[1] - 1) * o_.stride - 2 * o_.padding + o_.dilation * (o_.kernel_h - 1) + o_.output_padding + 1;
  const int64_t ow = (in[2] - 1) * o_.stride - 2 * o_.padding + o_.dilation * (o_.kernel_w - 1) + o_.output_padding + 1;
  if (oh <= 0 || ow <= 0) fail_input("conv_transpose2d: padding too large for input " + in.str());
  g_ = {o_.out_channels, oh,         ow,         o_.kernel_h, o_.kernel_w, o_.stride,
        o_.stride,       o_.padding, o_.padding, o_.dilation, o_.dilation};
  DPT_ASSERT(g_.out_h() == in[1] && g_.out_w() == in[2], "conv_transpose2d geometry");
  col_rows_ = o_.out_channels * o_.kernel_h * o_.kernel_w;
  // Each output pixel sums about in * kh * kw / stride^2 products.
  const int64_t fan_in = std::max<int64_t>(1, in_channels_ * o_.kernel_h * o_.kernel_w / (o_.stride * o_.stride));
  bool he = o_.activation == Activation::relu || o_.activation == Activation::leaky_relu;
  ParamInit w{he ? ParamInit::he_uniform : ParamInit::xavier_uniform, 0.0f, fan_in, in_channels_};
  registry.declare("weight", {in_channels_, o_.out_channels, o_.kernel_h, o_.kernel_w}, w, &weight_, &dweight_);
  if (o_.bias) registry.declare("bias", {o_.out_channels}, {ParamInit::zeros}, &bias_, &dbias_);
  return {o_.out_channels, oh, ow};
}

void ConvTranspose2d::forward(const Tensor& in, Tensor& out, const StepContext&) {
  KernelBackend& k = kernels(in.device());
  const int64_t n = in.rows(), out_size = o_.out_channels * g_.height * g_.width;
  out.resize({n, o_.out_channels, g_.height, g_.width}, in.device());
  out.fill(0.0f);
  col_.resize({col_rows_, in_hw_}, in.device());
  for (int64_t s = 0; s < n; ++s) {
    // col[out kh kw, HW] = W^T x, then scattered (+=) into the output plane.
    k.gemm(true, false, col_rows_, in_hw_, in_channels_, 1.0f, weight_.data(), col_rows_,
           in.data() + s * in_channels_ * in_hw_, in_hw_, 0.0f, col_.data(), in_hw_);
    k.col2im(g_, col_.data(), out.data() + s * out_size);
  }
  k.bias_activation(o_.activation, o_.slope, n, o_.out_channels, g_.height * g_.width, o_.bias ? bias_.data() : nullptr,
                    out.data());
}

void ConvTranspose2d::backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din,
                               const StepContext& ctx) {
  KernelBackend& k = kernels(in.device());
  const int64_t n = in.rows(), out_hw = g_.height * g_.width, out_size = o_.out_channels * out_hw;
  const float* dz = dout.data();
  if (o_.activation != Activation::identity) {
    dz_.resize(dout.shape(), dout.device());
    k.activation_backward(o_.activation, o_.slope, dout.numel(), out.data(), dout.data(), dz_.data());
    dz = dz_.data();
  }
  if (ctx.parameter_gradients && o_.bias) k.channel_bias_grad(n, o_.out_channels, out_hw, dz, dbias_.data());
  if (din) din->resize(in.shape(), in.device());
  if (!ctx.parameter_gradients && !din) return;
  col_.resize({col_rows_, in_hw_}, in.device());
  for (int64_t s = 0; s < n; ++s) {
    k.im2col(g_, dz + s * out_size, col_.data());
    const float* x = in.data() + s * in_channels_ * in_hw_;
    if (ctx.parameter_gradients)
      k.gemm(false, true, in_channels_, col_rows_, in_hw_, 1.0f, x, in_hw_, col_.data(), in_hw_, 1.0f, dweight_.data(),
             col_rows_);
    if (din)
      k.gemm(false, false, in_channels_, in_hw_, col_rows_, 1.0f, weight_.data(), col_rows_, col_.data(), in_hw_, 0.0f,
             din->data() + s * in_channels_ * in_hw_, in_hw_);
  }
}

}  // namespace dptrain
