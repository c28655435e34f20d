// The layer contract (docs/design.md rule 2): setup once from the shape of one input sample, declaring
// parameters into the model's flat buffers; forward(in, out); backward(in, out, dout, din) that
// accumulates (+=) parameter gradients and overwrites din. Containers compose layers.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/core/Philox.h"
#include "models/core/Shape.h"
#include "models/core/Tensor.h"

namespace dptrain {

enum class Mode { train, eval };

// How a parameter starts; fan-in and fan-out come from the layer.
struct ParamInit {
  enum Kind { zeros, ones, uniform, normal, he_uniform, xavier_uniform, constant } kind = zeros;
  float scale = 0.0f;  // bound for uniform, std for normal, the value for constant
  int64_t fan_in = 1, fan_out = 1;
};

// Sums a small buffer over every rank of the job, for layers whose statistics must span the
// global batch (synchronized batch norm). The trainer implements it over its communicator;
// models/ knows nothing of MPI.
class CrossRankSum {
 public:
  virtual ~CrossRankSum() = default;
  virtual void sum(float* data, int64_t count) = 0;
  // In double: batch statistics summed in double round the same however the batch is split, so a
  // network full of ReLU kinks sees the same normalized activations on N ranks as on one.
  virtual void sum(double* data, int64_t count) = 0;
};

// What one step's forward and backward passes know besides their tensors.
struct StepContext {
  Mode mode = Mode::train;
  uint64_t seed = 0;
  uint64_t step = 0;
  int64_t row0 = 0;  // global sample index of local row 0 (keys per-sample random draws)
  // Called after each layer's backward with the flat-buffer offset from which all parameter
  // gradients are final; the gradient reducer starts all-reducing buckets from it.
  const std::function<void(int64_t)>* on_gradients_ready = nullptr;
  // False when only input gradients are wanted (a frozen model, such as the discriminator in a
  // generator step): layers then leave their parameter gradients untouched.
  bool parameter_gradients = true;
  // Set when training on several ranks; null on one rank (statistics are then local already).
  CrossRankSum* cross_rank = nullptr;
  // Layers with an auxiliary loss (the VAE's KL term) add its sum over their rows to
  // loss_stats[stat_loss] in forward (when not null), so the reported loss includes it, and its
  // per-row gradient in backward, unscaled like the main loss's (the optimizer step divides the
  // summed gradients by the global batch: docs/design.md rule 5).
  float* loss_stats = nullptr;
};

// Where a layer's parameter lives in the flat buffers, filled in by ParamRegistry.
struct ParamSlot {
  Tensor* value = nullptr;
  Tensor* grad = nullptr;
};

// Collects parameter declarations in layer order and lays them out in one flat buffer. Buffers
// (non-trainable state such as batch-norm running statistics) are declared the same way into a
// second flat buffer: checkpoints and model files save them, the optimizer never sees them.
class ParamRegistry {
 public:
  struct Entry {
    std::string path;  // "03_dense/weight"
    Shape shape;
    ParamInit init;
    int64_t offset;  // in floats, in the flat buffers
    ParamSlot slot;
    bool frozen = false;  // declared inside a frozen layer (trainable = false, model.freeze)
  };
  // Flat-buffer offsets are padded to this many floats so every parameter starts 64-byte aligned.
  static constexpr int64_t alignment = 16;

  void push_scope(const std::string& name) { scopes_.push_back(name); }
  void pop_scope() { scopes_.pop_back(); }
  std::string scope() const;

  // Declares a parameter of the current scope; value and grad are bound to views later.
  void declare(const std::string& name, const Shape& shape, const ParamInit& init, Tensor* value, Tensor* grad);
  // Fine-tuning: the layer paths model.freeze names. A container asks frozen(scope) for each
  // child; every parameter declared between push_frozen() and pop_frozen() is frozen.
  void set_freeze_paths(std::vector<std::string> paths);
  bool named_frozen(const std::string& scope);
  void push_frozen() { ++frozen_depth_; }
  void pop_frozen() { --frozen_depth_; }
  bool inside_frozen() const { return frozen_depth_ > 0; }
  // The model.freeze paths that named no layer.
  std::vector<std::string> unmatched_freeze_paths() const;

  // Total floats, padding included.
  int64_t size() const { return size_; }
  const std::vector<Entry>& entries() const { return entries_; }
  // Makes every declared Tensor a view into `values` and `grads` (flat buffers of size()).
  void bind(float* values, float* grads, Device device);

  // Declares a buffer of the current scope (its Entry has no grad); bound by bind_buffers.
  void declare_buffer(const std::string& name, const Shape& shape, const ParamInit& init, Tensor* value);
  int64_t buffer_size() const { return buffer_size_; }
  const std::vector<Entry>& buffer_entries() const { return buffer_entries_; }
  void bind_buffers(float* values, Device device);

 private:
  std::vector<std::string> scopes_;
  std::vector<std::string> freeze_paths_;
  std::vector<bool> freeze_matched_;
  int frozen_depth_ = 0;
  std::vector<Entry> entries_, buffer_entries_;
  int64_t size_ = 0, buffer_size_ = 0;
};

class Layer {
 public:
  virtual ~Layer() = default;
  // Short kind name, used in parameter paths and messages: "dense", "conv2d".
  virtual std::string kind() const = 0;
  // Declares parameters for one input sample of shape `in` and returns the output sample shape.
  // Throws a bad-input error naming the layer when the shape does not fit.
  virtual Shape setup(const Shape& in, ParamRegistry& registry) = 0;
  // out = f(in); `out` is resized by the layer (its storage is reused between steps).
  virtual void forward(const Tensor& in, Tensor& out, const StepContext& ctx) = 0;
  // Accumulates parameter gradients and writes din (when not null) from dout.
  virtual void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din,
                        const StepContext& ctx) = 0;
  // First flat-buffer offset of this layer's parameters (or of those after it when it has none).
  int64_t param_offset() const { return param_offset_; }
  void set_param_offset(int64_t offset) { param_offset_ = offset; }
  // A short description for `dptrain` model summaries.
  virtual std::string describe() const { return kind(); }
  // Fine-tuning: a frozen layer (trainable = false in its table, or named by model.freeze) keeps
  // its parameters: its container runs its backward without parameter gradients, and the trainer
  // gives them no optimizer state and leaves them out of the all-reduce.
  bool trainable() const { return trainable_; }
  void set_trainable(bool trainable) { trainable_ = trainable; }

 private:
  int64_t param_offset_ = 0;
  bool trainable_ = true;
};

}  // namespace dptrain
