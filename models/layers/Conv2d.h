// 2-D convolution over NCHW with padding, stride, dilation and groups (groups = channels gives a
// depthwise convolution), weight [out, in/groups, kh, kw] as in PyTorch, activation fused into the
// bias pass. The whole batch goes to the backend's conv2d_forward/backward in one call, so the
// backend picks the algorithm and the threading (im2col + GEMM per sample is the reference).
#pragma once

#include "models/kernels/KernelBackend.h"
#include "models/layers/Layer.h"

namespace dptrain {

struct Conv2dOptions {
  int64_t out_channels = 1;
  int64_t kernel_h = 3, kernel_w = 3;
  int64_t stride = 1, padding = 0, dilation = 1, groups = 1;
  bool bias = true;
  Activation activation = Activation::identity;
  float slope = 0.01f;
};

class Conv2d final : public Layer {
 public:
  explicit Conv2d(const Conv2dOptions& options);
  std::string kind() const override { return "conv2d"; }
  std::string describe() const override;
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
  // What it computes, for exporters (storage/export); in_channels is known after setup.
  const Conv2dOptions& options() const { return o_; }
  int64_t in_channels() const { return g_.channels; }

 private:
  Conv2dOptions o_;
  Conv2dGeometry g_{};
  Conv2dSpec spec_{};
  int64_t out_hw_ = 0, col_rows_ = 0;  // per group: (in/groups) * kh * kw
  Tensor weight_, dweight_, bias_, dbias_;
  LayerScratch scratch_;  // the backend's workspaces, kept between steps
};

}  // namespace dptrain
