// Stops training when a validation metric has not improved for `patience` epochs and keeps a
// copy of the best parameters to restore at the end.
#pragma once

#include <cstdint>

#include "models/core/Tensor.h"
#include "trainer/TrainConfig.h"

namespace dptrain {

class EarlyStopping {
 public:
  explicit EarlyStopping(const EarlyStoppingConfig& config) : c_(config) {}
  bool enabled() const { return c_.enabled; }
  // Reports an epoch's validation loss and accuracy; copies params when they are the best so far.
  // Returns true when training should stop.
  bool observe(int64_t epoch, double val_loss, double val_accuracy, const Tensor& params);
  // Copies the best parameters back (when configured and any were kept).
  bool restore(Tensor& params) const;

  struct State {
    double best = 0.0;
    int64_t best_epoch = -1;
    int64_t bad_epochs = 0;
  };
  const State& state() const { return state_; }
  void set_state(const State& s) { state_ = s; }
  Tensor& best_params() { return best_; }

 private:
  EarlyStoppingConfig c_;
  State state_;
  Tensor best_;
};

}  // namespace dptrain
