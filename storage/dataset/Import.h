// Importing data from CSV, NumPy .npy and text files into the dataset layout.
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

// Byte-level language-model data from a UTF-8 text file: token = byte value (num_classes 256),
// sample i holds x = bytes [iT, iT + T) as floats and per-step targets y = bytes [iT + 1, iT + T + 1)
// (label_width T). With `validation_fraction` > 0 the last floor(fraction * size) bytes, a
// contiguous tail, make the validation samples, so no window spans both parts; the bytes left
// over after the last whole window of each part are dropped. Binary input (a NUL byte, invalid
// UTF-8, more than 1 % control characters) is refused, naming the first offending byte.
struct TextImportOptions {
  std::string path;
  int64_t context = 0;               // T
  double validation_fraction = 0.0;  // 0: everything is training data
};

struct TextImport {
  DatasetContents train, validation;  // validation has no rows without a split
};

TextImport import_text(const TextImportOptions& options);

// Writes a training file and, when `validation` has rows, a validation file: the validation file
// first, removed again if the training file cannot be written, so a failure leaves neither.
void write_train_validation_files(const std::string& train_path, const DatasetContents& train,
                                  const std::string& validation_path, const DatasetContents& validation);

// A human-readable report of a dataset file: shapes, dtypes, class counts, NaN/Inf count.
std::string inspect_dataset(const std::string& path);

}  // namespace dptrain
