// z-score feature scaling: per-feature mean and standard deviation of the training rows, computed
// in a fixed order so every rank (and every world size) gets the same bits, stored with the model
// and applied by the reader at train, eval and predict time.
#pragma once

#include <cstdint>
#include <vector>

#include "storage/dataset/DatasetFile.h"

namespace dptrain {

struct FeatureScaler {
  std::vector<float> mean, std;

  bool empty() const { return mean.empty(); }
  // Statistics over `rows` of `file` (streamed in chunks). Constant features get std 1.
  static FeatureScaler fit(const DatasetFile& file, const std::vector<int64_t>& rows);
  std::vector<float> inv_std() const;
};

}  // namespace dptrain
