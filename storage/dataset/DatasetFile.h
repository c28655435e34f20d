// A dataset file in the layout of docs/design.md ("Data files"): /x float [N, ...], optional /y (class
// ids [N], per-step class ids [N, T] with -1 for padding, or float targets [N, k]), optional
// /labeled uint8 [N], root attributes format, task and num_classes. Opening validates the layout
// and names every defect; labels are read and checked once at open, features are read on demand
// (by row range or sorted row list) and checked for NaN/Inf as they are read. Files written by
// h5py in this layout load.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/core/Shape.h"
#include "storage/dataset/DirectRowReader.h"
#include "storage/hdf5/H5.h"

namespace dptrain {

enum class LabelKind { none, classes, values };

// Everything a dataset file holds, in memory; what synthesis and import produce.
struct DatasetContents {
  Shape sample_shape;
  std::vector<float> x;
  LabelKind label_kind = LabelKind::none;
  std::vector<int32_t> labels;  // classes: label_width per row, row-major
  int64_t label_width = 1;      // > 1: per-step class ids, written as /y [N, label_width]
  std::vector<float> targets;   // values: target_dim per row
  int64_t target_dim = 0;
  int64_t num_classes = 0;
  std::vector<uint8_t> labeled;  // optional mask
  // Extra float datasets written alongside (e.g. /true_weights of synthetic linear data).
  std::vector<std::pair<std::string, std::vector<float>>> extras;
  int64_t rows() const;
};

// Writes `c` to `path` atomically (temporary name, fsync, rename) in the dataset layout.
void write_dataset_file(const std::string& path, const DatasetContents& c);

class DatasetFile {
 public:
  static constexpr const char* format_tag = "dptrain-dataset/1";

  // Opens and validates; throws a bad-input error naming the file and the defect.
  explicit DatasetFile(const std::string& path);

  const std::string& path() const { return path_; }
  int64_t rows() const { return rows_; }
  const Shape& sample_shape() const { return sample_shape_; }
  int64_t row_size() const { return sample_shape_.numel(); }
  LabelKind label_kind() const { return label_kind_; }
  int64_t num_classes() const { return num_classes_; }
  int64_t target_dim() const { return target_dim_; }
  const std::string& task() const { return task_; }
  // Class ids, label_width() per row (row-major). Width 1: /y [N]; width T > 1: per-step ids from
  // /y [N, T], where -1 marks a padding position that losses ignore.
  const std::vector<int32_t>& labels() const { return labels_; }
  int64_t label_width() const { return label_width_; }
  const std::vector<float>& targets() const { return targets_; }
  bool has_labeled_mask() const { return !labeled_.empty(); }
  const std::vector<uint8_t>& labeled_mask() const { return labeled_; }

  // Reads rows [begin, begin + count) of /x into out (count * row_size floats).
  void read_rows(int64_t begin, int64_t count, float* out) const;
  // Reads the given rows (ascending) of /x: with DirectRowReader when the layout allows (one
  // pread per chunk touched), else through HDF5 with one hyperslab per run of consecutive rows.
  void read_row_list(const int64_t* rows, int64_t count, float* out) const;
  // Whether row reads bypass HDF5 (DirectRowReader: plain float32 /x, unfiltered or Fletcher32).
  bool reads_directly() const { return direct_ != nullptr; }
  // Reads a float dataset other than /x (e.g. /true_weights) whole.
  std::vector<float> read_extra(const std::string& name) const;

 private:
  void check_finite(const float* data, int64_t first_row, int64_t count, const int64_t* rows) const;

  std::string path_;
  H5Id file_, x_;
  int64_t rows_ = 0;
  Shape sample_shape_;
  LabelKind label_kind_ = LabelKind::none;
  int64_t num_classes_ = 0, target_dim_ = 0, label_width_ = 1;
  std::string task_;
  std::vector<int32_t> labels_;
  std::vector<float> targets_;
  std::vector<uint8_t> labeled_;
  std::unique_ptr<DirectRowReader> direct_;  // null when /x must be read through HDF5
};

}  // namespace dptrain
