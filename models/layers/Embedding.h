// A lookup table from integer ids (stored as floats in the data, as every feature is) to learned
// vectors: a sample of T ids ([T] or [T, 1]) becomes [T, dim], ready for a recurrent layer. Ids
// carry no gradient; the table's gradient is accumulated row by row in id order (deterministic).
#pragma once

#include "models/layers/Layer.h"

namespace dptrain {

class Embedding final : public Layer {
 public:
  Embedding(int64_t vocab, int64_t dim);
  std::string kind() const override { return "embedding"; }
  std::string describe() const override;
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;

 private:
  int64_t vocab_, dim_, steps_ = 0;
  Tensor weight_, dweight_;
};

}  // namespace dptrain
