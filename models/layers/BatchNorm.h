// Batch normalization (Ioffe & Szegedy, 2015) over samples of [features], [channels, length] or
// [channels, height, width]: per-channel batch statistics in train mode, running statistics (model
// buffers, so checkpoints keep them) in eval mode. With sync (the default, docs/design.md rule 5) the
// forward sums and the backward reductions span the global batch over every rank through
// StepContext::cross_rank (one small all-reduce forward, one backward), so N ranks compute what
// one rank computes on the whole batch, up to float summation order.
#pragma once

#include "models/layers/Layer.h"

namespace dptrain {

class BatchNorm final : public Layer {
 public:
  explicit BatchNorm(float momentum = 0.1f, float eps = 1e-5f, bool sync = true);
  std::string kind() const override { return "batchnorm"; }
  std::string describe() const override;
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
  float eps() const { return eps_; }
  float momentum() const { return momentum_; }

 private:
  float momentum_, eps_;
  bool sync_;
  int64_t channels_ = 0, hw_ = 1;
  Tensor gamma_, dgamma_, beta_, dbeta_, running_mean_, running_var_;
  // Of the last train forward: sums_ = [sum of x - running mean (c), sum of its squares (c), count]
  // and the batch statistics mean_, var_; reduce_: backward's [sum dy (c), sum dy xhat (c)].
  Workspace<double> sums_, reduce_;
  Tensor mean_, var_;
  double count_ = 0.0;
  bool batch_stats_ = false;  // whether the last forward normalized with batch statistics
};

}  // namespace dptrain
