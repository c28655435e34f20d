// Learning-quality tests assert over several seeds, never one (docs/testing.md): each seed draws
// its own data and its own initialization, the test collects one figure per seed and asserts a
// mean and a floor whose margins were measured over more seeds under every CPU engine.
// DPTRAIN_TEST_SEEDS="1 2 3 4 5 6 7 8" runs other seeds, to measure those margins again; with
// DPTRAIN_CPU_ENGINE=openblas the same tests run on OpenBLAS's rounding instead of our kernel's.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dptrain::test {

// The seeds 1..n, or those of DPTRAIN_TEST_SEEDS when it is set.
std::vector<uint64_t> quality_seeds(int n = 3);

// One figure per seed ("test accuracy", "share recognised"), printed as a line for the logs.
class SeedStats {
 public:
  explicit SeedStats(std::string what) : what_(std::move(what)) {}
  void add(uint64_t seed, double value);
  double mean() const;
  double min() const;
  double max() const;
  // How many seeds reached `threshold` (for k-of-n assertions).
  int count_at_least(double threshold) const;
  int size() const { return static_cast<int>(values_.size()); }
  // "what: 0.991 (seed 1), 0.987 (seed 2), ... | mean 0.989, min 0.987"; also printed by report().
  std::string summary() const;
  void report() const;

 private:
  std::string what_;
  std::vector<std::pair<uint64_t, double>> values_;
};

}  // namespace dptrain::test
