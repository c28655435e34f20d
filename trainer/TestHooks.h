// Fault injection for the robustness tests, read once from the environment and inert otherwise:
//   DPTRAIN_TEST_STALL=RANK:STEP:SECONDS  rank RANK sleeps SECONDS before step STEP (watchdog test)
//   DPTRAIN_TEST_STEP_MS=MS               every step takes at least MS more milliseconds, so that a
//                                         test can signal or kill a job at a step of its choosing
//   DPTRAIN_TEST_SLOW=RANK:MS             rank RANK's forward and backward take MS more milliseconds
//                                         every step (a straggler)
//   DPTRAIN_TEST_NONFINITE=RANK:STEP      rank RANK's loss gradient gets a NaN in the step after STEP
//                                         completed ones (as STALL counts), so the summed gradient of
//                                         step STEP + 1 is not finite
#pragma once

#include <cstdint>

#include "models/core/Device.h"

namespace dptrain {

struct TestHooks {
  int stall_rank = -1;
  int64_t stall_step = -1;
  double stall_seconds = 0.0;
  double step_ms = 0.0;
  int slow_rank = -1;
  double slow_ms = 0.0;
  int nonfinite_rank = -1;
  int64_t nonfinite_step = -1;

  static const TestHooks& get();
  // Sleeps when this rank and step are the ones to stall, and by step_ms before every step.
  void before_step(int rank, int64_t step) const;
  // Sleeps slow_ms on the slow rank, inside the step's compute phase.
  void in_compute(int rank) const;
  // Writes a NaN into the first float of the loss gradient `dout` at the chosen rank and step.
  void poison_gradient(int rank, int64_t step, float* dout, Device device) const;
};

}  // namespace dptrain
