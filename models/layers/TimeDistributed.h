// Applies one layer to every step of a sequence [T, ...] with shared parameters (Keras's
// TimeDistributed): the batch [n, T, ...] is viewed as [n T, ...], which costs no copy because
// samples are stored step after step. Used after a recurrent layer with return_sequences for
// per-step outputs (sequence-to-sequence of equal length).
#pragma once

#include <memory>

#include "models/layers/Layer.h"

namespace dptrain {

class TimeDistributed final : public Layer {
 public:
  explicit TimeDistributed(std::unique_ptr<Layer> inner);
  std::string kind() const override { return "time_distributed"; }
  std::string describe() const override { return "time_distributed " + inner_->describe(); }
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
  Layer& inner() { return *inner_; }

 private:
  std::unique_ptr<Layer> inner_;
  int64_t steps_ = 0;
  Shape step_in_, step_out_;
  Tensor inner_out_, dinner_;
};

}  // namespace dptrain
