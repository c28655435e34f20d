// The Transformer models of the zoo: the pre-norm block (Xiong et al., 2020; GPT-2's layout),
// x + Dropout(Attention(LayerNorm(x))), then x + Dropout(MLP(LayerNorm(x))) with the MLP
// Dense(ratio width) - GELU - Dense(width) on every step, composed from the layers; and the two
// model kinds built from it, a decoder-only language model and a sequence classifier.
#pragma once

#include <memory>

#include "models/layers/Layer.h"
#include "models/layers/SequenceMask.h"
#include "models/layers/Sequential.h"
#include "models/zoo/KeyReader.h"

namespace dptrain {

struct TransformerBlockOptions {
  int64_t heads = 4;
  int64_t mlp_ratio = 4;
  float dropout = 0.1f;            // after the attention and after the MLP
  float attention_dropout = 0.1f;  // on the attention weights
  bool causal = false;
};

// One block for sequences [T, width], its layers made at setup when the width is known; `mask`
// (may be null) marks padding steps.
class TransformerBlock final : public Layer {
 public:
  TransformerBlock(const TransformerBlockOptions& o, std::shared_ptr<const SequenceMask> mask)
      : options_(o), mask_(std::move(mask)) {}
  std::string kind() const override { return "transformer_block"; }
  std::string describe() const override;
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override { body_->forward(in, out, ctx); }
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override {
    body_->backward(in, out, dout, din, ctx);
  }
  // Its layers (after setup): residual(layernorm, attention, dropout), residual(layernorm, MLP, dropout).
  Sequential& body() { return *body_; }

 private:
  TransformerBlockOptions options_;
  std::shared_ptr<const SequenceMask> mask_;
  int64_t width_ = 0;
  std::unique_ptr<Sequential> body_;
};

// The keys of the two kinds, and their builders: the layers before the output (the language
// model ends in its own per-step head over `classes` tokens; the classifier in a mean over steps,
// before the dense output layer the zoo adds). `steps` is the data's sequence length.
std::vector<KeySpec> transformer_lm_keys();
std::vector<KeySpec> transformer_classifier_keys();
void build_transformer_lm(const KeyReader& keys, const Shape& input, int64_t classes, int64_t label_width,
                          Sequential& seq);
void build_transformer_classifier(const KeyReader& keys, const Shape& input, int64_t label_width, Sequential& seq);

}  // namespace dptrain
