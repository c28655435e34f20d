// Multi-head scaled dot-product self-attention over a sequence [T, dim] per sample (Vaswani et al.,
// 2017), parameters laid out as PyTorch's nn.MultiheadAttention: one input projection to queries,
// keys and values [3 dim, dim] with its bias, and an output projection [dim, dim] with its bias.
// Per sample and head, S = Q K^T, P = softmax(S / sqrt(head dim)) over the keys that a causal mask
// (key after query) and the padding mask (SequenceMask) leave, optional dropout on P, O = P V.
// The heads' products are batched GEMMs over the projection's rows in place (no transposes). P is
// kept for backward, O(n heads T^2) floats; dropout's mask is drawn again in backward from the
// counter-based generator (docs/design.md rule 3), so N ranks drop what one rank would.
#pragma once

#include <memory>

#include "models/kernels/KernelBackend.h"
#include "models/layers/Layer.h"
#include "models/layers/SequenceMask.h"

namespace dptrain {

class MultiHeadAttention final : public Layer {
 public:
  // mask may be null (no padding).
  MultiHeadAttention(int64_t heads, bool causal, float dropout, std::shared_ptr<const SequenceMask> mask = nullptr);
  std::string kind() const override { return "attention"; }
  std::string describe() const override;
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
  int64_t heads() const { return heads_; }
  bool causal() const { return causal_; }
  bool masked() const { return mask_ != nullptr; }  // padding steps are left out

 private:
  SampleKeys dropout_keys(const StepContext& ctx) const;
  bool drops(const StepContext& ctx) const { return ctx.mode == Mode::train && p_ > 0.0f; }

  int64_t heads_;
  bool causal_;
  float p_;
  std::shared_ptr<const SequenceMask> mask_;
  int64_t steps_ = 0, dim_ = 0, head_dim_ = 0;
  uint32_t id_ = 0;  // the dropout stream
  Tensor w_in_, dw_in_, b_in_, db_in_, w_out_, dw_out_, b_out_, db_out_;
  Tensor qkv_;      // [n T, 3 dim]: queries, keys, values side by side, heads within each
  Tensor probs_;    // [n, heads, T, T]: attention weights before dropout
  Tensor dropped_;  // the same after dropout (when it drops)
  Tensor context_;  // [n T, dim]: the heads' outputs, before the output projection
  Tensor dcontext_, dprobs_, dscores_, dqkv_, dbias_;
  LayerScratch in_scratch_, out_scratch_;
};

}  // namespace dptrain
