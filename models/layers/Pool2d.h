// Max and average pooling over NCHW. One class with a kind: the two share geometry, setup and
// checks and differ only in which kernel they call. Max pooling keeps its argmax indices for
// backward (and for max-unpooling); average pooling counts padding, as PyTorch does by default.
#pragma once

#include "models/kernels/KernelBackend.h"
#include "models/layers/Layer.h"

namespace dptrain {

class Pool2d final : public Layer {
 public:
  enum class Kind { max, average };
  // stride 0 means stride = kernel; kernel 0 means the whole plane (global pooling).
  Pool2d(Kind kind, int64_t kernel, int64_t stride = 0, int64_t padding = 0);
  std::string kind() const override { return kind_ == Kind::max ? "maxpool2d" : "avgpool2d"; }
  std::string describe() const override;
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
  // Argmax per output of the last forward (max pooling), index within its input plane.
  const int32_t* argmax() const { return argmax_.data(); }
  const Conv2dGeometry& geometry() const { return g_; }
  Kind pool_kind() const { return kind_; }
  // Kernel 0: the window is the whole plane (global pooling).
  bool global() const { return kernel_ == 0; }

 private:
  Kind kind_;
  int64_t kernel_, stride_, padding_;
  Conv2dGeometry g_{};
  Workspace<int32_t> argmax_;
};

}  // namespace dptrain
