// Layer normalization (Ba et al., 2016) over the last dimension of each sample, as PyTorch's
// nn.LayerNorm(features): a flat sample is normalized as a whole, a sequence [T, F] per step.
// Statistics are per row, so unlike batch norm it needs no running state and no cross-rank sums.
#pragma once

#include "models/layers/Layer.h"

namespace dptrain {

class LayerNorm final : public Layer {
 public:
  explicit LayerNorm(float eps = 1e-5f);
  std::string kind() const override { return "layernorm"; }
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
  float eps() const { return eps_; }

 private:
  float eps_;
  int64_t features_ = 0;
  Tensor gamma_, dgamma_, beta_, dbeta_;
  Tensor mean_, inv_std_, dx_;  // per normalized row
};

}  // namespace dptrain
