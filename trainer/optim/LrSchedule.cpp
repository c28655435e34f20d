#include "trainer/optim/LrSchedule.h"

#include <algorithm>
#include <cmath>

namespace dptrain {

LrSchedule::LrSchedule(const ScheduleConfig& config, double base_lr, int64_t total_steps, int64_t steps_per_epoch)
    : c_(config),
      base_(base_lr),
      total_(std::max<int64_t>(1, total_steps)),
      per_epoch_(std::max<int64_t>(1, steps_per_epoch)) {}

double LrSchedule::lr(int64_t step) const {
  double lr = base_;
  switch (c_.kind) {
    case ScheduleKind::constant:
      break;
    case ScheduleKind::inv_sqrt:
      lr = base_ / std::sqrt(static_cast<double>(step) + 1.0);
      break;
    case ScheduleKind::step:
      lr = base_ * std::pow(c_.gamma, static_cast<double>(step / per_epoch_ / c_.step_epochs));
      break;
    case ScheduleKind::plateau:
      lr = base_ * state_.plateau_scale;
      break;
    case ScheduleKind::cosine: {
      int64_t span = std::max<int64_t>(1, total_ - c_.warmup_steps);
      double t = std::clamp(static_cast<double>(step - c_.warmup_steps) / static_cast<double>(span), 0.0, 1.0);
      lr = c_.min_lr + (base_ - c_.min_lr) * 0.5 * (1.0 + std::cos(M_PI * t));
      break;
    }
  }
  lr = std::max(lr, c_.min_lr);
  if (step < c_.warmup_steps) {
    double f = static_cast<double>(step + 1) / static_cast<double>(c_.warmup_steps);
    lr *= c_.warmup_start + (1.0 - c_.warmup_start) * f;
  }
  return lr;
}

bool LrSchedule::observe(double val_loss) {
  if (c_.kind != ScheduleKind::plateau) return false;
  if (!state_.has_best || val_loss < state_.best) {
    state_.best = val_loss;
    state_.has_best = true;
    state_.bad_epochs = 0;
    return false;
  }
  if (++state_.bad_epochs > c_.plateau_patience) {
    state_.plateau_scale *= c_.plateau_factor;
    state_.bad_epochs = 0;
    return true;
  }
  return false;
}

}  // namespace dptrain
