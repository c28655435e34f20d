// Importing data from CSV and NumPy .npy files into the dataset layout.
#pragma once

#include <string>

#include "storage/dataset/DatasetFile.h"

namespace dptrain {

struct CsvImportOptions {
  std::string path;
  std::string label_column;  // a header name or a 0-based index
  bool header = false;
  std::string task = "auto";  // auto | classification | regression
};

DatasetContents import_csv(const CsvImportOptions& options);
// x_path: float32/float64 (or integer) array [N, ...]; y_path (optional): integer class ids [N] or
// float targets [N] / [N, k].
DatasetContents import_npy(const std::string& x_path, const std::string& y_path);

// A human-readable report of a dataset file: shapes, dtypes, class counts, NaN/Inf count.
std::string inspect_dataset(const std::string& path);

}  // namespace dptrain
