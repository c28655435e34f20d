// GELU, x Phi(x) in its exact (erf) form as PyTorch's default: the Transformer MLP's activation.
// Its own layer rather than an Activation kind because its derivative needs the input, not the
// output that the fused activations keep.
#pragma once

#include "models/layers/Layer.h"

namespace dptrain {

class Gelu final : public Layer {
 public:
  std::string kind() const override { return "gelu"; }
  Shape setup(const Shape& in, ParamRegistry&) override { return in; }
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
};

}  // namespace dptrain
