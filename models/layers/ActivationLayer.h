// A standalone element-wise activation (ReLU, LeakyReLU, Sigmoid, Tanh). Dense and Conv2d fuse
// their own; this one is for explicit layer lists and places no fusion reaches.
#pragma once

#include "models/kernels/KernelBackend.h"
#include "models/layers/Layer.h"

namespace dptrain {

class ActivationLayer final : public Layer {
 public:
  explicit ActivationLayer(Activation act, float slope = 0.01f) : act_(act), slope_(slope) {}
  std::string kind() const override;
  Shape setup(const Shape& in, ParamRegistry&) override { return in; }
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
  Activation activation() const { return act_; }
  float slope() const { return slope_; }

 private:
  Activation act_;
  float slope_;
};

}  // namespace dptrain
