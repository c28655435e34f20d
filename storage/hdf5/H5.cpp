#include "storage/hdf5/H5.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "storage/hdf5/Fletcher32.h"

namespace dptrain {

namespace {

herr_t innermost(unsigned n, const H5E_error2_t* err, void* out) {
  if (n == 0 && err->desc) *static_cast<std::string*>(out) = err->desc;
  return 0;
}

H5Id checked(hid_t id, H5Id::Closer closer, const std::string& what) {
  if (id < 0) h5_fail(what);
  return H5Id(id, closer);
}

}  // namespace

std::string h5_last_error() {
  std::string msg;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost, &msg);
  return msg;
}

void h5_quiet() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

void h5_fail(const std::string& what) {
  std::string detail = h5_last_error();
  H5Eclear2(H5E_DEFAULT);
  fail_input(what + (detail.empty() ? "" : ": " + detail));
}

H5Id h5_file(hid_t id, const std::string& what) { return checked(id, H5Fclose, what); }
H5Id h5_dataset(hid_t id, const std::string& what) { return checked(id, H5Dclose, what); }
H5Id h5_dataspace(hid_t id, const std::string& what) { return checked(id, H5Sclose, what); }
H5Id h5_datatype(hid_t id, const std::string& what) { return checked(id, H5Tclose, what); }
H5Id h5_attribute(hid_t id, const std::string& what) { return checked(id, H5Aclose, what); }
H5Id h5_group(hid_t id, const std::string& what) { return checked(id, H5Gclose, what); }
H5Id h5_plist(hid_t id, const std::string& what) { return checked(id, H5Pclose, what); }

H5Id h5_open_read(const std::string& path) {
  h5_quiet();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail_input(path + ": cannot open: " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) fail_input(path + ": is a directory, not an HDF5 file");
  htri_t is = H5Fis_hdf5(path.c_str());
  if (is <= 0) {
    H5Eclear2(H5E_DEFAULT);
    fail_input(path + ": not an HDF5 file (or truncated: no valid HDF5 superblock)");
  }
  return h5_file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), path + ": cannot open as HDF5");
}

std::vector<hsize_t> h5_dims(hid_t dataset, const std::string& what) {
  H5Id space = h5_dataspace(H5Dget_space(dataset), what);
  int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0) h5_fail(what);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0 && H5Sget_simple_extent_dims(space, dims.data(), nullptr) < 0) h5_fail(what);
  return dims;
}

bool h5_exists(hid_t loc, const std::string& name) {
  // Check each component: H5Lexists fails rather than answering false for a missing parent.
  size_t pos = name[0] == '/' ? 1 : 0;
  while (true) {
    size_t slash = name.find('/', pos);
    std::string prefix = name.substr(0, slash);
    htri_t e = H5Lexists(loc, prefix.c_str(), H5P_DEFAULT);
    if (e <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
    if (slash == std::string::npos) return true;
    pos = slash + 1;
  }
}

bool h5_has_attribute(hid_t obj, const std::string& name) {
  htri_t e = H5Aexists(obj, name.c_str());
  if (e < 0) H5Eclear2(H5E_DEFAULT);
  return e > 0;
}

std::string h5_read_string_attribute(hid_t obj, const std::string& name, const std::string& what) {
  H5Id attr = h5_attribute(H5Aopen(obj, name.c_str(), H5P_DEFAULT), what + ": attribute '" + name + "'");
  H5Id type = h5_datatype(H5Aget_type(attr), what + ": attribute '" + name + "'");
  if (H5Tget_class(type) != H5T_STRING) fail_input(what + ": attribute '" + name + "' is not a string");
  H5Id space = h5_dataspace(H5Aget_space(attr), what);
  if (H5Sget_simple_extent_npoints(space) != 1) fail_input(what + ": attribute '" + name + "' is not a single string");
  if (H5Tis_variable_str(type) > 0) {
    H5Id mem = h5_datatype(H5Tcopy(H5T_C_S1), what);
    DPT_H5(H5Tset_size(mem, H5T_VARIABLE), what);
    DPT_H5(H5Tset_cset(mem, H5Tget_cset(type)), what);
    char* s = nullptr;
    DPT_H5(H5Aread(attr, mem, &s), what + ": attribute '" + name + "'");
    std::string out = s ? s : "";
    H5free_memory(s);
    return out;
  }
  size_t size = H5Tget_size(type);
  if (size == 0 || size > (64u << 20)) fail_input(what + ": attribute '" + name + "' has an absurd size");
  std::string out(size, '\0');
  // Read in the stored string type (its size, padding and character set), so nothing converts.
  DPT_H5(H5Aread(attr, type, out.data()), what + ": attribute '" + name + "'");
  out.resize(std::strlen(out.c_str()));
  return out;
}

int64_t h5_read_int_attribute(hid_t obj, const std::string& name, const std::string& what) {
  H5Id attr = h5_attribute(H5Aopen(obj, name.c_str(), H5P_DEFAULT), what + ": attribute '" + name + "'");
  H5Id type = h5_datatype(H5Aget_type(attr), what);
  if (H5Tget_class(type) != H5T_INTEGER) fail_input(what + ": attribute '" + name + "' is not an integer");
  H5Id space = h5_dataspace(H5Aget_space(attr), what);
  if (H5Sget_simple_extent_npoints(space) != 1) fail_input(what + ": attribute '" + name + "' is not a single integer");
  int64_t v = 0;
  DPT_H5(H5Aread(attr, H5T_NATIVE_INT64, &v), what + ": attribute '" + name + "'");
  return v;
}

void h5_write_string_attribute(hid_t obj, const std::string& name, const std::string& value) {
  const std::string what = "writing attribute '" + name + "'";
  // Fixed length, not variable: the bytes then live in the (checksummed) object header, not in a
  // global heap, which has no checksum and which HDF5 1.10 reads without bounds checks.
  H5Id type = h5_datatype(H5Tcopy(H5T_C_S1), what);
  DPT_H5(H5Tset_size(type, std::max<size_t>(1, value.size())), what);
  DPT_H5(H5Tset_strpad(type, H5T_STR_NULLPAD), what);
  DPT_H5(H5Tset_cset(type, H5T_CSET_UTF8), what);
  H5Id space = h5_dataspace(H5Screate(H5S_SCALAR), what);
  if (h5_has_attribute(obj, name)) DPT_H5(H5Adelete(obj, name.c_str()), what);
  H5Id attr = h5_attribute(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), what);
  std::string padded = value.empty() ? std::string(1, '\0') : value;
  DPT_H5(H5Awrite(attr, type, padded.data()), what);
}

