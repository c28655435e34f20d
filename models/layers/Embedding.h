// A lookup table from integer ids (stored as floats in the data, as every feature is) to learned
// vectors: a sample of T ids ([T] or [T, 1]) becomes [T, dim], ready for a recurrent layer. Ids
// carry no gradient; the table's gradient is accumulated row by row in id order (deterministic).
// With a padding id, forward also writes which steps are padding into a SequenceMask that the
// attention and pooling layers after it read.
#pragma once

#include <memory>

#include "models/layers/Layer.h"
#include "models/layers/SequenceMask.h"

namespace dptrain {

class Embedding final : public Layer {
 public:
  // init_std: the table starts N(0, init_std^2) (1, as PyTorch; GPT-style models use 0.02).
  explicit Embedding(int64_t vocab, int64_t dim, float init_std = 1.0f);
  // pad_id >= 0: steps holding that id are padding, recorded in *mask on every forward.
  Embedding(int64_t vocab, int64_t dim, float init_std, int64_t pad_id, std::shared_ptr<SequenceMask> mask);
  std::string kind() const override { return "embedding"; }
  std::string describe() const override;
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
  // The table and its gradient, [vocab, dim] (an output layer with tied weights uses them).
  Tensor& weight() { return weight_; }
  Tensor& weight_grad() { return dweight_; }
  int64_t vocab() const { return vocab_; }
  int64_t dim() const { return dim_; }
  int64_t pad_id() const { return pad_id_; }  // -1: no padding id

 private:
  int64_t vocab_, dim_, steps_ = 0;
  float init_std_;
  int64_t pad_id_ = -1;
  std::shared_ptr<SequenceMask> mask_;
  Tensor weight_, dweight_;
};

}  // namespace dptrain
