// Learning rate as a function of the global step and epoch, plus the one schedule that reacts to
// validation (x factor on a plateau). Linear warmup (Goyal et al., 2017) multiplies any schedule.
// Its state is two numbers, saved in checkpoints.
#pragma once

#include <cstdint>

#include "trainer/TrainConfig.h"

namespace dptrain {

class LrSchedule {
 public:
  LrSchedule(const ScheduleConfig& config, double base_lr, int64_t total_steps, int64_t steps_per_epoch);
  // The rate for global step `step` (0-based).
  double lr(int64_t step) const;
  // Reports a validation loss at an epoch's end (plateau schedule); returns true when it cut the rate.
  bool observe(double val_loss);

  struct State {
    double plateau_scale = 1.0;
    double best = 0.0;
    int64_t bad_epochs = 0;
    bool has_best = false;
  };
  const State& state() const { return state_; }
  void set_state(const State& s) { state_ = s; }

 private:
  ScheduleConfig c_;
  double base_;
  int64_t total_, per_epoch_;
  State state_;
};

}  // namespace dptrain
