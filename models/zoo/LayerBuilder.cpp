#include "models/zoo/LayerBuilder.h"

#include "models/core/Error.h"
#include "models/layers/ActivationLayer.h"
#include "models/layers/ActivationNames.h"
#include "models/layers/BatchNorm.h"
#include "models/layers/Concat.h"
#include "models/layers/Conv2d.h"
#include "models/layers/ConvTranspose2d.h"
#include "models/layers/Dense.h"
#include "models/layers/Dropout.h"
#include "models/layers/Embedding.h"
#include "models/layers/GaussianSample.h"
#include "models/layers/Gelu.h"
#include "models/layers/Highway.h"
#include "models/layers/LayerNorm.h"
#include "models/layers/MaxUnpool2d.h"
#include "models/layers/Maxout.h"
#include "models/layers/MinibatchStddev.h"
#include "models/layers/MultiHeadAttention.h"
#include "models/layers/Pool2d.h"
#include "models/layers/PositionalEncoding.h"
#include "models/layers/Recurrent.h"
#include "models/layers/Reshape.h"
#include "models/layers/Residual.h"
#include "models/layers/SequencePool.h"
#include "models/layers/TimeDistributed.h"
#include "models/layers/Upsample2d.h"
#include "models/zoo/Transformer.h"

namespace dptrain {

Activation read_activation(const KeyReader& c, const std::string& key, const std::string& name) {
  Activation act;
  if (!parse_activation(name, act))
    c.fail(key, "unknown activation '" + name + "'; valid: relu, leaky_relu, sigmoid, tanh, identity");
  return act;
}

Activation read_activation(const KeyReader& c, const std::string& key) {
  return read_activation(c, key, c.get_string(key));
}

int64_t read_positive(const KeyReader& c, const std::string& key) {
  int64_t v = c.get_int(key);
  if (v <= 0) c.fail(key, "must be positive, got " + std::to_string(v));
  return v;
}

namespace {

float checked_probability(const KeyReader& c, const std::string& key, double p) {
  if (!(p >= 0.0 && p < 1.0)) c.fail(key, "must be in [0, 1), got " + std::to_string(p));
  return static_cast<float>(p);
}

}  // namespace

float read_probability(const KeyReader& c, const std::string& key) {
  return checked_probability(c, key, c.get_float(key));
}

float read_probability(const KeyReader& c, const std::string& key, double fallback) {
  return checked_probability(c, key, c.get_float(key, fallback));
}

namespace {

using LayerPtr = std::unique_ptr<Layer>;

// A key declared <required>: present and positive.
int64_t required_positive(const KeyReader& c, const std::string& key) {
  if (!c.has(key)) c.fail(key, "is required for this layer type");
  int64_t v = c.get_int(key, 1);
  if (v <= 0) c.fail(key, "must be positive, got " + std::to_string(v));
  return v;
}

// A size given as one number or as [h, w].
std::pair<int64_t, int64_t> pair_of(const KeyReader& c, const std::string& key) {
  std::vector<int64_t> k = c.get_int_or_list(key);
  if (k.empty() || k.size() > 2 || k[0] <= 0 || k.back() <= 0) c.fail(key, "must be a positive size or [h, w]");
  return {k[0], k.back()};
}

int64_t non_negative(const KeyReader& c, const std::string& key) {
  int64_t v = c.get_int(key);
  if (v < 0) c.fail(key, "must be >= 0");
  return v;
}

float slope_of(const KeyReader& c) { return static_cast<float>(c.get_float("slope")); }

// Keys several types share.
KeySpec activation_key(const char* fallback) { return string_key("activation", fallback); }
KeySpec slope_key() { return float_key("slope", 0.01); }
// <auto>: true, but false when a batchnorm follows directly and there is no activation.
KeySpec bias_key() { return computed_key("bias", "<auto>"); }
KeySpec required(const char* name) { return computed_key(name, "<required>"); }

LayerPtr pool(bool is_max, const KeyReader& c, std::vector<const Pool2d*>& pools) {
  int64_t size = read_positive(c, "size");
  auto p = std::make_unique<Pool2d>(is_max ? Pool2d::Kind::max : Pool2d::Kind::average, size, c.get_int("stride", size),
                                    c.get_int("padding"));
  if (is_max) pools.push_back(p.get());
  return p;
}

std::vector<KeySpec> pool_keys() {
  return {int_key("size", 2), computed_key("stride", "<size>"), int_key("padding", 0)};
}

std::vector<KeySpec> recurrent_keys() { return {required("units"), bool_key("return_sequences", false)}; }

// An activation as a layer of its own; its slope is ActivationLayer's default, unused but by leaky_relu.
template <Activation act>
LayerPtr activation_layer(LayerBuilder&, const KeyReader&) {
  return std::make_unique<ActivationLayer>(act);
}

LayerPtr recurrent(Recurrent::Cell cell, const KeyReader& c) {
  return std::make_unique<Recurrent>(cell, required_positive(c, "units"), c.get_bool("return_sequences"));
}

}  // namespace

const std::vector<LayerBuilder::Type>& LayerBuilder::types() {
  static const std::vector<Type> table = {
      {.name = "dense",
       .aliases = {"linear"},
       .about = "fully connected: y = act(x W^T + b)",
       .keys = {int_key("units", 1), activation_key("identity"), bias_key(), slope_key()},
       .build = [](LayerBuilder& b, const KeyReader& c) -> LayerPtr {
         const Activation act = read_activation(c, "activation");
         return std::make_unique<Dense>(read_positive(c, "units"), b.default_bias(c, act), act, slope_of(c));
       }},
      {.name = "conv2d",
       .aliases = {"conv"},
       .about = "2-d convolution over [channels, height, width]",
       .keys = {int_key("filters", 1), int_key("kernel", 3), int_key("stride", 1), int_key("padding", 0),
                int_key("dilation", 1), int_key("groups", 1), activation_key("identity"), bias_key(), slope_key()},
       .build = [](LayerBuilder& b, const KeyReader& c) -> LayerPtr {
         Conv2dOptions o;
         o.out_channels = read_positive(c, "filters");
         std::tie(o.kernel_h, o.kernel_w) = pair_of(c, "kernel");
         o.stride = read_positive(c, "stride");
         o.padding = non_negative(c, "padding");
         o.dilation = read_positive(c, "dilation");
         o.groups = read_positive(c, "groups");
         o.activation = read_activation(c, "activation");
         o.bias = b.default_bias(c, o.activation);
         o.slope = slope_of(c);
         return std::make_unique<Conv2d>(o);
       }},
      {.name = "conv_transpose2d",
       .aliases = {"deconv2d"},
       .about = "transposed 2-d convolution; weight [in, out, kh, kw] as PyTorch",
       .keys = {int_key("filters", 1), int_key("kernel", 3), int_key("stride", 1), int_key("padding", 0),
                int_key("output_padding", 0), int_key("dilation", 1), activation_key("identity"), bias_key(),
                slope_key()},
       .build = [](LayerBuilder& b, const KeyReader& c) -> LayerPtr {
         ConvTranspose2dOptions o;
         o.out_channels = read_positive(c, "filters");
         std::tie(o.kernel_h, o.kernel_w) = pair_of(c, "kernel");
         o.stride = read_positive(c, "stride");
         o.padding = non_negative(c, "padding");
         o.output_padding = c.get_int("output_padding");
         if (o.output_padding < 0 || o.output_padding >= o.stride)
           c.fail("output_padding", "must be >= 0 and smaller than stride");
         o.dilation = read_positive(c, "dilation");
         o.activation = read_activation(c, "activation");
         o.bias = b.default_bias(c, o.activation);
         o.slope = slope_of(c);
         return std::make_unique<ConvTranspose2d>(o);
       }},
      {.name = "maxpool2d",
       .aliases = {"maxpool"},
       .about = "maximum over size x size windows",
       .keys = pool_keys(),
       .build = [](LayerBuilder& b, const KeyReader& c) { return pool(true, c, b.pools_); }},
      {.name = "avgpool2d",
       .aliases = {"avgpool"},
       .about = "average over size x size windows",
       .keys = pool_keys(),
       .build = [](LayerBuilder& b, const KeyReader& c) { return pool(false, c, b.pools_); }},
      {.name = "global_avgpool",
       .about = "average over all positions of each channel: [C, H, W] to [C]",
       .build = [](LayerBuilder&, const KeyReader&) -> LayerPtr {
         return std::make_unique<Pool2d>(Pool2d::Kind::average, 0, 0, 0);
       }},
      {.name = "maxunpool2d",
       .aliases = {"maxunpool"},
       .about = "values back where the nearest preceding unpaired maxpool2d found them",
       .build = [](LayerBuilder& b, const KeyReader& c) -> LayerPtr {
         if (b.pools_.empty()) c.fail("type", "maxunpool2d needs a maxpool2d before it to take the positions from");
         const Pool2d* paired = b.pools_.back();
         b.pools_.pop_back();
         return std::make_unique<MaxUnpool2d>(paired);
       }},
      {.name = "upsample2d",
       .aliases = {"upsample"},
       .about = "nearest-neighbour upsampling by scale (or [h, w])",
       .keys = {int_key("scale", 2)},
       .build = [](LayerBuilder&, const KeyReader& c) -> LayerPtr {
         auto [sh, sw] = pair_of(c, "scale");
         return std::make_unique<Upsample2d>(sh, sw);
       }},
      {.name = "flatten",
       .about = "a sample to one dimension",
       .build = [](LayerBuilder&, const KeyReader&) -> LayerPtr { return std::make_unique<Reshape>(); }},
      {.name = "reshape",
       .about = "a sample to shape, e.g. [1, 28, 28]",
       .keys = {required("shape")},
       .build = [](LayerBuilder&, const KeyReader& c) -> LayerPtr {
         std::vector<int64_t> dims = c.get_int_list("shape", {});
         if (dims.empty()) c.fail("shape", "reshape needs a sample shape such as [1, 28, 28]");
         return std::make_unique<Reshape>(Shape(dims));
       }},
      {.name = "dropout",
       .about = "zeroes each value with probability p in training",
       .keys = {float_key("p", 0.5)},
       .build = [](LayerBuilder&, const KeyReader& c) -> LayerPtr {
         return std::make_unique<Dropout>(read_probability(c, "p"));
       }},
      {.name = "maxout",
       .about = "maximum over groups of pieces features",
       .keys = {int_key("pieces", 2)},
       .build = [](LayerBuilder&, const KeyReader& c) -> LayerPtr {
         return std::make_unique<Maxout>(read_positive(c, "pieces"));
       }},
      {.name = "minibatch_stddev",
       .about = "appends the spread over groups of samples as a channel (GAN discriminators)",
       .keys = {int_key("group", 4)},
       .build = [](LayerBuilder&, const KeyReader& c) -> LayerPtr {
         const int64_t group = c.get_int("group");
         if (group < 2) c.fail("group", "must be at least 2 (consecutive samples whose spread is measured)");
         return std::make_unique<MinibatchStddev>(group);
       }},
      {.name = "batchnorm",
       .aliases = {"batchnorm1d", "batchnorm2d"},
       .about = "batch normalization; sync: statistics over all ranks",
       .keys = {float_key("momentum", 0.1), float_key("eps", 1e-5), bool_key("sync", true)},
       .build = [](LayerBuilder&, const KeyReader& c) -> LayerPtr {
         double momentum = c.get_float("momentum"), eps = c.get_float("eps");
         if (!(momentum >= 0.0 && momentum <= 1.0)) c.fail("momentum", "must be in [0, 1]");
         if (!(eps > 0.0)) c.fail("eps", "must be positive");
         return std::make_unique<BatchNorm>(static_cast<float>(momentum), static_cast<float>(eps), c.get_bool("sync"));
       }},
      {.name = "layernorm",
       .about = "normalization over the last dimension of each sample",
       .keys = {float_key("eps", 1e-5)},
       .build = [](LayerBuilder&, const KeyReader& c) -> LayerPtr {
         double eps = c.get_float("eps");
         if (!(eps > 0.0)) c.fail("eps", "must be positive");
         return std::make_unique<LayerNorm>(static_cast<float>(eps));
       }},
      {.name = "residual",
       .about = "act(body(x) + shortcut(x)); layers: the body, shortcut: optional list",
       .keys = {required("layers"), computed_key("shortcut", "<identity>"), activation_key("relu"), slope_key()},
       .build = [](LayerBuilder& b, const KeyReader& c) -> LayerPtr {
         auto body = b.list(c.node(), "layers");
         std::unique_ptr<Layer> shortcut;
         if (c.has("shortcut")) shortcut = b.list(c.node(), "shortcut");
         return std::make_unique<Residual>(std::move(body), std::move(shortcut), read_activation(c, "activation"),
                                           slope_of(c));
       }},
      {.name = "concat",
       .about = "branches = [{ layers = [...] }, ...] on the same input, joined along channels",
       .keys = {required("branches")},
       .build = [](LayerBuilder& b, const KeyReader& c) -> LayerPtr {
         std::vector<ConfigNode> tables = c.table_array("branches");
         if (tables.size() < 2) c.fail("branches", "needs at least two branch tables, each { layers = [...] }");
         std::vector<std::unique_ptr<Layer>> branches;
         for (const auto& t : tables) branches.push_back(b.list(t, "layers"));
         return std::make_unique<Concat>(std::move(branches));
       }},
      {.name = "highway",
       .about = "y = t h(x) + (1 - t) x over flat features",
       .keys = {activation_key("relu"), float_key("gate_bias", -1.0), slope_key()},
       .build = [](LayerBuilder&, const KeyReader& c) -> LayerPtr {
         return std::make_unique<Highway>(read_activation(c, "activation"),
                                          static_cast<float>(c.get_float("gate_bias")), slope_of(c));
       }},
      {.name = "embedding",
       .about = "integer ids [T] (stored as floats) to vectors [T, dim]",
       .keys = {required("vocab"), required("dim")},
       .build = [](LayerBuilder&, const KeyReader& c) -> LayerPtr {
         return std::make_unique<Embedding>(required_positive(c, "vocab"), required_positive(c, "dim"));
       }},
      {.name = "rnn",
       .about = "simple (tanh) recurrent layer over [T, features]",
       .keys = recurrent_keys(),
       .build = [](LayerBuilder&, const KeyReader& c) { return recurrent(Recurrent::Cell::rnn, c); }},
      {.name = "lstm",
       .about = "LSTM layer over [T, features]",
       .keys = recurrent_keys(),
       .build = [](LayerBuilder&, const KeyReader& c) { return recurrent(Recurrent::Cell::lstm, c); }},
      {.name = "gru",
       .about = "GRU layer over [T, features] (gates r, z, n as PyTorch)",
       .keys = recurrent_keys(),
       .build = [](LayerBuilder&, const KeyReader& c) { return recurrent(Recurrent::Cell::gru, c); }},
      {.name = "attention",
       .about = "multi-head self-attention over [T, features]; causal: each step sees only earlier ones",
       .keys = {int_key("heads", 4), bool_key("causal", false), float_key("dropout", 0.0)},
       .build = [](LayerBuilder&, const KeyReader& c) -> LayerPtr {
         return std::make_unique<MultiHeadAttention>(read_positive(c, "heads"), c.get_bool("causal"),
                                                     read_probability(c, "dropout"));
       }},
      {.name = "positional",
       .about = "adds a position encoding to [T, features]: kind = \"learned\" or \"sinusoidal\"",
       .keys = {string_key("kind", "learned")},
       .build = [](LayerBuilder&, const KeyReader& c) -> LayerPtr {
         const std::string kind = c.get_string("kind");
         if (kind != "learned" && kind != "sinusoidal")
           c.fail("kind", "'" + kind + "' is not one of: learned, sinusoidal");
         return std::make_unique<PositionalEncoding>(kind == "learned" ? PositionalEncoding::Kind::learned
                                                                       : PositionalEncoding::Kind::sinusoidal);
       }},
      {.name = "transformer_block",
       .about = "pre-norm block over [T, width]: x + attention(layernorm x), x + MLP(layernorm x) with GELU",
       .keys = {int_key("heads", 4), bool_key("causal", false), int_key("mlp_ratio", 4), float_key("dropout", 0.1),
                computed_key("attention_dropout", "<dropout>")},
       .build = [](LayerBuilder&, const KeyReader& c) -> LayerPtr {
         TransformerBlockOptions o;
         o.heads = read_positive(c, "heads");
         o.causal = c.get_bool("causal");
         o.mlp_ratio = read_positive(c, "mlp_ratio");
         o.dropout = read_probability(c, "dropout");
         o.attention_dropout = read_probability(c, "attention_dropout", o.dropout);
         return std::make_unique<TransformerBlock>(o, nullptr);
       }},
      {.name = "mean_pool",
       .about = "the mean over the steps of [T, features]",
       .build = [](LayerBuilder&, const KeyReader&) -> LayerPtr { return std::make_unique<SequencePool>(); }},
      {.name = "gelu",
       .about = "x Phi(x) (exact, erf form)",
       .build = [](LayerBuilder&, const KeyReader&) -> LayerPtr { return std::make_unique<Gelu>(); }},
      {.name = "time_distributed",
       .about = "layer = { ... } applied to every step of a sequence with shared weights",
       .keys = {required("layer")},
       .build = [](LayerBuilder& b, const KeyReader& c) -> LayerPtr {
         if (!c.has("layer"))
           c.fail("layer", "time_distributed needs the layer to apply to each step: layer = { ... }");
         LayerPtr inner = b.layer(c.child("layer"));
         const bool trainable = inner->trainable();  // trainable = false in the inner table freezes the wrapper
         auto wrapper = std::make_unique<TimeDistributed>(std::move(inner));
         wrapper->set_trainable(trainable);
         return wrapper;
       }},
      {.name = "gaussian_sample",
       .about = "the VAE's sample from [mu, log variance], adding kl_weight x KL to the loss",
       .keys = {float_key("kl_weight", 1.0)},
       .build = [](LayerBuilder&, const KeyReader& c) -> LayerPtr {
         double w = c.get_float("kl_weight");
         if (!(w >= 0.0)) c.fail("kl_weight", "must be >= 0");
         return std::make_unique<GaussianSample>(static_cast<float>(w));
       }},
      {.name = "relu", .about = "max(x, 0)", .build = activation_layer<Activation::relu>},
      {.name = "leaky_relu",
       .about = "x, or slope x below 0",
       .keys = {slope_key()},
       .build = [](LayerBuilder&, const KeyReader& c) -> LayerPtr {
         return std::make_unique<ActivationLayer>(Activation::leaky_relu, slope_of(c));
       }},
      {.name = "sigmoid", .about = "1 / (1 + exp(-x))", .build = activation_layer<Activation::sigmoid>},
      {.name = "tanh", .about = "tanh(x)", .build = activation_layer<Activation::tanh>},
      {.name = "identity",
       .aliases = {"none"},
       .about = "x unchanged",
       .build = activation_layer<Activation::identity>},
  };
  return table;
}

std::string layer_type_names() {
  std::string s;
  for (const auto& t : LayerBuilder::types()) s += (s.empty() ? "" : ", ") + t.name;
  return s;
}

const LayerBuilder::Type* LayerBuilder::find(const std::string& type) {
  for (const Type& t : types()) {
    if (t.name == type) return &t;
    for (const auto& alias : t.aliases)
      if (alias == type) return &t;
  }
  return nullptr;
}

std::unique_ptr<Layer> LayerBuilder::layer(const ConfigNode& c) {
  const std::string type = c.get_string("type", "");
  if (type.empty()) c.fail("type", "every layer needs a type; valid: " + layer_type_names());
  const Type* t = find(type);
  if (!t) c.fail("type", "unknown layer type '" + type + "'; valid: " + layer_type_names());
  const bool trainable = c.get_bool("trainable", true);
  std::unique_ptr<Layer> layer = t->build(*this, KeyReader(c, t->keys));
  if (!trainable) layer->set_trainable(false);
  return layer;
}

void LayerBuilder::add_all(Sequential& seq, const std::vector<ConfigNode>& tables) {
  for (size_t i = 0; i < tables.size(); ++i) {
    const Type* next = i + 1 < tables.size() ? find(tables[i + 1].get_string("type", "")) : nullptr;
    batchnorm_follows_ = next && next->name == "batchnorm";
    seq.add(layer(tables[i]));
  }
  batchnorm_follows_ = false;
}

std::unique_ptr<Sequential> LayerBuilder::list(const ConfigNode& parent, const std::string& key) {
  std::vector<ConfigNode> tables = parent.table_array(key);
  if (tables.empty()) parent.fail(key, "needs a list of at least one layer table");
  auto seq = std::make_unique<Sequential>();
  add_all(*seq, tables);
  return seq;
}

}  // namespace dptrain
