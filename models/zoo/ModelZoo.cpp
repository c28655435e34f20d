#include "models/zoo/ModelZoo.h"

#include <algorithm>
#include <optional>

#include "models/core/Error.h"
#include "models/layers/ActivationLayer.h"
#include "models/layers/ActivationNames.h"
#include "models/layers/BatchNorm.h"
#include "models/layers/Conv2d.h"
#include "models/layers/ConvTranspose2d.h"
#include "models/layers/Dense.h"
#include "models/layers/Dropout.h"
#include "models/layers/Embedding.h"
#include "models/layers/GaussianSample.h"
#include "models/layers/Maxout.h"
#include "models/layers/Pool2d.h"
#include "models/layers/Recurrent.h"
#include "models/layers/Reshape.h"
#include "models/layers/Residual.h"
#include "models/layers/Sequential.h"
#include "models/zoo/KeyReader.h"
#include "models/zoo/LayerBuilder.h"
#include "models/zoo/Transformer.h"

namespace dptrain {

namespace {

// What a kind's builder gets: its own keys of [model] and what the data asks of the model.
struct KindInput {
  const KeyReader& keys;
  const TaskInfo& task;
  const Shape& input;
  LossKind loss;
  const std::string& kind;
};

// One row per model kind: the same rows choose the builder, declare the kind's keys (the only
// valid ones besides kind and loss) and print the help.
struct ModelKind {
  std::string name;
  std::string about;  // one line for the help
  std::vector<KeySpec> keys = {};
  // Adds the kind's layers (all of them before the output layer) and may fill in `out.samples`.
  void (*build)(const KindInput&, Sequential&, ZooModel&);
  // The default loss; none: cross_entropy for class labels, mse for float targets.
  std::optional<LossKind> loss = std::nullopt;
  bool reconstruct = false;  // the targets are the input itself
  bool output_layer = true;  // a dense layer sized to the task ends the model
};

// The output layer for the task and loss.
int64_t output_size(const TaskInfo& task, LossKind loss) {
  if (!task.classification) return task.target_dim;
  if (loss == LossKind::binary_cross_entropy) {
    if (task.num_classes != 2)
      fail_input("binary cross-entropy (logistic regression) needs 2 classes, the data has " +
                 std::to_string(task.num_classes) + "; use softmax_regression");
    return 1;
  }
  return task.num_classes;
}

LossKind read_loss(const ConfigNode& m, LossKind fallback) {
  std::string name = m.get_string("loss", Loss::name(fallback));
  try {
    return Loss::parse(name);
  } catch (const Error& e) {
    m.fail("loss", e.what());
  }
}

template <typename L, typename... Args>
void add(Sequential& seq, Args&&... args) {
  seq.add(std::make_unique<L>(std::forward<Args>(args)...));
}

void require_image(const Shape& in, const char* kind) {
  if (in.rank() != 3)
    fail_input(std::string("model kind '") + kind + "' needs image samples [channels, height, width], the data has " +
               in.str());
}

void build_mlp(const KindInput& in, Sequential& seq, ZooModel&) {
  const KeyReader& m = in.keys;
  std::vector<int64_t> hidden = m.get_int_list("hidden");
  const std::string act_name = m.get_string("activation");
  const bool maxout = act_name == "maxout";
  Activation act = Activation::relu;
  if (!maxout && !parse_activation(act_name, act))
    m.fail("activation", "unknown activation '" + act_name + "'; valid: relu, leaky_relu, sigmoid, tanh, maxout");
  const float slope = static_cast<float>(m.get_float("slope"));
  const float dropout = read_probability(m, "dropout");
  const int64_t pieces = m.get_int("pieces");
  for (int64_t h : hidden) {
    if (h <= 0) m.fail("hidden", "layer sizes must be positive");
    if (maxout) {
      if (pieces < 2) m.fail("pieces", "maxout needs at least 2 pieces");
      add<Dense>(seq, h * pieces);
      add<Maxout>(seq, pieces);
    } else {
      add<Dense>(seq, h, true, act, slope);
    }
    if (dropout > 0.0f) add<Dropout>(seq, dropout);
  }
}

// `cnn` (blocks, then the output layer) and `layers` (the whole network).
void build_list(const KindInput& in, Sequential& seq, const std::string& key) {
  std::vector<ConfigNode> tables = in.keys.table_array(key);
  if (tables.empty()) in.keys.fail(key, "needs at least one layer table ([[model." + key + "]])");
  LayerBuilder builder;
  builder.add_all(seq, tables);
}

// The stage plan resnet and mobilenet share.
struct StagePlan {
  Activation act;  // the block activation
  int64_t depth, width, stages;
  bool sync_batchnorm;
};

StagePlan read_stage_plan(const KindInput& in) {
  const KeyReader& m = in.keys;
  StagePlan p;
  const std::string act_name = m.get_string("activation");
  if (act_name == "maxout")
    m.fail("activation", "maxout is for mlp; resnet and mobilenet take relu, leaky_relu, sigmoid or tanh");
  if (!parse_activation(act_name, p.act))
    m.fail("activation", "unknown activation '" + act_name + "'; valid: relu, leaky_relu, sigmoid, tanh");
  p.depth = read_positive(m, "depth");
  p.width = read_positive(m, "width");
  p.stages = read_positive(m, "stages");
  p.sync_batchnorm = m.get_bool("sync_batchnorm");
  if (p.stages > 6 || p.width << (p.stages - 1) > (int64_t{1} << 20))
    m.fail("stages", "too many stages for width " + std::to_string(p.width));
  require_image(in.input, in.kind.c_str());
  return p;
}

std::vector<KeySpec> stage_plan_keys() {
  return {int_key("depth", 1), int_key("width", 16), int_key("stages", 3), string_key("activation", "relu"),
          bool_key("sync_batchnorm", true)};
}

Conv2dOptions conv3x3(int64_t filters, int64_t stride, int64_t groups = 1, Activation act = Activation::identity) {
  Conv2dOptions o;
  o.out_channels = filters;
  o.stride = stride;
  o.padding = 1;
  o.groups = groups;
  o.bias = false;  // batch norm follows
  o.activation = act;
  return o;
}

Conv2dOptions conv1x1(int64_t filters, int64_t stride) {
  Conv2dOptions o = conv3x3(filters, stride);
  o.kernel_h = o.kernel_w = 1;
  o.padding = 0;
  return o;
}

// ResNet for small images (He et al., 2016, the CIFAR variant): a 3x3 stem, `stages` stages of
// `depth` basic blocks (conv-BN-ReLU-conv-BN plus a shortcut, then ReLU) whose width doubles and
// resolution halves from stage to stage, global average pooling. `activation` (ReLU by default)
// is used throughout.
void build_resnet(const KindInput& in, Sequential& seq, ZooModel&) {
  const StagePlan k = read_stage_plan(in);
  add<Conv2d>(seq, conv3x3(k.width, 1));
  add<BatchNorm>(seq, 0.1f, 1e-5f, k.sync_batchnorm);
  add<ActivationLayer>(seq, k.act);
  int64_t channels = k.width;
  for (int64_t s = 0; s < k.stages; ++s) {
    const int64_t filters = k.width << s;
    for (int64_t b = 0; b < k.depth; ++b) {
      const int64_t stride = s > 0 && b == 0 ? 2 : 1;
      auto body = std::make_unique<Sequential>();
      add<Conv2d>(*body, conv3x3(filters, stride));
      add<BatchNorm>(*body, 0.1f, 1e-5f, k.sync_batchnorm);
      add<ActivationLayer>(*body, k.act);
      add<Conv2d>(*body, conv3x3(filters, 1));
      add<BatchNorm>(*body, 0.1f, 1e-5f, k.sync_batchnorm);
      std::unique_ptr<Sequential> shortcut;
      if (stride != 1 || filters != channels) {  // projection: 1x1 convolution + batch norm
        shortcut = std::make_unique<Sequential>();
        add<Conv2d>(*shortcut, conv1x1(filters, stride));
        add<BatchNorm>(*shortcut, 0.1f, 1e-5f, k.sync_batchnorm);
      }
      add<Residual>(seq, std::move(body), std::move(shortcut), k.act);
      channels = filters;
    }
  }
  add<Pool2d>(seq, Pool2d::Kind::average, 0);
}

// MobileNet-style (Howard et al., 2017): the same stage plan as build_resnet, but every block is
// a depthwise-separable convolution (3x3 depthwise-BN-ReLU, 1x1 pointwise-BN-ReLU), which needs
// about 1 / 9 of a full 3x3 convolution's weights and multiply-adds.
void build_mobilenet(const KindInput& in, Sequential& seq, ZooModel&) {
  const StagePlan k = read_stage_plan(in);
  add<Conv2d>(seq, conv3x3(k.width, 1));
  add<BatchNorm>(seq, 0.1f, 1e-5f, k.sync_batchnorm);
  add<ActivationLayer>(seq, k.act);
  int64_t channels = k.width;
  for (int64_t s = 0; s < k.stages; ++s) {
    const int64_t filters = k.width << s;
    for (int64_t b = 0; b < k.depth; ++b) {
      const int64_t stride = s > 0 && b == 0 ? 2 : 1;
      add<Conv2d>(seq, conv3x3(channels, stride, channels));  // depthwise
      add<BatchNorm>(seq, 0.1f, 1e-5f, k.sync_batchnorm);
      add<ActivationLayer>(seq, k.act);
      add<Conv2d>(seq, conv1x1(filters, 1));  // pointwise
      add<BatchNorm>(seq, 0.1f, 1e-5f, k.sync_batchnorm);
      add<ActivationLayer>(seq, k.act);
      channels = filters;
    }
  }
  add<Pool2d>(seq, Pool2d::Kind::average, 0);
}

// Stacked recurrent layers (all but the last return sequences), optionally after an embedding;
// the output layer build_model adds reads the last hidden state.
void build_recurrent(const KindInput& in, Sequential& seq, Recurrent::Cell cell) {
  const KeyReader& m = in.keys;
  std::vector<int64_t> hidden = m.get_int_list("hidden");
  const int64_t embedding = m.get_int("embedding");
  if (embedding < 0) m.fail("embedding", "must be >= 0 (0 = the inputs are features, not ids)");
  const int64_t vocab = m.get_int("vocab");
  if (embedding > 0) {
    if (vocab <= 0) m.fail("vocab", "an embedding needs the number of distinct ids, vocab = N");
    add<Embedding>(seq, vocab, embedding);
  }
  for (size_t i = 0; i < hidden.size(); ++i) {
    if (hidden[i] <= 0) m.fail("hidden", "layer sizes must be positive");
    add<Recurrent>(seq, cell, hidden[i], i + 1 < hidden.size());
  }
}

std::vector<KeySpec> recurrent_keys() {
  return {int_list_key("hidden", {64}), int_key("embedding", 0), int_key("vocab", 0)};
}

// The encoder and decoder the autoencoders share.
struct CoderPlan {
  std::vector<int64_t> hidden;
  bool conv;
  int64_t width;
  Activation output_activation;
};

// The keys both autoencoders read first (in the order their errors have always been reported).
CoderPlan read_coder_plan(const KeyReader& m) {
  CoderPlan p;
  p.hidden = m.get_int_list("hidden");
  p.width = read_positive(m, "width");
  return p;
}

// The encoder of the autoencoders: dense layers of `hidden` sizes, or (conv) two stride-2 3x3
// convolutions of width and 2 width channels.
void build_encoder(Sequential& seq, const CoderPlan& k) {
  if (k.conv) {
    Conv2dOptions o = conv3x3(k.width, 2, 1, Activation::relu);
    o.bias = true;
    add<Conv2d>(seq, o);
    o.out_channels = 2 * k.width;
    add<Conv2d>(seq, o);
    add<Reshape>(seq);
  } else {
    for (int64_t h : k.hidden) add<Dense>(seq, h, true, Activation::relu);
  }
}

// The mirror image of build_encoder, from a code back to a sample of shape `in`.
void build_decoder(Sequential& seq, const Shape& in, const CoderPlan& k) {
  if (k.conv) {
    const int64_t h = (in[1] + 3) / 4, w = (in[2] + 3) / 4;
    add<Dense>(seq, 2 * k.width * h * w, true, Activation::relu);
    add<Reshape>(seq, Shape{2 * k.width, h, w});
    ConvTranspose2dOptions o;
    o.out_channels = k.width;
    o.stride = 2;
    o.padding = 1;
    o.output_padding = 1;
    o.activation = Activation::relu;
    add<ConvTranspose2d>(seq, o);
    o.out_channels = in[0];
    o.activation = k.output_activation;
    add<ConvTranspose2d>(seq, o);
    // Sizes not divisible by 4 come out larger; nothing here crops, so they are refused below.
    if (h * 4 != in[1] || w * 4 != in[2])
      fail_input("a convolutional autoencoder needs height and width divisible by 4, the data has " + in.str());
  } else {
    for (size_t i = k.hidden.size(); i-- > 0;) add<Dense>(seq, k.hidden[i], true, Activation::relu);
    add<Dense>(seq, in.numel(), true, k.output_activation);
    if (in.rank() > 1) add<Reshape>(seq, in);
  }
}

void build_autoencoder(const KindInput& in, Sequential& seq, ZooModel&) {
  const KeyReader& m = in.keys;
  CoderPlan k = read_coder_plan(m);
  const int64_t code = read_positive(m, "code");
  k.conv = m.get_bool("conv");
  // Reconstructions of [0, 1] pixels: a sigmoid output for mse, logits for bce (it applies its own).
  k.output_activation = read_activation(
      m, "output_activation",
      m.get_string("output_activation", in.loss == LossKind::mean_squared_error ? "sigmoid" : "identity"));
  if (k.conv) require_image(in.input, "autoencoder with conv = true");
  build_encoder(seq, k);
  add<Dense>(seq, code);  // the code: linear, as in a PCA-like bottleneck
  build_decoder(seq, in.input, k);
}

void build_vae(const KindInput& in, Sequential& seq, ZooModel& out) {
  const KeyReader& m = in.keys;
  CoderPlan k = read_coder_plan(m);
  const int64_t latent = read_positive(m, "latent");
  k.conv = m.get_bool("conv");
  const double kl_weight = m.get_float("kl_weight");
  if (!(kl_weight >= 0.0)) m.fail("kl_weight", "must be >= 0");
  out.samples = m.get_int("samples");
  if (out.samples < 0) m.fail("samples", "must be >= 0 (0 = write no sample grid)");
  k.output_activation = read_activation(m, "output_activation");
  if (k.conv) require_image(in.input, "vae with conv = true");
  build_encoder(seq, k);
  add<Dense>(seq, 2 * latent);  // mu and log variance
  // KL weighted per input value: the reconstruction loss is a mean over them, so the total is
  // -ELBO / (values per sample) when kl_weight = 1.
  add<GaussianSample>(seq, static_cast<float>(kl_weight / static_cast<double>(in.input.numel())));
  build_decoder(seq, in.input, k);
}

void build_nothing(const KindInput&, Sequential&, ZooModel&) {}
void build_cnn(const KindInput& in, Sequential& seq, ZooModel&) { build_list(in, seq, "blocks"); }
void build_layers(const KindInput& in, Sequential& seq, ZooModel&) { build_list(in, seq, "layers"); }
void build_lstm(const KindInput& in, Sequential& seq, ZooModel&) { build_recurrent(in, seq, Recurrent::Cell::lstm); }
void build_rnn(const KindInput& in, Sequential& seq, ZooModel&) { build_recurrent(in, seq, Recurrent::Cell::rnn); }
void build_gru(const KindInput& in, Sequential& seq, ZooModel&) { build_recurrent(in, seq, Recurrent::Cell::gru); }
void build_lm(const KindInput& in, Sequential& seq, ZooModel&) {
  if (!in.task.classification) fail_input("transformer_lm needs class ids (tokens) in /y, the data has float targets");
  build_transformer_lm(in.keys, in.input, in.task.num_classes, in.task.label_width, seq);
}
void build_sequence_classifier(const KindInput& in, Sequential& seq, ZooModel&) {
  build_transformer_classifier(in.keys, in.input, in.task.label_width, seq);
}

// The keys of both autoencoders, then `own`.
std::vector<KeySpec> coder_keys(std::vector<KeySpec> own) {
  std::vector<KeySpec> keys = {int_list_key("hidden", {256}), bool_key("conv", false), int_key("width", 16)};
  keys.insert(keys.end(), own.begin(), own.end());
  return keys;
}

const std::vector<ModelKind>& model_kinds() {
  using L = LossKind;
  static const std::vector<ModelKind> table = {
      {.name = "linear_regression",
       .about = "one dense layer to the regression targets",
       .build = build_nothing,
       .loss = L::mean_squared_error},
      {.name = "logistic_regression",
       .about = "one dense layer to one logit (two classes)",
       .build = build_nothing,
       .loss = L::binary_cross_entropy},
      {.name = "softmax_regression", .about = "one dense layer to one logit per class", .build = build_nothing},
      {.name = "linear_svm",
       .about = "one dense layer trained with the multiclass hinge loss",
       .build = build_nothing,
       .loss = L::multiclass_hinge},
      {.name = "mlp",
       .about = "dense hidden layers (activation maxout: pieces per unit), then the output layer",
       .keys = {int_list_key("hidden", {64}), string_key("activation", "relu"), float_key("slope", 0.01),
                float_key("dropout", 0.0), int_key("pieces", 2)},
       .build = build_mlp},
      {.name = "cnn",
       .about = "the layer tables of blocks, then the output layer",
       .keys = {computed_key("blocks", "<required>")},
       .build = build_cnn},
      {.name = "layers",
       .about = "the layer tables of layers are the whole network (no output layer added)",
       .keys = {computed_key("layers", "<required>")},
       .build = build_layers,
       .output_layer = false},
      {.name = "resnet",
       .about = "3x3 stem, stages of depth basic residual blocks (width doubling), global average pooling",
       .keys = stage_plan_keys(),
       .build = build_resnet},
      {.name = "mobilenet",
       .about = "the resnet stage plan with depthwise-separable blocks",
       .keys = stage_plan_keys(),
       .build = build_mobilenet},
      {.name = "lstm_classifier",
       .about = "stacked LSTM layers over [steps, features]; the last hidden state feeds the output layer",
       .keys = recurrent_keys(),
       .build = build_lstm},
      {.name = "rnn_classifier",
       .about = "stacked simple (tanh) RNN layers, as lstm_classifier",
       .keys = recurrent_keys(),
       .build = build_rnn},
      {.name = "gru_classifier",
       .about = "stacked GRU layers, as lstm_classifier",
       .keys = recurrent_keys(),
       .build = build_gru},
      {.name = "transformer_lm",
       .about = "decoder-only Transformer over token ids [steps]: embedding, positions, causal pre-norm blocks, a "
                "per-step head over the classes (tied to the embedding by default); needs per-step targets [N, steps]",
       .keys = transformer_lm_keys(),
       .build = build_lm,
       .loss = L::softmax_cross_entropy,
       .output_layer = false},
      {.name = "transformer_classifier",
       .about = "Transformer encoder over token ids [steps] (pad_id: padding left out of attention and the mean), "
                "the mean over steps feeds the output layer",
       .keys = transformer_classifier_keys(),
       .build = build_sequence_classifier},
      {.name = "autoencoder",
       .about = "encoder, linear code, mirrored decoder; reconstructs its input",
       .keys = coder_keys({int_key("code", 32), computed_key("output_activation", "<by_loss>")}),
       .build = build_autoencoder,
       .loss = L::mean_squared_error,
       .reconstruct = true,
       .output_layer = false},
      {.name = "vae",
       .about = "variational autoencoder: encoder to mean and log variance, a sample, decoder; reconstructs its input",
       .keys = coder_keys({int_key("latent", 16), float_key("kl_weight", 1.0), int_key("samples", 64),
                           string_key("output_activation", "identity")}),
       .build = build_vae,
       .loss = L::binary_cross_entropy,
       .reconstruct = true,
       .output_layer = false},
  };
  return table;
}

std::string model_kind_names() {
  std::string s;
  for (const auto& k : model_kinds()) s += (s.empty() ? "" : ", ") + k.name;
  return s;
}

// Pads `name` to `width` columns, so no name runs into its description.
std::string column(std::string name, size_t width) {
  name.resize(std::max(width, name.size() + 2), ' ');
  return name;
}

}  // namespace

std::unique_ptr<Layer> build_layer(const ConfigNode& c) {
  LayerBuilder builder;
  return builder.layer(c);
}

ZooModel build_model(const ConfigNode& m, const TaskInfo& task, const Shape& input) {
  const std::string name = m.get_string("kind", "mlp");
  const ModelKind* kind = nullptr;
  for (const ModelKind& k : model_kinds())
    if (k.name == name) kind = &k;
  if (!kind) m.fail("kind", "'" + name + "' is not one of: " + model_kind_names());

  const LossKind loss = read_loss(
      m, kind->loss.value_or(task.classification ? LossKind::softmax_cross_entropy : LossKind::mean_squared_error));
  if (kind->reconstruct) {
    if (loss != LossKind::mean_squared_error && loss != LossKind::binary_cross_entropy)
      m.fail("loss", name + " reconstructs its input: the loss must be mse or bce (pixel intensities in [0, 1])");
  } else {
    if (task.classification && loss == LossKind::mean_squared_error)
      m.fail("loss", "mse needs regression data (float targets); this data has class labels");
    if (!task.classification && loss != LossKind::mean_squared_error)
      m.fail("loss", Loss::name(loss) + " needs class labels; this data has float targets");
  }

  // Only this kind's keys are read (and marked known), so check_unused() reports any other key in
  // [model] naming exactly these as the valid ones.
  const KeyReader keys(m, kind->keys);
  ZooModel out;
  auto seq = std::make_unique<Sequential>();
  kind->build(KindInput{keys, task, input, loss, kind->name}, *seq, out);
  if (kind->output_layer) add<Dense>(*seq, output_size(task, loss));
  out.root = std::move(seq);
  out.freeze = m.get_string_list("freeze", {});
  out.init_from = m.get_string("init_from", "");
  out.loss = loss;
  out.kind = kind->name;
  out.reconstruct = kind->reconstruct;
  return out;
}

std::string model_kinds_help() {
  size_t width = 0;
  for (const auto& k : model_kinds()) width = std::max(width, k.name.size() + 2);
  std::string out;
  for (const auto& k : model_kinds()) {
    out += column(k.name, width) + k.about;
    if (k.loss) out += "; loss \"" + Loss::name(*k.loss) + "\"";
    if (!k.keys.empty()) out += "; keys: " + keys_help(k.keys);
    out += "\n";
  }
  out +=
      "Every kind also takes kind (default \"mlp\") and loss (mse, bce, cross_entropy, hinge, entropy; default "
      "cross_entropy for class labels and mse for float targets, unless the kind names its own), init_from (a model "
      "file: parameters of the same path and shape start from it) and freeze (layer paths whose parameters stay "
      "fixed). Only the chosen kind's keys are valid. <by_loss>: \"sigmoid\" for mse, \"identity\" for bce.\n";
  return out;
}

std::string layer_types_help() {
  size_t width = 0;
  std::vector<std::string> names;
  for (const auto& t : LayerBuilder::types()) {
    std::string name = t.name;
    for (const auto& a : t.aliases) name += "|" + a;
    width = std::max(width, name.size() + 2);
    names.push_back(name);
  }
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    const auto& t = LayerBuilder::types()[i];
    out += column(names[i], width) + t.about;
    if (!t.keys.empty()) out += "; keys: " + keys_help(t.keys);
    out += "\n";
  }
  out +=
      "Every layer table has a type; only that type's keys are valid in it, and trainable (default true; false "
      "freezes the layer's parameters). <auto>: true, but false for a layer with "
      "no activation directly before a batchnorm. <size>: the pool size. <identity>: the identity, or a projection "
      "when the body changes the shape.\n";
  return out;
}

}  // namespace dptrain
