#include "models/zoo/ModelZoo.h"

#include "models/core/Error.h"
#include "models/layers/ActivationLayer.h"
#include "models/layers/ActivationNames.h"
#include "models/layers/Conv2d.h"
#include "models/layers/Dense.h"
#include "models/layers/Dropout.h"
#include "models/layers/Maxout.h"
#include "models/layers/Pool2d.h"
#include "models/layers/Reshape.h"
#include "models/layers/Sequential.h"

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

float probability(const ConfigNode& cfg, const std::string& key, double fallback) {
  double p = cfg.get_float(key, fallback);
  if (!(p >= 0.0 && p < 1.0)) cfg.fail(key, "must be in [0, 1), got " + std::to_string(p));
  return static_cast<float>(p);
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

}  // namespace

std::unique_ptr<Layer> build_layer(const ConfigNode& c) {
  const std::string type = c.get_string("type", "");
  if (type.empty()) c.fail("type", std::string("every layer needs a type; valid: ") + layer_types_help());
  float slope = static_cast<float>(c.get_float("slope", 0.01));
  if (type == "dense" || type == "linear") {
    return std::make_unique<Dense>(positive(c, "units", 1), c.get_bool("bias", true),
                                   read_activation(c, "activation", "identity"), slope);
  }
  if (type == "conv2d" || type == "conv") {
    Conv2dOptions o;
    o.out_channels = positive(c, "filters", 1);
    std::vector<int64_t> k = c.get_int_list("kernel", {3});
    if (k.empty() || k.size() > 2 || k[0] <= 0 || k.back() <= 0) c.fail("kernel", "must be a positive size or [h, w]");
    o.kernel_h = k[0];
    o.kernel_w = k.back();
    o.stride = positive(c, "stride", 1);
    o.padding = c.get_int("padding", 0);
    if (o.padding < 0) c.fail("padding", "must be >= 0");
    o.dilation = positive(c, "dilation", 1);
    o.groups = positive(c, "groups", 1);
    o.bias = c.get_bool("bias", true);
    o.activation = read_activation(c, "activation", "identity");
    o.slope = slope;
    return std::make_unique<Conv2d>(o);
  }
  if (type == "maxpool2d" || type == "maxpool" || type == "avgpool2d" || type == "avgpool") {
    bool is_max = type.rfind("max", 0) == 0;
    int64_t size = positive(c, "size", 2);
    return std::make_unique<Pool2d>(is_max ? Pool2d::Kind::max : Pool2d::Kind::average, size, c.get_int("stride", size),
                                    c.get_int("padding", 0));
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
  Activation act;
  if (parse_activation(type, act)) return std::make_unique<ActivationLayer>(act, slope);
  c.fail("type", "unknown layer type '" + type + "'; valid: " + layer_types_help());
}

ZooModel build_model(const ConfigNode& m, const TaskInfo& task) {
  const std::string kind = m.get_choice(
      "kind", "mlp",
      {"linear_regression", "logistic_regression", "softmax_regression", "linear_svm", "mlp", "cnn", "layers"});
  auto seq = std::make_unique<Sequential>();
  LossKind default_loss = task.classification ? LossKind::softmax_cross_entropy : LossKind::mean_squared_error;
  if (kind == "linear_regression") default_loss = LossKind::mean_squared_error;
  if (kind == "logistic_regression") default_loss = LossKind::binary_cross_entropy;
  if (kind == "linear_svm") default_loss = LossKind::multiclass_hinge;
  LossKind loss = read_loss(m, default_loss);
  if (task.classification && loss == LossKind::mean_squared_error)
    m.fail("loss", "mse needs regression data (float targets); this data has class labels");
  if (!task.classification && loss != LossKind::mean_squared_error)
    m.fail("loss", Loss::name(loss) + " needs class labels; this data has float targets");

  // Keys of the kinds that have them are always read, so any of them is valid whatever the kind.
  std::vector<int64_t> hidden = m.get_int_list("hidden", {64});
  const std::string act_name = m.get_string("activation", "relu");
  const bool maxout = act_name == "maxout";
  Activation act = Activation::relu;
  if (!maxout && !parse_activation(act_name, act))
    m.fail("activation", "unknown activation '" + act_name + "'; valid: relu, leaky_relu, sigmoid, tanh, maxout");
  float slope = static_cast<float>(m.get_float("slope", 0.01));
  float dropout = probability(m, "dropout", 0.0);
  int64_t pieces = m.get_int("pieces", 2);
  std::vector<ConfigNode> blocks = m.table_array(kind == "cnn" ? "blocks" : "layers");
  m.mark_used(kind == "cnn" ? "layers" : "blocks");

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
  } else if (kind == "cnn" || kind == "layers") {
    if (blocks.empty())
      m.fail(kind == "cnn" ? "blocks" : "layers",
             "needs at least one layer table ([[model." + std::string(kind == "cnn" ? "blocks" : "layers") + "]])");
    for (const auto& b : blocks) seq->add(build_layer(b));
  }
  if (kind != "layers") seq->add(std::make_unique<Dense>(output_size(task, loss)));
  return {std::move(seq), loss, kind};
}

const char* model_kinds_help() {
  return "linear_regression, logistic_regression, softmax_regression, linear_svm, mlp, cnn, layers";
}

const char* layer_types_help() {
  return "dense, conv2d, maxpool2d, avgpool2d, global_avgpool, flatten, reshape, dropout, maxout, relu, "
         "leaky_relu, sigmoid, tanh";
}

}  // namespace dptrain
