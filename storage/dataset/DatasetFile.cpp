#include "storage/dataset/DatasetFile.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>

#include "storage/AtomicFile.h"
#include "storage/hdf5/SealedFile.h"

namespace dptrain {

namespace {

// No real dataset is this large; a header claiming more is corrupt or hostile.
constexpr int64_t max_rows = int64_t{1} << 40;
constexpr int64_t max_row_size = int64_t{1} << 31;

H5T_class_t type_class(hid_t dataset, const std::string& what) {
  H5Id type = h5_datatype(H5Dget_type(dataset), what);
  return H5Tget_class(type);
}

const char* class_name(H5T_class_t c) {
  switch (c) {
    case H5T_INTEGER:
      return "integer";
    case H5T_FLOAT:
      return "float";
    case H5T_STRING:
      return "string";
    case H5T_COMPOUND:
      return "compound";
    case H5T_ENUM:
      return "enum";
    case H5T_ARRAY:
      return "array";
    default:
      return "unsupported";
  }
}

bool has_filters(hid_t dataset) {
  H5Id dcpl(H5Dget_create_plist(dataset), H5Pclose);
  return dcpl.valid() && H5Pget_nfilters(dcpl) > 0;
}

int64_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
}

// Rejects a dataset whose header claims more bytes than the file could hold uncompressed.
void check_claimed_size(hid_t ds, const std::string& path, const std::string& name, int64_t elements,
                        size_t elem_size) {
  double claimed = static_cast<double>(elements) * static_cast<double>(elem_size);
  if (!has_filters(ds) && claimed > static_cast<double>(file_size(path)) + 4096.0)
    fail_input(path + ": " + name + " claims " + std::to_string(static_cast<int64_t>(claimed)) +
               " bytes but the file has " + std::to_string(file_size(path)) + " (truncated or corrupt header)");
}

}  // namespace

int64_t DatasetContents::rows() const {
  int64_t row = sample_shape.numel();
  return row ? static_cast<int64_t>(x.size()) / row : 0;
}

