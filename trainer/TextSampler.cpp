#include "trainer/TextSampler.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "models/core/ConfigNode.h"
#include "models/core/Error.h"
#include "models/core/Philox.h"
#include "models/kernels/KernelBackend.h"
#include "storage/checkpoint/CheckpointFile.h"
#include "storage/checkpoint/ModelFile.h"
#include "storage/dataset/DatasetFile.h"
#include "storage/hdf5/H5.h"

namespace dptrain {

namespace {

// Mixed into the key with RandomPurpose::noise so text draws never share a stream with a GAN's
// latent draws (ids 0, 1, ...) of the same seed.
constexpr uint32_t text_stream_id = 0x54455854u;  // "TEXT"

// A uniform double in [0, 1) (53 random bits): draw `index` of the stream `key`.
double uniform_draw(RandomKey key, uint64_t index) {
  Philox4x32 r =
      philox4x32(static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), 0u, text_stream_id, key.k0, key.k1);
  const uint64_t bits = (static_cast<uint64_t>(r.v[0]) << 32) | r.v[1];
  return static_cast<double>(bits >> 11) * (1.0 / 9007199254740992.0);
}

// The dimensions of dataset `name`, or none when it is not there.
std::vector<hsize_t> dataset_dims(hid_t f, const std::string& name, const std::string& path) {
  if (!h5_exists(f, name)) return {};
  H5Id ds = h5_dataset(H5Dopen2(f, name.c_str(), H5P_DEFAULT), path + ": /" + name + " is not a dataset");
  return h5_dims(ds, path + ": /" + name);
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// A checkpoint stores neither the task nor the input shape: take them from the run's training
// data, as training did, while it is there; else from the config's context and vocab keys and the
// stored parameters (the embedding's table [vocab, width], learned positions [T, width], an untied
// head's weight [classes, width]).
void checkpoint_task(const std::string& path, const ConfigNode& root, TaskInfo& task, Shape& input) {
  const std::string data = root.child("data").get_string("train", "");
  if (!data.empty() && std::filesystem::exists(data)) {
    DatasetFile train(data);
    task.classification = train.label_kind() == LabelKind::classes;
    task.num_classes = train.num_classes();
    task.target_dim = std::max<int64_t>(1, train.target_dim());
    task.label_width = train.label_width();
    input = train.sample_shape();
    return;
  }
  const ConfigNode model = root.child("model");
  H5Id f = h5_open_read(path);
  int64_t steps = model.get_int("context", 0), vocab = model.get_int("vocab", 0), classes = 0;
  const std::vector<std::string> layers = h5_group_children(f, "params", path);
  for (const std::string& layer : layers) {
    std::vector<hsize_t> dims = dataset_dims(f, "params/" + layer + "/weight", path);
    if (dims.size() != 2) continue;
    if (ends_with(layer, "_embedding") && vocab <= 0) vocab = static_cast<int64_t>(dims[0]);
    if (ends_with(layer, "_positional") && steps <= 0) steps = static_cast<int64_t>(dims[0]);
  }
  if (model.get_bool("tie_weights", true)) {
    classes = vocab;
  } else if (!layers.empty()) {  // the head is the last layer: time_distributed/dense/weight [classes, width]
    std::vector<hsize_t> dims = dataset_dims(f, "params/" + layers.back() + "/dense/weight", path);
    if (dims.size() == 2) classes = static_cast<int64_t>(dims[0]);
  }
  if (steps <= 0 || classes <= 0)
    fail_input(path + ": cannot tell the model's " + std::string(steps <= 0 ? "context length" : "number of classes") +
               ": the run's training data (" + (data.empty() ? std::string("data.train not set") : data + " is gone") +
               ") gives it; sample from the run's model file instead, or put the data back");
  task.classification = true;
  task.num_classes = classes;
  task.target_dim = 1;
  task.label_width = steps;
  input = Shape({steps});
}

}  // namespace

std::string stored_model_kind(const std::string& config_text, const std::string& source) {
  ConfigNode root = ConfigNode::parse_string(config_text, source + " (stored config)");
  return root.child("model").get_string("kind", "");
}

void load_checkpoint_params(const std::string& path, const std::string& prefix, Model& model) {
  std::vector<FlatSpec> specs{{prefix + "params", model.param_infos(), model.flat_size(), true}};
  const bool buffers = !model.buffer_infos().empty();
  if (buffers) specs.push_back({prefix + "buffers", model.buffer_infos(), model.buffers().numel(), true});
  CheckpointState s = read_checkpoint_file(path, specs);
  const auto& params = s.flat(prefix + "params").data;
  copy_memory(model.params().data(), model.device(), params.data(), Device::cpu, params.size() * sizeof(float));
  if (buffers) {
    const auto& values = s.flat(prefix + "buffers").data;
    copy_memory(model.buffers().data(), model.device(), values.data(), Device::cpu, values.size() * sizeof(float));
  }
}

TextSampler::TextSampler(const std::string& path) : path_(path) {
  h5_quiet();
  std::string format;
  {
    H5Id f = h5_open_read(path);
    if (!h5_has_attribute(f, "format")) fail_input(path + ": not a dptrain model file or checkpoint");
    format = h5_read_string_attribute(f, "format", path);
  }
  const bool checkpoint = CheckpointState::parse_format_tag(format) != 0;
  std::string config_text;
  Shape input;
  if (checkpoint) {
    config_text = read_checkpoint_file(path, {}).config_text;
  } else {
    ModelFileMeta meta = read_model_meta(path);
    if (meta.input_shape.empty()) fail_input(path + ": the model file has no input_shape");
    config_text = meta.config_text;
    task_ = meta.task;
    input = Shape(meta.input_shape);
  }
  ConfigNode root = ConfigNode::parse_string(config_text, path + " (stored config)");
  const std::string kind = root.child("model").get_string("kind", "");
  if (kind != "transformer_lm")
    fail_input(path + ": holds a model of kind '" + kind + "', text generation needs kind = \"transformer_lm\"");
  if (checkpoint) checkpoint_task(path, root, task_, input);
  // A language model predicts at every step: one class id per position.
  if (task_.label_width == 1 && input.rank() >= 1) task_.label_width = input[0];

  ZooModel zoo = build_model(root.child("model"), task_, input);
  model_ = std::make_unique<Model>(std::move(zoo.root), input, Device::cpu);
  if (checkpoint)
    load_checkpoint_params(path, "", *model_);
  else
    load_model_params(path, *model_);

  const Shape& out = model_->output_shape();
  if (out.rank() != 2 || out[0] != input[0])
    fail_input(path + ": the model's output is " + out.str() + ", a language model's is [steps, classes]");
  context_ = input[0];
  classes_ = out[1];
  input_vocab_ = classes_;
  for (const ParamInfo& p : model_->param_infos())
    if (ends_with(p.path, "_embedding/weight") && p.shape.rank() == 2) {
      input_vocab_ = p.shape[0];
      break;
    }

  x_ = Tensor::zeros(Shape({1, context_}), Device::cpu);
  scaled_.resize(static_cast<size_t>(classes_));
  probs_.resize(static_cast<size_t>(classes_));
  order_.resize(static_cast<size_t>(classes_));
}

int32_t TextSampler::choose(const float* logits, const TextSampleOptions& o, uint64_t position) {
  // Only ids the model can read back are candidates (all of them unless vocab < classes).
  const int64_t n = std::min(classes_, input_vocab_);
  if (o.temperature == 0.0) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; ++i)
      if (logits[i] > logits[best]) best = i;
    return static_cast<int32_t>(best);
  }
  for (int64_t i = 0; i < n; ++i) scaled_[static_cast<size_t>(i)] = static_cast<double>(logits[i]) / o.temperature;
  int64_t kept = n;
  for (int64_t i = 0; i < n; ++i) order_[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  if (o.top_k > 0 && o.top_k < n) {
    // The k largest, ties broken by the lower id, then back in id order: the same set and order
    // whatever the standard library's selection does.
    const double* s = scaled_.data();
    std::nth_element(order_.begin(), order_.begin() + (o.top_k - 1), order_.begin() + n,
                     [s](int32_t a, int32_t b) { return s[a] > s[b] || (s[a] == s[b] && a < b); });
    kept = o.top_k;
    std::sort(order_.begin(), order_.begin() + kept);
  }
  double top = -INFINITY;
  for (int64_t j = 0; j < kept; ++j) top = std::max(top, scaled_[static_cast<size_t>(order_[static_cast<size_t>(j)])]);
  double sum = 0.0;
  for (int64_t j = 0; j < kept; ++j) {
    const double p = std::exp(scaled_[static_cast<size_t>(order_[static_cast<size_t>(j)])] - top);
    probs_[static_cast<size_t>(j)] = p;
    sum += p;
  }
  const double target = uniform_draw(RandomKey::make(o.seed, RandomPurpose::noise, text_stream_id), position) * sum;
  double cumulative = 0.0;
  for (int64_t j = 0; j < kept; ++j) {
    cumulative += probs_[static_cast<size_t>(j)];
    if (target < cumulative) return order_[static_cast<size_t>(j)];
  }
  // Rounding left the draw past the last sum: the last candidate with any probability.
  for (int64_t j = kept - 1; j > 0; --j)
    if (probs_[static_cast<size_t>(j)] > 0.0) return order_[static_cast<size_t>(j)];
  return order_[0];
}

