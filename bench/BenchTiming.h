// Clocks of the benchmark programs: the process's CPU time beside the wall clock, the GFLOP/s of a
// call repeated for a fixed wall time on both (sgemm_bench, train_bench, conv_bench), and medians.
#pragma once

#include <algorithm>
#include <chrono>
#include <ctime>
#include <vector>

namespace dptrain::bench {

// CPU time of the whole process (all threads). On one thread it is the time the process ran,
// which leaves out the time slices other processes on a shared machine took.
inline double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// The median of v (the mean of the two middle values for an even count); 0 for none.
inline double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Rate {
  double wall_gflops = 0.0, cpu_gflops = 0.0;
};

// `call` (`flops` each time) run `warmup` times untimed, then repeated until `seconds` of wall
// time have passed.
template <class Call>
Rate gflops_over(double seconds, double flops, int warmup, Call&& call) {
  for (int i = 0; i < warmup; ++i) call();
  const double cpu0 = cpu_seconds();
  const auto wall0 = std::chrono::steady_clock::now();
  double wall = 0.0;
  long calls = 0;
  do {
    call();
    ++calls;
    wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  } while (wall < seconds);
  const double total = flops * static_cast<double>(calls) / 1e9;
  return {total / wall, total / (cpu_seconds() - cpu0)};
}

}  // namespace dptrain::bench
