// Fault injection for the robustness tests, read once from the environment and inert otherwise:
//   DPTRAIN_TEST_STALL=RANK:STEP:SECONDS  rank RANK sleeps SECONDS before step STEP (watchdog test)
#pragma once

#include <cstdint>

namespace dptrain {

struct TestHooks {
  int stall_rank = -1;
  int64_t stall_step = -1;
  double stall_seconds = 0.0;

  static const TestHooks& get();
  // Sleeps when this rank and step are the ones to stall.
  void maybe_stall(int rank, int64_t step) const;
};

}  // namespace dptrain