void h5_write_int_attribute(hid_t obj, const std::string& name, int64_t value) {
  const std::string what = "writing attribute '" + name + "'";
  H5Id space = h5_dataspace(H5Screate(H5S_SCALAR), what);
  if (h5_has_attribute(obj, name)) DPT_H5(H5Adelete(obj, name.c_str()), what);
  H5Id attr = h5_attribute(H5Acreate2(obj, name.c_str(), H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT), what);
  DPT_H5(H5Awrite(attr, H5T_NATIVE_INT64, &value), what);
}

namespace {

// Starts the disk writing back what a large write left in the page cache, without waiting for
// it, so that the disk works while the rest of the file is produced and a final fsync has less
// left to do. Only for files on the default (sec2) driver, whose handle is a file descriptor.
class Writeback {
 public:
  explicit Writeback(hid_t loc) {
    H5Id file(H5Iget_file_id(loc), H5Fclose);
    if (!file.valid()) return;
    H5Id fapl(H5Fget_access_plist(file), H5Pclose);
    void* handle = nullptr;
    if (fapl.valid() && H5Pget_driver(fapl) == H5FD_SEC2 && H5Fget_vfd_handle(file, fapl, &handle) >= 0 && handle)
      fd_ = *static_cast<int*>(handle);
  }
  void wrote(size_t bytes) {
    pending_ += bytes;
    if (fd_ < 0 || pending_ < (size_t{4} << 20)) return;
    ::sync_file_range(fd_, 0, 0, SYNC_FILE_RANGE_WRITE);
    pending_ = 0;
  }

