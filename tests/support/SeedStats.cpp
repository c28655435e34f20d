#include "support/SeedStats.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

namespace dptrain::test {

std::vector<uint64_t> quality_seeds(int n) {
  std::vector<uint64_t> seeds;
  if (const char* env = std::getenv("DPTRAIN_TEST_SEEDS"); env && *env) {
    std::istringstream in(env);
    std::string word;
    while (in >> word) {
      char* end = nullptr;
      const unsigned long long v = std::strtoull(word.c_str(), &end, 10);
      if (!end || *end)
        throw std::invalid_argument("DPTRAIN_TEST_SEEDS: '" + word + "' is not a seed (a whole number)");
      seeds.push_back(v);
    }
    if (seeds.empty()) throw std::invalid_argument("DPTRAIN_TEST_SEEDS names no seed");
    return seeds;
  }
  for (int s = 1; s <= n; ++s) seeds.push_back(static_cast<uint64_t>(s));
  return seeds;
}

void SeedStats::add(uint64_t seed, double value) { values_.emplace_back(seed, value); }

double SeedStats::mean() const {
  double s = 0.0;
  for (const auto& v : values_) s += v.second;
  return values_.empty() ? 0.0 : s / static_cast<double>(values_.size());
}

double SeedStats::min() const {
  double m = values_.empty() ? 0.0 : values_[0].second;
  for (const auto& v : values_) m = std::min(m, v.second);
  return m;
}

double SeedStats::max() const {
  double m = values_.empty() ? 0.0 : values_[0].second;
  for (const auto& v : values_) m = std::max(m, v.second);
  return m;
}

int SeedStats::count_at_least(double threshold) const {
  return static_cast<int>(
      std::count_if(values_.begin(), values_.end(), [&](const auto& v) { return v.second >= threshold; }));
}

std::string SeedStats::summary() const {
  std::ostringstream s;
  s.precision(4);
  s << what_ << ":";
  for (size_t i = 0; i < values_.size(); ++i)
    s << (i ? ", " : " ") << values_[i].second << " (seed " << values_[i].first << ")";
  s << " | mean " << mean() << ", min " << min() << ", max " << max();
  const char* engine = std::getenv("DPTRAIN_CPU_ENGINE");
  s << " [engine " << (engine && *engine ? engine : "auto") << "]";
  return s.str();
}

void SeedStats::report() const {
  std::printf("%s\n", summary().c_str());
  std::fflush(stdout);
}

}  // namespace dptrain::test
