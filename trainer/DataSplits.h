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
  // Training rows whose /labeled mask is 0: they carry no label the trainer may use (self-training
  // predicts them; supervised training leaves them out).
  DataSplit unlabeled;
};

// Opens the files of [data] and splits; throws naming the key or file when something is missing.
DataSplits make_splits(const DataConfig& config);

// Writes `out`: the rows of `labelled` (marked labelled) followed by those of `unlabelled` (marked
// unlabelled; their /y kept when the file has one, for reporting pseudo-label accuracy), so that a
// two-file semi-supervised setup reads as one file with a /labeled mask.
void merge_for_self_training(const std::string& labelled, const std::string& unlabelled, const std::string& out);

// All rows of a file, 0..n-1.
std::vector<int64_t> all_rows(const DatasetFile& file);

}  // namespace dptrain
