#include "models/zoo/Transformer.h"

#include "models/core/Error.h"
#include "models/layers/Dense.h"
#include "models/layers/Dropout.h"
#include "models/layers/Embedding.h"
#include "models/layers/Gelu.h"
#include "models/layers/LayerNorm.h"
#include "models/layers/MultiHeadAttention.h"
#include "models/layers/PositionalEncoding.h"
#include "models/layers/Residual.h"
#include "models/layers/SequencePool.h"
#include "models/layers/TiedOutput.h"
#include "models/layers/TimeDistributed.h"
#include "models/zoo/LayerBuilder.h"

namespace dptrain {

std::string TransformerBlock::describe() const {
  return "transformer_block width " + std::to_string(width_) + ", " + std::to_string(options_.heads) + " heads" +
         (options_.causal ? ", causal" : "");
}

Shape TransformerBlock::setup(const Shape& in, ParamRegistry& registry) {
  if (in.rank() != 2)
    fail_input("transformer_block: input must be a sequence [steps, width] per sample, got " + in.str());
  width_ = in[1];
  const TransformerBlockOptions& o = options_;
  auto attention = std::make_unique<Sequential>();
  attention->add(std::make_unique<LayerNorm>(1e-5f));
  attention->add(std::make_unique<MultiHeadAttention>(o.heads, o.causal, o.attention_dropout, mask_));
  if (o.dropout > 0.0f) attention->add(std::make_unique<Dropout>(o.dropout));
  auto mlp = std::make_unique<Sequential>();
  mlp->add(std::make_unique<LayerNorm>(1e-5f));
  mlp->add(std::make_unique<TimeDistributed>(std::make_unique<Dense>(o.mlp_ratio * width_)));
  mlp->add(std::make_unique<Gelu>());
  mlp->add(std::make_unique<TimeDistributed>(std::make_unique<Dense>(width_)));
  if (o.dropout > 0.0f) mlp->add(std::make_unique<Dropout>(o.dropout));
  body_ = std::make_unique<Sequential>();
  body_->add(std::make_unique<Residual>(std::move(attention), nullptr, Activation::identity));
  body_->add(std::make_unique<Residual>(std::move(mlp), nullptr, Activation::identity));
  body_->set_param_offset(registry.size());
  const Shape out = body_->setup(in, registry);
  set_param_offset(body_->param_offset());
  return out;
}

namespace {

std::vector<KeySpec> common_keys(bool lm) {
  std::vector<KeySpec> keys = {int_key("layers", 2),
                               int_key("width", 128),
                               int_key("heads", 4),
                               computed_key("context", "<data>"),
                               int_key("mlp_ratio", 4),
                               float_key("dropout", 0.1),
                               computed_key("attention_dropout", "<dropout>"),
                               string_key("positional", "learned"),
                               computed_key("vocab", lm ? "<classes>" : "<required>")};
  if (lm)
    keys.push_back(bool_key("tie_weights", true));
  else
    keys.push_back(int_key("pad_id", -1));
  return keys;
}

struct Plan {
  int64_t layers, width, steps, vocab;
  TransformerBlockOptions block;
  PositionalEncoding::Kind positional;
};

// The keys both kinds read, checked against the data's sample shape [T] of token ids.
Plan read_plan(const KeyReader& m, const Shape& input, int64_t vocab_default, bool causal) {
  Plan p;
  p.layers = read_positive(m, "layers");
  p.width = read_positive(m, "width");
  p.block.heads = read_positive(m, "heads");
  if (p.width % p.block.heads != 0)
    m.fail("heads",
           "width " + std::to_string(p.width) + " must be divisible by heads " + std::to_string(p.block.heads));
  p.block.mlp_ratio = read_positive(m, "mlp_ratio");
  p.block.dropout = read_probability(m, "dropout");
  p.block.attention_dropout = read_probability(m, "attention_dropout", p.block.dropout);
  p.block.causal = causal;
  const std::string positional = m.get_string("positional");
  if (positional == "learned")
    p.positional = PositionalEncoding::Kind::learned;
  else if (positional == "sinusoidal")
    p.positional = PositionalEncoding::Kind::sinusoidal;
  else
    m.fail("positional", "'" + positional + "' is not one of: learned, sinusoidal");
  if (!(input.rank() == 1 || (input.rank() == 2 && input[1] == 1)))
    fail_input("a Transformer reads token ids [steps] per sample, the data has " + input.str());
  p.steps = input[0];
  if (m.has("context") && m.get_int("context", 0) != p.steps)
    m.fail("context", "is " + std::to_string(m.get_int("context", 0)) + " but the data's sequences have " +
                          std::to_string(p.steps) + " steps");
  p.vocab = m.get_int("vocab", vocab_default);
  if (p.vocab <= 0) m.fail("vocab", "needs the number of distinct token ids, vocab = N");
  return p;
}

Embedding& add_embedding(Sequential& seq, const Plan& p, int64_t pad_id, std::shared_ptr<SequenceMask> mask) {
  auto embedding = pad_id >= 0 ? std::make_unique<Embedding>(p.vocab, p.width, 0.02f, pad_id, std::move(mask))
                               : std::make_unique<Embedding>(p.vocab, p.width, 0.02f);
  Embedding& e = *embedding;
  seq.add(std::move(embedding));
  seq.add(std::make_unique<PositionalEncoding>(p.positional));
  if (p.block.dropout > 0.0f) seq.add(std::make_unique<Dropout>(p.block.dropout));
  return e;
}

}  // namespace

std::vector<KeySpec> transformer_lm_keys() { return common_keys(true); }
std::vector<KeySpec> transformer_classifier_keys() { return common_keys(false); }

void build_transformer_lm(const KeyReader& m, const Shape& input, int64_t classes, int64_t label_width,
                          Sequential& seq) {
  const Plan p = read_plan(m, input, classes, true);
  if (label_width != p.steps)
    fail_input("transformer_lm predicts a token at every step: the data's /y needs one class id per step [N, " +
               std::to_string(p.steps) + "], it has " + std::to_string(label_width) + " per row");
  const bool tie = m.get_bool("tie_weights");
  if (tie && p.vocab != classes)
    m.fail("tie_weights", "the output shares the embedding's table, so vocab (" + std::to_string(p.vocab) +
                              ") must equal the number of classes (" + std::to_string(classes) + ")");
  Embedding& embedding = add_embedding(seq, p, -1, nullptr);
  for (int64_t i = 0; i < p.layers; ++i) seq.add(std::make_unique<TransformerBlock>(p.block, nullptr));
  seq.add(std::make_unique<LayerNorm>(1e-5f));
  if (tie)
    seq.add(std::make_unique<TiedOutput>(embedding, false));
  else
    seq.add(std::make_unique<TimeDistributed>(std::make_unique<Dense>(classes)));
}

void build_transformer_classifier(const KeyReader& m, const Shape& input, int64_t label_width, Sequential& seq) {
  const Plan p = read_plan(m, input, 0, false);
  if (label_width != 1)
    fail_input("transformer_classifier predicts one class per sequence: the data's /y has " +
               std::to_string(label_width) + " per row (use transformer_lm for per-step targets)");
  const int64_t pad_id = m.get_int("pad_id");
  if (pad_id >= p.vocab) m.fail("pad_id", "must be below vocab (" + std::to_string(p.vocab) + "), or -1 for none");
  auto mask = pad_id >= 0 ? std::make_shared<SequenceMask>() : nullptr;
  add_embedding(seq, p, pad_id, mask);
  for (int64_t i = 0; i < p.layers; ++i) seq.add(std::make_unique<TransformerBlock>(p.block, mask));
  seq.add(std::make_unique<LayerNorm>(1e-5f));
  seq.add(std::make_unique<SequencePool>(mask));
}

}  // namespace dptrain
