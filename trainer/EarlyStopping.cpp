#include "trainer/EarlyStopping.h"

namespace dptrain {

bool EarlyStopping::observe(int64_t epoch, double val_loss, double val_accuracy, const Tensor& params) {
  if (!c_.enabled) return false;
  // Compare as "higher is better".
  double score = c_.metric == "val_accuracy" ? val_accuracy : -val_loss;
  if (state_.best_epoch < 0 || score > state_.best + c_.min_delta) {
    state_.best = score;
    state_.best_epoch = epoch;
    state_.bad_epochs = 0;
    if (c_.restore_best) {
      best_.resize(params.shape(), params.device());
      best_.copy_from(params);
    }
    return false;
  }
  return ++state_.bad_epochs >= c_.patience;
}

bool EarlyStopping::restore(Tensor& params) const {
  if (!c_.enabled || !c_.restore_best || best_.empty()) return false;
  params.copy_from(best_);
  return true;
}

}  // namespace dptrain
