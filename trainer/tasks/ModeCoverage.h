// How well a generator covers a Gaussian mixture (the 2-D ring and grid benchmarks of VEEGAN,
// Srivastava et al. 2017, and PacGAN, Lin et al. 2018): each generated sample is assigned to its
// nearest mode by Mahalanobis distance under the mixture's per-dimension sigma; it is "high
// quality" when that distance is at most `sigmas` (3); a mode is "covered" when at least
// `min_samples` (20, PacGAN's rule) high-quality samples fall on it. The modes and sigma are
// measured from the labelled real data (class = mode): per-class means and the pooled
// within-class standard deviation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "storage/dataset/DatasetFile.h"

namespace dptrain {

struct MixtureModes {
  int64_t dim = 0;
  std::vector<double> centres;  // modes x dim
  std::vector<double> sigma;    // dim
  int64_t count() const { return dim ? static_cast<int64_t>(centres.size()) / dim : 0; }
};

struct ModeCoverage {
  int64_t modes = 0, covered = 0, samples = 0;
  double high_quality = 0.0;      // fraction of samples
  std::vector<int64_t> per_mode;  // high-quality samples per mode
};

// Whether `file` is a mixture these metrics apply to: flat samples of at most 3 dimensions with
// class labels (one class per mode).
bool is_gaussian_mixture(const DatasetFile& file);
// Modes and sigma from the labelled rows `rows` of `file`.
MixtureModes measure_modes(const DatasetFile& file, const std::vector<int64_t>& rows);
ModeCoverage score_mode_coverage(const MixtureModes& modes, const float* samples, int64_t count, double sigmas,
                                 int64_t min_samples);
// "7/8 modes covered, 91.3% high-quality samples (2500 samples)".
std::string describe(const ModeCoverage& c);

}  // namespace dptrain
