#include "trainer/TestHooks.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <thread>

#include "models/kernels/KernelBackend.h"

namespace dptrain {

const TestHooks& TestHooks::get() {
  static const TestHooks hooks = [] {
    TestHooks h;
    if (const char* s = std::getenv("DPTRAIN_TEST_STALL")) {
      long long step = -1;
      if (std::sscanf(s, "%d:%lld:%lf", &h.stall_rank, &step, &h.stall_seconds) != 3) h.stall_rank = -1;
      h.stall_step = step;
    }
    if (const char* s = std::getenv("DPTRAIN_TEST_STEP_MS")) h.step_ms = std::atof(s);
    if (const char* s = std::getenv("DPTRAIN_TEST_NONFINITE")) {
      long long step = -1;
      if (std::sscanf(s, "%d:%lld", &h.nonfinite_rank, &step) != 2) h.nonfinite_rank = -1;
      h.nonfinite_step = step;
    }
    if (const char* s = std::getenv("DPTRAIN_TEST_SLOW"))
      if (std::sscanf(s, "%d:%lf", &h.slow_rank, &h.slow_ms) != 2) h.slow_rank = -1;
    return h;
  }();
  return hooks;
}

void TestHooks::before_step(int rank, int64_t step) const {
  if (rank == stall_rank && step == stall_step)
    std::this_thread::sleep_for(std::chrono::duration<double>(stall_seconds));
  if (step_ms > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(step_ms));
}

void TestHooks::in_compute(int rank) const {
  if (rank == slow_rank) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(slow_ms));
}

void TestHooks::poison_gradient(int rank, int64_t step, float* dout, Device device) const {
  if (rank != nonfinite_rank || step != nonfinite_step) return;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  copy_memory(dout, device, &nan, Device::cpu, sizeof nan);
}

}  // namespace dptrain
