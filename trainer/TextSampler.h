// Text generation from a trained language model (`[model] kind = "transformer_lm"`): loads the
// model from a model file or a checkpoint (architecture from the stored config, on the CPU) and
// extends a prompt token by token. Each step runs the model on the last T tokens (the context;
// a shorter one fills positions len..T-1 with id 0, which a causal model never looks at), takes
// the logits at position len-1, divides them by the temperature, keeps the top k, and draws from
// their softmax (in double) with the counter-based generator keyed by the seed, draw index = the
// generated position, so a seed reproduces the text bit for bit. Temperature 0 is greedy (argmax,
// lowest id on ties). `dptrain sample` uses it for language models.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/Model.h"
#include "models/zoo/ModelZoo.h"

namespace dptrain {

struct TextSampleOptions {
  int64_t length = 200;      // tokens to generate
  double temperature = 1.0;  // 0: greedy
  int64_t top_k = 0;         // 0: every class
  uint64_t seed = 0;
};

// The [model] kind of a stored config text ("" when it names none).
std::string stored_model_kind(const std::string& config_text, const std::string& source);

// Copies a checkpoint's "<prefix>params" (and "<prefix>buffers", where the model has buffers) into
// `model`, built from the checkpoint's config; names a missing group or a shape that differs.
void load_checkpoint_params(const std::string& path, const std::string& prefix, Model& model);

class TextSampler {
 public:
  static constexpr int64_t max_length = int64_t{1} << 20;

  // Loads a transformer_lm from `path`: a model file (its stored task and input shape) or a
  // checkpoint (the task and input shape from the run's training data when it is still there,
  // else from the stored parameter shapes and the config's context and vocab).
  explicit TextSampler(const std::string& path);

  int64_t context() const { return context_; }  // T
  int64_t classes() const { return classes_; }  // V: logits per step
  // Token ids the model reads (the embedding's rows); a prompt must stay below it.
  int64_t input_vocab() const { return input_vocab_; }
  const TaskInfo& task() const { return task_; }
  Model& model() { return *model_; }

  // Returns the prompt followed by o.length generated tokens. Throws a bad-input error for an
  // empty prompt, a prompt id outside [0, input_vocab), or options out of range.
  std::vector<int32_t> generate(const std::vector<int32_t>& prompt, const TextSampleOptions& o);

 private:
  int32_t choose(const float* logits, const TextSampleOptions& o, uint64_t position);

  std::string path_;
  TaskInfo task_;
  int64_t context_ = 0, classes_ = 0, input_vocab_ = 0;
  std::unique_ptr<Model> model_;
  // Per-step buffers, sized once.
  Tensor x_;
  std::vector<double> scaled_, probs_;
  std::vector<int32_t> order_;
};

}  // namespace dptrain
