#include "models/zoo/ModelZoo.h"

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
#include "models/layers/Highway.h"
#include "models/layers/LayerNorm.h"
#include "models/layers/MaxUnpool2d.h"
#include "models/layers/Maxout.h"
#include "models/layers/MinibatchStddev.h"
#include "models/layers/Pool2d.h"
#include "models/layers/Recurrent.h"
#include "models/layers/Reshape.h"
#include "models/layers/Residual.h"
#include "models/layers/Sequential.h"
#include "models/layers/TimeDistributed.h"
#include "models/layers/Upsample2d.h"

namespace dptrain {

namespace {

Activation read_activation(const ConfigNode& cfg, const std::string& key, const std::string& fallback) {
  std::string name = cfg.get_string(key, fallback);
  Activation act;
  if (!parse_activation(name, act))
    cfg.fail(key, "unknown activation '" + name + "'; valid: relu, leaky_relu, sigmoid, tanh, identity");
  return act;
}

int64_t positive(const ConfigNode& cfg, const std::string& key, int64_t fallback) {
  int64_t v = cfg.get_int(key, fallback);
  if (v <= 0) cfg.fail(key, "must be positive, got " + std::to_string(v));
  return v;
}

int64_t required_positive(const ConfigNode& cfg, const std::string& key) {
  if (!cfg.has(key)) cfg.fail(key, "is required for this layer type");
  return positive(cfg, key, 1);
}

float probability(const ConfigNode& cfg, const std::string& key, double fallback) {
  double p = cfg.get_float(key, fallback);
  if (!(p >= 0.0 && p < 1.0)) cfg.fail(key, "must be in [0, 1), got " + std::to_string(p));
  return static_cast<float>(p);
}

// A size given as one number or as [h, w].
std::pair<int64_t, int64_t> pair_of(const ConfigNode& c, const std::string& key, int64_t fallback) {
  std::vector<int64_t> k = c.get_int_list(key, {fallback});
  if (k.empty() || k.size() > 2 || k[0] <= 0 || k.back() <= 0) c.fail(key, "must be a positive size or [h, w]");
  return {k[0], k.back()};
}

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

// Builds layers from tables. It remembers max poolings so that a maxunpool2d pairs with the
// nearest preceding unpaired one anywhere in the model (an encoder and its mirrored decoder).
class LayerBuilder {
 public:
  std::unique_ptr<Layer> layer(const ConfigNode& c);
  // Adds the layers of `tables` in order. A dense or convolution without an activation directly
  // before a batch norm gets no bias unless its table sets `bias`: the normalization subtracts it,
  // so its gradient is zero up to rounding, and Adam turns that rounding into lr-sized steps that
  // differ with the number of ranks (PyTorch's DCGAN and our ResNet leave that bias out too).
  void add_all(Sequential& seq, const std::vector<ConfigNode>& tables);
  // The tables of `key` as one Sequential; fails naming the key when the list is empty.
  std::unique_ptr<Sequential> list(const ConfigNode& parent, const std::string& key);

