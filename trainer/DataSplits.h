// Train, validation and test rows: separate files, or fractions of the training file split by a
// seeded permutation (the same on every rank and world size).
#pragma once

#include <memory>
#include <vector>

#include "storage/dataset/DatasetFile.h"
#include "trainer/TrainConfig.h"

namespace dptrain {

struct DataSplit {
  std::shared_ptr<const DatasetFile> file;
  std::vector<int64_t> rows;  // ascending file rows
  bool empty() const { return rows.empty(); }
};

struct DataSplits {
  DataSplit train, validation, test;
};

// Opens the files of [data] and splits; throws naming the key or file when something is missing.
DataSplits make_splits(const DataConfig& config);

// All rows of a file, 0..n-1.
std::vector<int64_t> all_rows(const DatasetFile& file);

}  // namespace dptrain