std::vector<int32_t> TextSampler::generate(const std::vector<int32_t>& prompt, const TextSampleOptions& o) {
  if (prompt.empty()) fail_input("the prompt is empty: generation needs at least one token to start from");
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= input_vocab_)
      fail_input("the prompt's token " + std::to_string(i) + " is " + std::to_string(prompt[i]) +
                 ", outside the model's vocabulary [0, " + std::to_string(input_vocab_) + ")");
  if (o.length < 1 || o.length > max_length)
    fail_input("length " + std::to_string(o.length) + " must be in [1, " + std::to_string(max_length) + "]");
  if (!(o.temperature >= 0.0) || !std::isfinite(o.temperature))
    fail_input("temperature must be a finite number >= 0 (0 = greedy)");
  if (o.top_k < 0 || o.top_k > classes_)
    fail_input("top-k " + std::to_string(o.top_k) + " must be in [0, " + std::to_string(classes_) + "] (0 = all)");

  std::vector<int32_t> tokens;
  tokens.reserve(prompt.size() + static_cast<size_t>(o.length));
  tokens.assign(prompt.begin(), prompt.end());
  const StepContext ctx{Mode::eval, o.seed, 0, 0, nullptr, false};
  float* x = x_.data();
  for (int64_t g = 0; g < o.length; ++g) {
    const int64_t n = static_cast<int64_t>(tokens.size());
    const int64_t len = std::min(n, context_);
    const int32_t* window = tokens.data() + (n - len);
    for (int64_t t = 0; t < len; ++t) x[t] = static_cast<float>(window[t]);
    std::fill(x + len, x + context_, 0.0f);  // never seen by positions < len: the model is causal
    const Tensor& out = model_->forward(x_, ctx);
    tokens.push_back(choose(out.data() + (len - 1) * classes_, o, static_cast<uint64_t>(g)));
  }
  return tokens;
}

}  // namespace dptrain
