#include "trainer/tasks/ModeCoverage.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "models/core/Error.h"

namespace dptrain {

bool is_gaussian_mixture(const DatasetFile& file) {
  return file.sample_shape().rank() == 1 && file.row_size() <= 3 && file.label_kind() == LabelKind::classes &&
         file.num_classes() >= 2;
}

MixtureModes measure_modes(const DatasetFile& file, const std::vector<int64_t>& rows) {
  MixtureModes m;
  m.dim = file.row_size();
  const int64_t k = file.num_classes(), n = static_cast<int64_t>(rows.size());
  std::vector<float> x(static_cast<size_t>(n * m.dim));
  if (n) file.read_row_list(rows.data(), n, x.data());
  std::vector<double> sum(static_cast<size_t>(k * m.dim), 0.0);
  std::vector<int64_t> count(static_cast<size_t>(k), 0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = file.labels()[static_cast<size_t>(rows[static_cast<size_t>(i)])];
    ++count[static_cast<size_t>(c)];
    for (int64_t j = 0; j < m.dim; ++j)
      sum[static_cast<size_t>(c * m.dim + j)] += x[static_cast<size_t>(i * m.dim + j)];
  }
  for (int64_t c = 0; c < k; ++c)
    if (count[static_cast<size_t>(c)] < 2)
      fail_input(file.path() + ": mode " + std::to_string(c) +
                 " has fewer than 2 training rows; its centre and spread cannot be measured");
  m.centres.resize(sum.size());
  for (int64_t c = 0; c < k; ++c)
    for (int64_t j = 0; j < m.dim; ++j)
      m.centres[static_cast<size_t>(c * m.dim + j)] =
          sum[static_cast<size_t>(c * m.dim + j)] / static_cast<double>(count[static_cast<size_t>(c)]);
  std::vector<double> ss(static_cast<size_t>(m.dim), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = file.labels()[static_cast<size_t>(rows[static_cast<size_t>(i)])];
    for (int64_t j = 0; j < m.dim; ++j) {
      const double d = x[static_cast<size_t>(i * m.dim + j)] - m.centres[static_cast<size_t>(c * m.dim + j)];
      ss[static_cast<size_t>(j)] += d * d;
    }
  }
  m.sigma.resize(static_cast<size_t>(m.dim));
  for (int64_t j = 0; j < m.dim; ++j)
    m.sigma[static_cast<size_t>(j)] =
        std::max(std::sqrt(ss[static_cast<size_t>(j)] / static_cast<double>(n - k)), 1e-12);
  return m;
}

ModeCoverage score_mode_coverage(const MixtureModes& modes, const float* samples, int64_t count, double sigmas,
                                 int64_t min_samples) {
  ModeCoverage r;
  r.modes = modes.count();
  r.samples = count;
  r.per_mode.assign(static_cast<size_t>(r.modes), 0);
  int64_t good = 0;
  for (int64_t i = 0; i < count; ++i) {
    double best = std::numeric_limits<double>::infinity();
    int64_t nearest = -1;
    for (int64_t c = 0; c < r.modes; ++c) {
      double d2 = 0.0;
      for (int64_t j = 0; j < modes.dim; ++j) {
        const double z = (samples[i * modes.dim + j] - modes.centres[static_cast<size_t>(c * modes.dim + j)]) /
                         modes.sigma[static_cast<size_t>(j)];
        d2 += z * z;
      }
      if (d2 < best) best = d2, nearest = c;
    }
    if (nearest >= 0 && best <= sigmas * sigmas) {  // NaN samples are never high quality
      ++good;
      ++r.per_mode[static_cast<size_t>(nearest)];
    }
  }
  for (int64_t n : r.per_mode) r.covered += n >= min_samples;
  r.high_quality = count ? static_cast<double>(good) / static_cast<double>(count) : 0.0;
  return r;
}

std::string describe(const ModeCoverage& c) {
  char line[160];
  std::snprintf(line, sizeof line, "%lld/%lld modes covered, %.1f%% high-quality samples (%lld samples)",
                static_cast<long long>(c.covered), static_cast<long long>(c.modes), 100.0 * c.high_quality,
                static_cast<long long>(c.samples));
  return line;
}

}  // namespace dptrain
