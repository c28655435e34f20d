// Transposed 2-D convolution over NCHW (the adjoint of Conv2d, "deconvolution" in decoders and
// GAN generators), weight [in, out, kh, kw] as in PyTorch. Forward is Conv2d's input-gradient
// pass: a GEMM to columns, then col2im into the output; backward uses im2col, so it needs no
// kernels of its own. Output size (H - 1) stride - 2 padding + dilation (k - 1) + output_padding + 1.
#pragma once

#include "models/kernels/KernelBackend.h"
#include "models/layers/Layer.h"

namespace dptrain {

struct ConvTranspose2dOptions {
  int64_t out_channels = 1;
  int64_t kernel_h = 3, kernel_w = 3;
  int64_t stride = 1, padding = 0, output_padding = 0, dilation = 1;
  bool bias = true;
  Activation activation = Activation::identity;
  float slope = 0.01f;
};

class ConvTranspose2d final : public Layer {
 public:
  explicit ConvTranspose2d(const ConvTranspose2dOptions& options);
  std::string kind() const override { return "conv_transpose2d"; }
  std::string describe() const override;
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
  // What it computes, for exporters (storage/export); in_channels is known after setup.
  const ConvTranspose2dOptions& options() const { return o_; }
  int64_t in_channels() const { return in_channels_; }

 private:
  ConvTranspose2dOptions o_;
  int64_t in_channels_ = 0, in_hw_ = 0, col_rows_ = 0;  // col_rows_ = out * kh * kw
  Conv2dGeometry g_{};                                  // the output seen as the input of the matching convolution
  Tensor weight_, dweight_, bias_, dbias_;
  Tensor col_, dz_;
};

}  // namespace dptrain
