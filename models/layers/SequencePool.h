// The mean over a sequence's steps, [T, dim] -> [dim], leaving out padding steps (SequenceMask):
// how a Transformer classifier turns its per-step outputs into one vector per sample.
#pragma once

#include <memory>

#include "models/layers/Layer.h"
#include "models/layers/SequenceMask.h"

namespace dptrain {

class SequencePool final : public Layer {
 public:
  explicit SequencePool(std::shared_ptr<const SequenceMask> mask = nullptr) : mask_(std::move(mask)) {}
  std::string kind() const override { return "mean_pool"; }
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
  bool masked() const { return mask_ != nullptr; }  // padding steps are left out of the mean

 private:
  std::shared_ptr<const SequenceMask> mask_;
  int64_t steps_ = 0, dim_ = 0;
};

}  // namespace dptrain
