// The losses, as one class with a kind: each is a single kernel call over the model's output, so
// separate classes would only repeat the plumbing. Every loss adds the sum of its per-sample
// losses to a stats buffer on the device and writes d = scale * dL/dpred. Training passes scale 1
// (a weight for an added term): gradients are sums over the global batch, which the optimizer
// step divides by it (docs/design.md rule 5).
#pragma once

#include <cstdint>
#include <string>

#include "models/core/Tensor.h"

namespace dptrain {

enum class LossKind {
  mean_squared_error,
  binary_cross_entropy,   // sigmoid + BCE on logits, 0/1 labels or float targets
  softmax_cross_entropy,  // class ids or soft target distributions
  multiclass_hinge,       // Weston-Watkins SVM loss, margin 1
  prediction_entropy,     // H(softmax(z)) for unlabelled data; needs no targets
};

// Per-sample targets of a batch: class ids, or float values (regression, soft labels). With
// per-step targets a sample has `per_row` class ids (one per step, -1 for padding) and the model's
// output per sample [T, classes] is scored step by step: a loss over rows x per_row positions.
struct Targets {
  const int32_t* labels = nullptr;
  const float* values = nullptr;
  int64_t per_row = 1;
};

class Loss {
 public:
  // reconstruction: the targets are the model's input itself (autoencoders); the trainer passes x.
  explicit Loss(LossKind kind, float margin = 1.0f, bool reconstruction = false)
      : kind_(kind), margin_(margin), reconstruction_(reconstruction) {}
  // Parses "mse", "bce", "cross_entropy", "hinge", "entropy" (and long names); throws naming it.
  static LossKind parse(const std::string& name);
  static std::string name(LossKind kind);

  LossKind kind() const { return kind_; }
  // Whether the loss predicts classes (so accuracy is meaningful).
  bool classifies() const {
    return !reconstruction_ && kind_ != LossKind::mean_squared_error && kind_ != LossKind::prediction_entropy;
  }
  bool reconstruction() const { return reconstruction_; }
  // Whether targets are class ids (int32) rather than floats.
  bool wants_labels() const { return kind_ == LossKind::multiclass_hinge; }
  // Adds stats (see LossStat) of `pred` against `targets`; writes dpred = scale * dL/dpred if asked.
  void evaluate(const Tensor& pred, const Targets& targets, float scale, Tensor* dpred, float* stats) const;

 private:
  LossKind kind_;
  float margin_;
  bool reconstruction_;
};

}  // namespace dptrain