DatasetFile::DatasetFile(const std::string& path) : path_(path) {
  file_ = h5_open_read(path);
  const std::string& p = path_;
  if (!h5_exists(file_, "x")) fail_input(p + ": missing dataset /x (features)");
  x_ = h5_dataset(H5Dopen2(file_, "x", H5P_DEFAULT), p + ": /x is not a dataset");
  H5T_class_t xc = type_class(x_, p + ": /x");
  if (xc != H5T_FLOAT) fail_input(p + ": /x must hold floats (float32), found " + class_name(xc));
  std::vector<hsize_t> dims = h5_dims(x_, p + ": /x");
  if (dims.size() < 2)
    fail_input(p + ": /x must have shape [N, features...], found rank " + std::to_string(dims.size()));
  if (dims.size() > Shape::max_rank)
    fail_input(p + ": /x has rank " + std::to_string(dims.size()) + ", more than " + std::to_string(Shape::max_rank));
  rows_ = static_cast<int64_t>(dims[0]);
  std::vector<int64_t> sample;
  for (size_t i = 1; i < dims.size(); ++i) {
    if (dims[i] == 0 || dims[i] > static_cast<hsize_t>(max_row_size))
      fail_input(p + ": /x has an absurd dimension " + std::to_string(dims[i]));
    sample.push_back(static_cast<int64_t>(dims[i]));
  }
  sample_shape_ = Shape(sample);
  if (sample_shape_.numel() > max_row_size)
    fail_input(p + ": /x rows of " + sample_shape_.str() + " are absurdly large");
  if (rows_ <= 0) fail_input(p + ": /x has no rows");
  if (rows_ > max_rows) fail_input(p + ": /x claims " + std::to_string(rows_) + " rows, an absurd size");
  check_claimed_size(x_, p, "/x", rows_ * sample_shape_.numel(), sizeof(float));

  if (h5_has_attribute(file_, "format")) {
    std::string fmt = h5_read_string_attribute(file_, "format", p);
    if (fmt != format_tag) fail_input(p + ": attribute format is '" + fmt + "', expected '" + format_tag + "'");
  }

  if (h5_exists(file_, "y")) {
    H5Id y = h5_dataset(H5Dopen2(file_, "y", H5P_DEFAULT), p + ": /y is not a dataset");
    H5T_class_t yc = type_class(y, p + ": /y");
    std::vector<hsize_t> yd = h5_dims(y, p + ": /y");
    if (yd.empty() || static_cast<int64_t>(yd[0]) != rows_)
      fail_input(p + ": /y has " + (yd.empty() ? std::string("no rows") : std::to_string(yd[0]) + " rows") +
                 " but /x has " + std::to_string(rows_));
    if (yd.size() > 2) fail_input(p + ": /y must be [N] or [N, k], found rank " + std::to_string(yd.size()));
    int64_t k = yd.size() == 2 ? static_cast<int64_t>(yd[1]) : 1;
    if (k <= 0 || k > max_row_size) fail_input(p + ": /y has an absurd second dimension");
    if (yc == H5T_INTEGER) {
      // [N]: one class per row; [N, T]: one per position of a sequence (per-step targets).
      check_claimed_size(y, p, "/y", rows_ * k, 1);
      labels_.resize(static_cast<size_t>(rows_ * k));
      label_width_ = k;
      DPT_H5(H5Dread(y, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels_.data()), p + ": reading /y");
      label_kind_ = LabelKind::classes;
    } else if (yc == H5T_FLOAT) {
      check_claimed_size(y, p, "/y", rows_ * k, 1);
      targets_.resize(static_cast<size_t>(rows_ * k));
      DPT_H5(H5Dread(y, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, targets_.data()), p + ": reading /y");
      for (size_t i = 0; i < targets_.size(); ++i)
        if (!std::isfinite(targets_[i]))
          fail_input(p + ": /y row " + std::to_string(i / static_cast<size_t>(k)) + " is NaN or infinite");
      label_kind_ = LabelKind::values;
      target_dim_ = k;
    } else {
      fail_input(p + ": /y must hold int32 class ids or float targets, found " + class_name(yc));
    }
  }

  task_ = label_kind_ == LabelKind::values ? "regression" : "classification";
  if (h5_has_attribute(file_, "task")) {
    std::string t = h5_read_string_attribute(file_, "task", p);
    if (t != "classification" && t != "regression")
      fail_input(p + ": attribute task is '" + t + "', expected classification or regression");
    if (label_kind_ == LabelKind::classes && t == "regression")
      fail_input(p + ": attribute task is regression but /y holds integer class ids");
    if (label_kind_ == LabelKind::values && t == "classification")
      fail_input(p + ": attribute task is classification but /y holds float values");
    task_ = t;
  }

  if (label_kind_ == LabelKind::classes) {
    int32_t max_label = *std::max_element(labels_.begin(), labels_.end());
    if (h5_has_attribute(file_, "num_classes")) {
      num_classes_ = h5_read_int_attribute(file_, "num_classes", p);
      if (num_classes_ < 1 || num_classes_ > (1 << 24))
        fail_input(p + ": attribute num_classes = " + std::to_string(num_classes_) + " is out of range");
    } else {
      num_classes_ = std::max<int64_t>(2, int64_t{max_label} + 1);
    }
    const size_t w = static_cast<size_t>(label_width_);
    for (size_t i = 0; i < labels_.size(); ++i) {
      const int32_t l = labels_[i];
      if (l >= 0 && l < num_classes_) continue;
      if (w == 1)
        fail_input(p + ": /y row " + std::to_string(i) + " has label " + std::to_string(l) + ", outside [0, " +
                   std::to_string(num_classes_) + ")");
      if (l != -1)  // -1 marks padding in per-step labels
        fail_input(p + ": /y row " + std::to_string(i / w) + " position " + std::to_string(i % w) + " has label " +
                   std::to_string(l) + ", outside [0, " + std::to_string(num_classes_) + ") (-1 marks padding)");
    }
  }

  if (h5_exists(file_, "labeled")) {
    H5Id l = h5_dataset(H5Dopen2(file_, "labeled", H5P_DEFAULT), p + ": /labeled is not a dataset");
    std::vector<hsize_t> ld = h5_dims(l, p + ": /labeled");
    if (ld.size() != 1 || static_cast<int64_t>(ld[0]) != rows_)
      fail_input(p + ": /labeled must be [N] with N = " + std::to_string(rows_) + " like /x");
    if (type_class(l, p + ": /labeled") != H5T_INTEGER) fail_input(p + ": /labeled must be uint8");
    labeled_.resize(static_cast<size_t>(rows_));
    DPT_H5(H5Dread(l, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, labeled_.data()), p + ": reading /labeled");
  }
  direct_ = DirectRowReader::open(path_, file_, x_, rows_, row_size());
}

void DatasetFile::check_finite(const float* data, int64_t first_row, int64_t count, const int64_t* rows) const {
  const int64_t row = row_size();
  for (int64_t r = 0; r < count; ++r) {
    const float* v = data + r * row;
    bool ok = true;
    for (int64_t i = 0; i < row; ++i) ok &= std::isfinite(v[i]);
    if (!ok) fail_input(path_ + ": /x row " + std::to_string(rows ? rows[r] : first_row + r) + " contains NaN or Inf");
  }
}

void DatasetFile::read_rows(int64_t begin, int64_t count, float* out) const {
  if (count <= 0) return;
  DPT_ASSERT(begin >= 0 && begin + count <= rows_, "row range outside /x");
  std::vector<int64_t> rows(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) rows[static_cast<size_t>(i)] = begin + i;
  read_row_list(rows.data(), count, out);
}

