// A highway layer (Srivastava et al., 2015) over flat features: y = t * h + (1 - t) * x with
// h = act(W_h x + b_h) and the transform gate t = sigmoid(W_t x + b_t). The gate bias starts
// negative (default -1) so the layer begins close to the identity and deep stacks still train.
#pragma once

#include "models/kernels/KernelBackend.h"
#include "models/layers/Layer.h"

namespace dptrain {

class Highway final : public Layer {
 public:
  explicit Highway(Activation act = Activation::relu, float gate_bias = -1.0f, float slope = 0.01f);
  std::string kind() const override { return "highway"; }
  std::string describe() const override;
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
  Activation activation() const { return act_; }
  float slope() const { return slope_; }

 private:
  Activation act_;
  float gate_bias_, slope_;
  int64_t f_ = 0;
  Tensor wh_, dwh_, bh_, dbh_, wt_, dwt_, bt_, dbt_;
  Tensor h_, t_, diff_, dh_, dt_;  // diff_ = h - x
};

}  // namespace dptrain