 private:
  bool default_bias(const ConfigNode& c, Activation act) const {
    return c.get_bool("bias", !(batchnorm_follows_ && act == Activation::identity));
  }
  std::vector<const Pool2d*> pools_;
  bool batchnorm_follows_ = false;  // the table being built is directly followed by a batch norm
};

void LayerBuilder::add_all(Sequential& seq, const std::vector<ConfigNode>& tables) {
  for (size_t i = 0; i < tables.size(); ++i) {
    const std::string next = i + 1 < tables.size() ? tables[i + 1].get_string("type", "") : "";
    batchnorm_follows_ = next == "batchnorm" || next == "batchnorm1d" || next == "batchnorm2d";
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

std::unique_ptr<Layer> LayerBuilder::layer(const ConfigNode& c) {
  const std::string type = c.get_string("type", "");
  if (type.empty()) c.fail("type", std::string("every layer needs a type; valid: ") + layer_types_help());
  float slope = static_cast<float>(c.get_float("slope", 0.01));
  if (type == "dense" || type == "linear") {
    const Activation act = read_activation(c, "activation", "identity");
    return std::make_unique<Dense>(positive(c, "units", 1), default_bias(c, act), act, slope);
  }
  if (type == "conv2d" || type == "conv") {
    Conv2dOptions o;
    o.out_channels = positive(c, "filters", 1);
    std::tie(o.kernel_h, o.kernel_w) = pair_of(c, "kernel", 3);
    o.stride = positive(c, "stride", 1);
    o.padding = c.get_int("padding", 0);
    if (o.padding < 0) c.fail("padding", "must be >= 0");
    o.dilation = positive(c, "dilation", 1);
    o.groups = positive(c, "groups", 1);
    o.activation = read_activation(c, "activation", "identity");
    o.bias = default_bias(c, o.activation);
    o.slope = slope;
    return std::make_unique<Conv2d>(o);
  }
  if (type == "conv_transpose2d" || type == "deconv2d") {
    ConvTranspose2dOptions o;
    o.out_channels = positive(c, "filters", 1);
    std::tie(o.kernel_h, o.kernel_w) = pair_of(c, "kernel", 3);
    o.stride = positive(c, "stride", 1);
    o.padding = c.get_int("padding", 0);
    if (o.padding < 0) c.fail("padding", "must be >= 0");
    o.output_padding = c.get_int("output_padding", 0);
    if (o.output_padding < 0 || o.output_padding >= o.stride)
      c.fail("output_padding", "must be >= 0 and smaller than stride");
    o.dilation = positive(c, "dilation", 1);
    o.activation = read_activation(c, "activation", "identity");
    o.bias = default_bias(c, o.activation);
    o.slope = slope;
    return std::make_unique<ConvTranspose2d>(o);
  }
  if (type == "maxpool2d" || type == "maxpool" || type == "avgpool2d" || type == "avgpool") {
    bool is_max = type.rfind("max", 0) == 0;
    int64_t size = positive(c, "size", 2);
    auto pool = std::make_unique<Pool2d>(is_max ? Pool2d::Kind::max : Pool2d::Kind::average, size,
                                         c.get_int("stride", size), c.get_int("padding", 0));
    if (is_max) pools_.push_back(pool.get());
    return pool;
  }
  if (type == "maxunpool2d" || type == "maxunpool") {
    if (pools_.empty()) c.fail("type", "maxunpool2d needs a maxpool2d before it to take the positions from");
    const Pool2d* pool = pools_.back();
    pools_.pop_back();
    return std::make_unique<MaxUnpool2d>(pool);
  }
  if (type == "upsample2d" || type == "upsample") {
    auto [sh, sw] = pair_of(c, "scale", 2);
    return std::make_unique<Upsample2d>(sh, sw);
  }
  if (type == "minibatch_stddev") {
    const int64_t group = c.get_int("group", 4);
    if (group < 2) c.fail("group", "must be at least 2 (consecutive samples whose spread is measured)");
    return std::make_unique<MinibatchStddev>(group);
  }
  if (type == "global_avgpool") return std::make_unique<Pool2d>(Pool2d::Kind::average, 0, 0, 0);
  if (type == "flatten") return std::make_unique<Reshape>();
  if (type == "reshape") {
    std::vector<int64_t> dims = c.get_int_list("shape", {});
    if (dims.empty()) c.fail("shape", "reshape needs a sample shape such as [1, 28, 28]");
    return std::make_unique<Reshape>(Shape(dims));
  }
  if (type == "dropout") return std::make_unique<Dropout>(probability(c, "p", 0.5));
  if (type == "maxout") return std::make_unique<Maxout>(positive(c, "pieces", 2));
  if (type == "batchnorm" || type == "batchnorm1d" || type == "batchnorm2d") {
    double momentum = c.get_float("momentum", 0.1), eps = c.get_float("eps", 1e-5);
    if (!(momentum >= 0.0 && momentum <= 1.0)) c.fail("momentum", "must be in [0, 1]");
    if (!(eps > 0.0)) c.fail("eps", "must be positive");
    return std::make_unique<BatchNorm>(static_cast<float>(momentum), static_cast<float>(eps), c.get_bool("sync", true));
  }
  if (type == "layernorm") {
    double eps = c.get_float("eps", 1e-5);
    if (!(eps > 0.0)) c.fail("eps", "must be positive");
    return std::make_unique<LayerNorm>(static_cast<float>(eps));
  }
  if (type == "residual") {
    auto body = list(c, "layers");
    std::unique_ptr<Layer> shortcut;
    if (c.has("shortcut")) shortcut = list(c, "shortcut");
    return std::make_unique<Residual>(std::move(body), std::move(shortcut), read_activation(c, "activation", "relu"),
                                      slope);
  }
  if (type == "concat") {
    std::vector<ConfigNode> tables = c.table_array("branches");
    if (tables.size() < 2) c.fail("branches", "needs at least two branch tables, each { layers = [...] }");
    std::vector<std::unique_ptr<Layer>> branches;
    for (const auto& b : tables) branches.push_back(list(b, "layers"));
    return std::make_unique<Concat>(std::move(branches));
  }
  if (type == "highway") {
    return std::make_unique<Highway>(read_activation(c, "activation", "relu"),
                                     static_cast<float>(c.get_float("gate_bias", -1.0)), slope);
  }
  if (type == "embedding")
    return std::make_unique<Embedding>(required_positive(c, "vocab"), required_positive(c, "dim"));
  if (type == "rnn" || type == "lstm") {
    return std::make_unique<Recurrent>(type == "rnn" ? Recurrent::Cell::rnn : Recurrent::Cell::lstm,
                                       required_positive(c, "units"), c.get_bool("return_sequences", false));
  }
  if (type == "time_distributed") {
    if (!c.has("layer")) c.fail("layer", "time_distributed needs the layer to apply to each step: layer = { ... }");
    return std::make_unique<TimeDistributed>(layer(c.child("layer")));
  }
  if (type == "gaussian_sample") {
    double w = c.get_float("kl_weight", 1.0);
    if (!(w >= 0.0)) c.fail("kl_weight", "must be >= 0");
    return std::make_unique<GaussianSample>(static_cast<float>(w));
  }
  Activation act;
  if (parse_activation(type, act)) return std::make_unique<ActivationLayer>(act, slope);
  c.fail("type", "unknown layer type '" + type + "'; valid: " + layer_types_help());
}

// Keys of the zoo's image and sequence kinds, read whatever the kind (see build_model).
struct ZooKeys {
  Activation act;  // resnet, mobilenet: the block activation
  int64_t depth, width, stages, code, latent, embedding, vocab, samples;
  bool sync_batchnorm, conv;
  double kl_weight;
  Activation output_activation;
};

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

void require_image(const Shape& in, const char* kind) {
  if (in.rank() != 3)
    fail_input(std::string("model kind '") + kind + "' needs image samples [channels, height, width], the data has " +
               in.str());
}

// ResNet for small images (He et al., 2016, the CIFAR variant): a 3x3 stem, `stages` stages of
// `depth` basic blocks (conv-BN-ReLU-conv-BN plus a shortcut, then ReLU) whose width doubles and
// resolution halves from stage to stage, global average pooling. `activation` (ReLU by default)
// is used throughout.
void build_resnet(Sequential& seq, const ZooKeys& k) {
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
void build_mobilenet(Sequential& seq, const ZooKeys& k) {
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
// the output layer added by build_model reads the last hidden state.
void build_recurrent(Sequential& seq, Recurrent::Cell cell, const std::vector<int64_t>& hidden, const ZooKeys& k,
                     const ConfigNode& m) {
  if (k.embedding > 0) {
    if (k.vocab <= 0) m.fail("vocab", "an embedding needs the number of distinct ids, vocab = N");
    add<Embedding>(seq, k.vocab, k.embedding);
  }
  for (size_t i = 0; i < hidden.size(); ++i) {
    if (hidden[i] <= 0) m.fail("hidden", "layer sizes must be positive");
    add<Recurrent>(seq, cell, hidden[i], i + 1 < hidden.size());
  }
}

// The encoder of the autoencoders: dense layers of `hidden` sizes, or (conv) two stride-2 3x3
// convolutions of width and 2 width channels. Returns the flat size it ends with.
void build_encoder(Sequential& seq, const Shape& in, const std::vector<int64_t>& hidden, const ZooKeys& k) {
  if (k.conv) {
    Conv2dOptions o = conv3x3(k.width, 2, 1, Activation::relu);
    o.bias = true;
    add<Conv2d>(seq, o);
    o.out_channels = 2 * k.width;
    add<Conv2d>(seq, o);
    add<Reshape>(seq);
  } else {
    for (int64_t h : hidden) add<Dense>(seq, h, true, Activation::relu);
  }
}

// The mirror image of build_encoder, from a code back to a sample of shape `in`.
void build_decoder(Sequential& seq, const Shape& in, const std::vector<int64_t>& hidden, const ZooKeys& k) {
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
    for (size_t i = hidden.size(); i-- > 0;) add<Dense>(seq, hidden[i], true, Activation::relu);
    add<Dense>(seq, in.numel(), true, k.output_activation);
    if (in.rank() > 1) add<Reshape>(seq, in);
  }
}

}  // namespace

std::unique_ptr<Layer> build_layer(const ConfigNode& c) {
  LayerBuilder builder;
  return builder.layer(c);
}

ZooModel build_model(const ConfigNode& m, const TaskInfo& task, const Shape& input) {
  const std::string kind =
      m.get_choice("kind", "mlp",
                   {"linear_regression", "logistic_regression", "softmax_regression", "linear_svm", "mlp", "cnn",
                    "layers", "resnet", "mobilenet", "lstm_classifier", "rnn_classifier", "autoencoder", "vae"});
  const bool reconstruct = kind == "autoencoder" || kind == "vae";
  auto seq = std::make_unique<Sequential>();
  LossKind default_loss = task.classification ? LossKind::softmax_cross_entropy : LossKind::mean_squared_error;
  if (kind == "linear_regression" || kind == "autoencoder") default_loss = LossKind::mean_squared_error;
  if (kind == "logistic_regression" || kind == "vae") default_loss = LossKind::binary_cross_entropy;
  if (kind == "linear_svm") default_loss = LossKind::multiclass_hinge;
  LossKind loss = read_loss(m, default_loss);
  if (reconstruct) {
    if (loss != LossKind::mean_squared_error && loss != LossKind::binary_cross_entropy)
      m.fail("loss", kind + " reconstructs its input: the loss must be mse or bce (pixel intensities in [0, 1])");
  } else {
    if (task.classification && loss == LossKind::mean_squared_error)
      m.fail("loss", "mse needs regression data (float targets); this data has class labels");
    if (!task.classification && loss != LossKind::mean_squared_error)
      m.fail("loss", Loss::name(loss) + " needs class labels; this data has float targets");
  }

  // Keys of the kinds that have them are always read, so any of them is valid whatever the kind.
  std::vector<int64_t> hidden =
      m.get_int_list("hidden", reconstruct ? std::vector<int64_t>{256} : std::vector<int64_t>{64});
  const std::string act_name = m.get_string("activation", "relu");
  const bool maxout = act_name == "maxout";
  Activation act = Activation::relu;
  if (!maxout && !parse_activation(act_name, act))
    m.fail("activation", "unknown activation '" + act_name + "'; valid: relu, leaky_relu, sigmoid, tanh, maxout");
  float slope = static_cast<float>(m.get_float("slope", 0.01));
  float dropout = probability(m, "dropout", 0.0);
  int64_t pieces = m.get_int("pieces", 2);
  ZooKeys k;
  k.act = act;
  if (maxout && (kind == "resnet" || kind == "mobilenet"))
    m.fail("activation", "maxout is for mlp; resnet and mobilenet take relu, leaky_relu, sigmoid or tanh");
  k.depth = positive(m, "depth", 1);
  k.width = positive(m, "width", 16);
  k.stages = positive(m, "stages", 3);
  k.sync_batchnorm = m.get_bool("sync_batchnorm", true);
  k.code = positive(m, "code", 32);
  k.latent = positive(m, "latent", 16);
  k.conv = m.get_bool("conv", false);
  k.kl_weight = m.get_float("kl_weight", 1.0);
  if (!(k.kl_weight >= 0.0)) m.fail("kl_weight", "must be >= 0");
  k.samples = m.get_int("samples", 64);
  if (k.samples < 0) m.fail("samples", "must be >= 0 (0 = write no sample grid)");
  k.embedding = m.get_int("embedding", 0);
  if (k.embedding < 0) m.fail("embedding", "must be >= 0 (0 = the inputs are features, not ids)");
  k.vocab = m.get_int("vocab", 0);
  // Reconstructions of [0, 1] pixels: a sigmoid output for mse, logits for bce (it applies its own).
  k.output_activation = read_activation(
      m, "output_activation", kind == "autoencoder" && loss == LossKind::mean_squared_error ? "sigmoid" : "identity");
  const bool lists = kind == "cnn" || kind == "layers";
  std::vector<ConfigNode> blocks = m.table_array(kind == "cnn" ? "blocks" : "layers");
  m.mark_used(kind == "cnn" ? "layers" : "blocks");
  if ((k.stages > 6 || k.width << (k.stages - 1) > (int64_t{1} << 20)) && (kind == "resnet" || kind == "mobilenet"))
    m.fail("stages", "too many stages for width " + std::to_string(k.width));

  ZooModel out;
  if (kind == "mlp") {
    for (size_t i = 0; i < hidden.size(); ++i) {
      if (hidden[i] <= 0) m.fail("hidden", "layer sizes must be positive");
      if (maxout) {
        if (pieces < 2) m.fail("pieces", "maxout needs at least 2 pieces");
        seq->add(std::make_unique<Dense>(hidden[i] * pieces));
        seq->add(std::make_unique<Maxout>(pieces));
      } else {
        seq->add(std::make_unique<Dense>(hidden[i], true, act, slope));
      }
      if (dropout > 0.0f) seq->add(std::make_unique<Dropout>(dropout));
    }
  } else if (lists) {
    if (blocks.empty())
      m.fail(kind == "cnn" ? "blocks" : "layers",
             "needs at least one layer table ([[model." + std::string(kind == "cnn" ? "blocks" : "layers") + "]])");
    LayerBuilder builder;
    builder.add_all(*seq, blocks);
  } else if (kind == "resnet" || kind == "mobilenet") {
    require_image(input, kind.c_str());
    if (kind == "resnet")
      build_resnet(*seq, k);
    else
      build_mobilenet(*seq, k);
  } else if (kind == "lstm_classifier" || kind == "rnn_classifier") {
    build_recurrent(*seq, kind == "rnn_classifier" ? Recurrent::Cell::rnn : Recurrent::Cell::lstm, hidden, k, m);
  } else if (kind == "autoencoder") {
    if (k.conv) require_image(input, "autoencoder with conv = true");
    build_encoder(*seq, input, hidden, k);
    add<Dense>(*seq, k.code);  // the code: linear, as in a PCA-like bottleneck
    build_decoder(*seq, input, hidden, k);
  } else if (kind == "vae") {
    if (k.conv) require_image(input, "vae with conv = true");
    build_encoder(*seq, input, hidden, k);
    add<Dense>(*seq, 2 * k.latent);  // mu and log variance
    // KL weighted per input value: the reconstruction loss is a mean over them, so the total is
    // -ELBO / (values per sample) when kl_weight = 1.
    add<GaussianSample>(*seq, static_cast<float>(k.kl_weight / static_cast<double>(input.numel())));
    build_decoder(*seq, input, hidden, k);
    out.samples = k.samples;
  }
  if (kind != "layers" && !reconstruct) seq->add(std::make_unique<Dense>(output_size(task, loss)));
  out.root = std::move(seq);
  out.loss = loss;
  out.kind = kind;
  out.reconstruct = reconstruct;
  return out;
}

const char* model_kinds_help() {
  return "linear_regression, logistic_regression, softmax_regression, linear_svm, mlp, cnn, layers, resnet, "
         "mobilenet, lstm_classifier, rnn_classifier, autoencoder, vae";
}

const char* layer_types_help() {
  return "dense, conv2d, conv_transpose2d, maxpool2d, avgpool2d, global_avgpool, maxunpool2d, upsample2d, flatten, "
         "reshape, dropout, maxout, minibatch_stddev, batchnorm, layernorm, residual, concat, highway, embedding, rnn, "
         "lstm, "
         "time_distributed, gaussian_sample, relu, leaky_relu, sigmoid, tanh";
}

}  // namespace dptrain