void DatasetFile::read_row_list(const int64_t* rows, int64_t count, float* out) const {
  // Runs on the reader's prefetch thread for every batch: fixed-size arrays, and error text built
  // only on failure (DPT_H5 evaluates its message then), so a read allocates nothing of ours.
  if (count <= 0) return;
  if (direct_ && direct_->read(rows, count, out)) {
    check_finite(out, 0, count, rows);
    return;
  }
  // HDF5's path: layouts the direct reader does not take, and a chunk that failed its checksum
  // there (HDF5 then reports the damage in its own words).
  const int rank = sample_shape_.rank() + 1;
  hsize_t start[Shape::max_rank + 1] = {}, cnt[Shape::max_rank + 1] = {};
  for (int i = 1; i < rank; ++i) cnt[i] = static_cast<hsize_t>(sample_shape_[i - 1]);
  H5Id file_space(H5Dget_space(x_), H5Sclose);
  if (!file_space.valid()) h5_fail(path_ + ": reading /x");
  DPT_H5(H5Sselect_none(file_space), path_ + ": reading /x");
  for (int64_t i = 0; i < count;) {
    int64_t j = i + 1;
    while (j < count && rows[j] == rows[j - 1] + 1) ++j;  // one hyperslab per run of neighbours
    DPT_ASSERT(rows[i] >= 0 && rows[j - 1] < rows_ && (i == 0 || rows[i] > rows[i - 1]), "rows must ascend within /x");
    start[0] = static_cast<hsize_t>(rows[i]);
    cnt[0] = static_cast<hsize_t>(j - i);
    DPT_H5(H5Sselect_hyperslab(file_space, H5S_SELECT_OR, start, nullptr, cnt, nullptr), path_ + ": reading /x");
    i = j;
  }
  cnt[0] = static_cast<hsize_t>(count);
  H5Id mem_space(H5Screate_simple(rank, cnt, nullptr), H5Sclose);
  if (!mem_space.valid()) h5_fail(path_ + ": reading /x");
  DPT_H5(H5Dread(x_, H5T_NATIVE_FLOAT, mem_space, file_space, H5P_DEFAULT, out),
         path_ + ": reading " + std::to_string(count) + " rows of /x (data damaged or checksum mismatch)");
  check_finite(out, 0, count, rows);
}

std::vector<float> DatasetFile::read_extra(const std::string& name) const {
  if (!h5_exists(file_, name)) fail_input(path_ + ": missing dataset /" + name);
  H5Id ds = h5_dataset(H5Dopen2(file_, name.c_str(), H5P_DEFAULT), path_ + ": /" + name);
  hssize_t n = 1;
  for (hsize_t d : h5_dims(ds, path_ + ": /" + name)) n *= static_cast<hssize_t>(d);
  std::vector<float> out(static_cast<size_t>(n));
  DPT_H5(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), path_ + ": reading /" + name);
  return out;
}

void write_dataset_file(const std::string& path, const DatasetContents& c) {
  h5_quiet();
  const int64_t n = c.rows();
  if (n <= 0) fail_input(path + ": refusing to write a dataset with no rows");
  write_sealed_h5(path, [&](hid_t f) {
    std::vector<hsize_t> xd{static_cast<hsize_t>(n)};
    for (int i = 0; i < c.sample_shape.rank(); ++i) xd.push_back(static_cast<hsize_t>(c.sample_shape[i]));
    // Training reads random rows, and a checksummed chunk is read whole to verify it: chunks of
    // 64 KiB keep that to about 20 rows' worth per row of 784 floats (1 MiB chunks read 334).
    h5_write_floats(f, "x", xd, c.x.data(), true, size_t{64} << 10);
    if (c.label_kind == LabelKind::classes) {
      std::vector<hsize_t> yd{static_cast<hsize_t>(n)};
      if (c.label_width > 1) yd.push_back(static_cast<hsize_t>(c.label_width));
      DPT_ASSERT(static_cast<int64_t>(c.labels.size()) == n * c.label_width, "labels must hold label_width per row");
      h5_write_ints(f, "y", yd, c.labels.data());
    }
    if (c.label_kind == LabelKind::values) {
      std::vector<hsize_t> yd{static_cast<hsize_t>(n)};
      if (c.target_dim > 1) yd.push_back(static_cast<hsize_t>(c.target_dim));
      h5_write_floats(f, "y", yd, c.targets.data());
    }
    if (!c.labeled.empty()) h5_write_bytes(f, "labeled", {static_cast<hsize_t>(n)}, c.labeled.data());
    for (const auto& [name, values] : c.extras) h5_write_floats(f, name, {values.size()}, values.data());
    h5_write_string_attribute(f, "format", DatasetFile::format_tag);
    h5_write_string_attribute(f, "task", c.label_kind == LabelKind::values ? "regression" : "classification");
    if (c.label_kind == LabelKind::classes) h5_write_int_attribute(f, "num_classes", c.num_classes);
  });
}

}  // namespace dptrain
