// RAII handles and the check macro for HDF5's C API. Every call goes through DPT_H5, which turns
// a negative return into an exception carrying file:line, the rank, what we were doing (naming
// the file and dataset) and HDF5's own innermost message. HDF5's automatic stderr printing is
// switched off once, so a bad file yields one clear line instead of an error stack dump.
#pragma once

#include <hdf5.h>

#include <string>
#include <vector>

#include "models/core/Error.h"

namespace dptrain {

// HDF5's innermost error description for the current thread's stack ("" if none).
std::string h5_last_error();
// Silences HDF5's default error printing (idempotent).
void h5_quiet();

// Throws bad input: "what: HDF5 message".
[[noreturn]] void h5_fail(const std::string& what);

class H5Id {
 public:
  using Closer = herr_t (*)(hid_t);
  H5Id() = default;
  H5Id(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~H5Id() { reset(); }
  H5Id(H5Id&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = H5I_INVALID_HID; }
  H5Id& operator=(H5Id&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      closer_ = o.closer_;
      o.id_ = H5I_INVALID_HID;
    }
    return *this;
  }
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset() {
    if (id_ >= 0 && closer_) closer_(id_);
    id_ = H5I_INVALID_HID;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

// Wrappers that check the returned id and give it the right closer.
H5Id h5_file(hid_t id, const std::string& what);
H5Id h5_dataset(hid_t id, const std::string& what);
H5Id h5_dataspace(hid_t id, const std::string& what);
H5Id h5_datatype(hid_t id, const std::string& what);
H5Id h5_attribute(hid_t id, const std::string& what);
H5Id h5_group(hid_t id, const std::string& what);
H5Id h5_plist(hid_t id, const std::string& what);

// Opens an existing HDF5 file read-only with clear errors for a missing or non-HDF5 file.
H5Id h5_open_read(const std::string& path);

// Dimensions of a dataset's simple dataspace.
std::vector<hsize_t> h5_dims(hid_t dataset, const std::string& what);
// Whether a link (dataset or group) exists at `name` (a path relative to `loc`).
bool h5_exists(hid_t loc, const std::string& name);
// The names of the links directly inside group `name` of `f` (empty when there is no such group);
// `path` names the file in errors.
std::vector<std::string> h5_group_children(hid_t f, const std::string& name, const std::string& path);
// The paths (relative to group `name`, "a/b/weight") of every dataset below it, in name order.
std::vector<std::string> h5_dataset_paths(hid_t f, const std::string& name, const std::string& path);

// Attributes on an object (a file's root group, a dataset).
bool h5_has_attribute(hid_t obj, const std::string& name);
std::string h5_read_string_attribute(hid_t obj, const std::string& name, const std::string& what);
int64_t h5_read_int_attribute(hid_t obj, const std::string& name, const std::string& what);
void h5_write_string_attribute(hid_t obj, const std::string& name, const std::string& value);
void h5_write_int_attribute(hid_t obj, const std::string& name, int64_t value);

// Writes a whole float32 or int32 (or uint8) dataset, chunked along dim 0 (chunks of about
// chunk_bytes, at least one row) and Fletcher32-checksummed.
void h5_write_floats(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims, const float* data,
                     bool checksum = true, size_t chunk_bytes = size_t{1} << 20);
void h5_write_ints(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims, const int32_t* data,
                   bool checksum = true);
void h5_write_bytes(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims, const uint8_t* data,
                    bool checksum = true);
void h5_write_doubles(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims, const double* data);
void h5_write_int64s(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims, const int64_t* data);
// Creates every missing group along "a/b/c".
H5Id h5_make_groups(hid_t loc, const std::string& path);

}  // namespace dptrain

// Checks an HDF5 call that returns herr_t/htri_t/hssize_t (negative on failure).
#define DPT_H5(call, what)                                                                    \
  do {                                                                                        \
    if ((call) < 0) ::dptrain::h5_fail(::dptrain::error_origin(__FILE__, __LINE__) + (what)); \
  } while (0)
