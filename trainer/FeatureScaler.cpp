#include "trainer/FeatureScaler.h"

#include <algorithm>
#include <cmath>

namespace dptrain {

FeatureScaler FeatureScaler::fit(const DatasetFile& file, const std::vector<int64_t>& rows) {
  const int64_t d = file.row_size();
  std::vector<double> sum(static_cast<size_t>(d), 0.0), sq(static_cast<size_t>(d), 0.0);
  std::vector<int64_t> sorted = rows;
  std::sort(sorted.begin(), sorted.end());
  const int64_t chunk = std::max<int64_t>(1, (int64_t{16} << 20) / (d * 4));
  std::vector<float> buf;
  for (size_t c = 0; c < sorted.size(); c += static_cast<size_t>(chunk)) {
    int64_t n = std::min<int64_t>(chunk, static_cast<int64_t>(sorted.size() - c));
    buf.resize(static_cast<size_t>(n * d));
    file.read_row_list(sorted.data() + c, n, buf.data());
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < d; ++j) {
        double v = buf[static_cast<size_t>(r * d + j)];
        sum[static_cast<size_t>(j)] += v;
        sq[static_cast<size_t>(j)] += v * v;
      }
  }
  FeatureScaler s;
  s.mean.resize(static_cast<size_t>(d));
  s.std.resize(static_cast<size_t>(d));
  const double n = static_cast<double>(rows.size());
  for (int64_t j = 0; j < d; ++j) {
    double m = sum[static_cast<size_t>(j)] / n;
    double var = std::max(0.0, sq[static_cast<size_t>(j)] / n - m * m);
    double sd = std::sqrt(var);
    s.mean[static_cast<size_t>(j)] = static_cast<float>(m);
    s.std[static_cast<size_t>(j)] = sd > 1e-6 ? static_cast<float>(sd) : 1.0f;
  }
  return s;
}

std::vector<float> FeatureScaler::inv_std() const {
  std::vector<float> out(std.size());
  for (size_t i = 0; i < std.size(); ++i) out[i] = 1.0f / std[i];
  return out;
}

}  // namespace dptrain