 private:
  int fd_ = -1;
  size_t pending_ = 0;
};

void write_dataset(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims, hid_t file_type,
                   hid_t mem_type, size_t elem_size, const void* data, bool checksum,
                   size_t chunk_bytes = size_t{1} << 20) {
  const std::string what = "writing dataset '" + name + "'";
  H5Id space = h5_dataspace(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), what);
  H5Id dcpl = h5_plist(H5Pcreate(H5P_DATASET_CREATE), what);
  std::vector<hsize_t> chunk;
  hsize_t total = 1;
  for (hsize_t d : dims) total *= d;
  if (!dims.empty() && total > 0) {
    // Chunks along dim 0 (1 MiB unless asked otherwise), so row reads touch few chunks and
    // Fletcher32 applies; rows spread evenly over them, since a chunk is stored whole even
    // where it extends past the data.
    hsize_t row = total / dims[0];
    hsize_t rows = std::max<hsize_t>(1, chunk_bytes / std::max<hsize_t>(1, row * elem_size));
    const hsize_t chunks = (dims[0] + rows - 1) / rows;
    chunk = dims;
    chunk[0] = (dims[0] + chunks - 1) / chunks;
    DPT_H5(H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data()), what);
    if (checksum) DPT_H5(H5Pset_fletcher32(dcpl), what);
  }
  H5Id ds = h5_dataset(H5Dcreate2(loc, name.c_str(), file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT), what);
  if (total == 0) return;
  if (!checksum || chunk.empty() || std::endian::native != std::endian::little) {
    DPT_H5(H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), what);
    return;
  }
  // Whole chunks with their checksum computed here: HDF5's filter pipeline would copy each chunk
  // and checksum it a byte at a time, the larger part of writing a checkpoint. Our file types
  // are the little-endian forms of the memory types, so the bytes are stored as they are.
  const size_t row_bytes = static_cast<size_t>(total / dims[0]) * elem_size;
  const size_t chunk_data = static_cast<size_t>(chunk[0]) * row_bytes;
  std::vector<unsigned char> buf(chunk_data + 4);
  std::vector<hsize_t> offset(dims.size(), 0);
  const auto* bytes = static_cast<const unsigned char*>(data);
  Writeback writeback(loc);
  for (hsize_t first = 0; first < dims[0]; first += chunk[0]) {
    const size_t n = static_cast<size_t>(std::min(chunk[0], dims[0] - first)) * row_bytes;
    std::memcpy(buf.data(), bytes + first * row_bytes, n);
    std::memset(buf.data() + n, 0, chunk_data - n);  // the fill value past the last row
    const uint32_t sum = hdf5_fletcher32(buf.data(), chunk_data);
    std::memcpy(buf.data() + chunk_data, &sum, 4);
    offset[0] = first;
    DPT_H5(H5Dwrite_chunk(ds, H5P_DEFAULT, 0, offset.data(), buf.size(), buf.data()), what);
    writeback.wrote(buf.size());
  }
}

}  // namespace

void h5_write_floats(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims, const float* data,
                     bool checksum, size_t chunk_bytes) {
  write_dataset(loc, name, dims, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, sizeof(float), data, checksum, chunk_bytes);
}

void h5_write_ints(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims, const int32_t* data,
                   bool checksum) {
  write_dataset(loc, name, dims, H5T_STD_I32LE, H5T_NATIVE_INT32, sizeof(int32_t), data, checksum);
}

void h5_write_bytes(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims, const uint8_t* data,
                    bool checksum) {
  write_dataset(loc, name, dims, H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, data, checksum);
}

void h5_write_doubles(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims, const double* data) {
  write_dataset(loc, name, dims, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, sizeof(double), data, true);
}

void h5_write_int64s(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims, const int64_t* data) {
  write_dataset(loc, name, dims, H5T_STD_I64LE, H5T_NATIVE_INT64, sizeof(int64_t), data, true);
}

H5Id h5_make_groups(hid_t loc, const std::string& path) {
  H5Id cur = h5_group(H5Gopen2(loc, "/", H5P_DEFAULT), "opening /");
  size_t pos = 0;
  while (pos < path.size()) {
    size_t slash = path.find('/', pos);
    std::string part = path.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    pos = slash == std::string::npos ? path.size() : slash + 1;
    if (part.empty()) continue;
    htri_t e = H5Lexists(cur, part.c_str(), H5P_DEFAULT);
    cur = e > 0 ? h5_group(H5Gopen2(cur, part.c_str(), H5P_DEFAULT), "opening group " + part)
                : h5_group(H5Gcreate2(cur, part.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                           "creating group " + part);
  }
  return cur;
}

std::vector<std::string> h5_dataset_paths(hid_t f, const std::string& name, const std::string& path) {
  std::vector<std::string> out;
  for (const std::string& child : h5_group_children(f, name, path)) {
    const std::string full = name + "/" + child;
    hid_t obj = H5Oopen(f, full.c_str(), H5P_DEFAULT);
    if (obj < 0) h5_fail(path + ": opening " + full);
    const H5I_type_t type = H5Iget_type(obj);
    H5Oclose(obj);
    if (type == H5I_GROUP)
      for (const std::string& below : h5_dataset_paths(f, full, path)) out.push_back(child + "/" + below);
    else if (type == H5I_DATASET)
      out.push_back(child);
  }
  return out;
}

std::vector<std::string> h5_group_children(hid_t f, const std::string& name, const std::string& path) {
  std::vector<std::string> out;
  if (!h5_exists(f, name)) return out;
  H5Id g = h5_group(H5Gopen2(f, name.c_str(), H5P_DEFAULT), path + ": /" + name + " is not a group");
  H5G_info_t info;
  DPT_H5(H5Gget_info(g, &info), path + ": listing /" + name);
  if (info.nlinks > 100000) fail_input(path + ": /" + name + " has an absurd number of entries");
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (len < 0 || len > 4096) h5_fail(path + ": listing /" + name);
    std::string n(static_cast<size_t>(len), '\0');
    H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, n.data(), static_cast<size_t>(len) + 1, H5P_DEFAULT);
    out.push_back(n);
  }
  return out;
}

}  // namespace dptrain
