#include "storage/checkpoint/CheckpointFile.h"

#include <cstdio>
#include <cstring>

#include "models/core/Hash.h"
#include "storage/AtomicFile.h"
#include "storage/hdf5/H5.h"
#include "storage/hdf5/SealedFile.h"

namespace dptrain {

namespace {

void write_string(hid_t loc, const std::string& name, const std::string& value) {
  std::vector<uint8_t> bytes(value.begin(), value.end());
  h5_write_bytes(loc, name, {bytes.size()}, bytes.data());
}

void write_scalar(hid_t loc, const std::string& name, double v) { h5_write_doubles(loc, name, {1}, &v); }

// Opens `name` under `f` and returns its element count, checking rank and size against limits.
H5Id open_dataset(hid_t f, const std::string& name, const std::string& path, hsize_t& count,
                  std::vector<hsize_t>* dims_out = nullptr) {
  if (!h5_exists(f, name)) fail_input(path + ": missing /" + name);
  H5Id ds = h5_dataset(H5Dopen2(f, name.c_str(), H5P_DEFAULT), path + ": /" + name + " is not a dataset");
  std::vector<hsize_t> dims = h5_dims(ds, path + ": /" + name);
  count = 1;
  for (hsize_t d : dims) {
    if (d > (hsize_t{1} << 34) || (d && count > (hsize_t{1} << 34) / d))
      fail_input(path + ": /" + name + " claims an absurd size");
    count *= d;
  }
  if (dims_out) *dims_out = dims;
  return ds;
}

void read_into(hid_t ds, hid_t mem_type, void* out, const std::string& path, const std::string& name) {
  DPT_H5(H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out),
         path + ": reading /" + name + " failed (checksum mismatch or damaged data)");
}

std::string read_string(hid_t f, const std::string& name, const std::string& path) {
  hsize_t n;
  H5Id ds = open_dataset(f, name, path, n);
  if (n > (hsize_t{64} << 20)) fail_input(path + ": /" + name + " is absurdly long");
  std::string s(static_cast<size_t>(n), '\0');
  if (n) read_into(ds, H5T_NATIVE_UINT8, s.data(), path, name);
  return s;
}

double read_scalar(hid_t f, const std::string& name, const std::string& path) {
  hsize_t n;
  H5Id ds = open_dataset(f, name, path, n);
  if (n != 1) fail_input(path + ": /" + name + " must hold one value");
  double v;
  read_into(ds, H5T_NATIVE_DOUBLE, &v, path, name);
  return v;
}

}  // namespace

void write_checkpoint_file(const std::string& path, const CheckpointState& s, bool sync_directory) {
  auto write = [&](hid_t f) {
    h5_write_string_attribute(f, "format", CheckpointState::format_tag(s.version));
    H5Id meta = h5_make_groups(f, "meta");
    write_string(meta, "config_text", s.config_text);
    int64_t ids[4] = {static_cast<int64_t>(s.config_hash), static_cast<int64_t>(s.layout_hash), s.step, s.world_size};
    h5_write_int64s(meta, "ids", {4}, ids);
    for (const FlatEntry& e : s.flats) {
      for (const ParamInfo& p : e.layout) {
        std::string full = e.group + "/" + p.path;
        auto slash = full.rfind('/');
        H5Id g = h5_make_groups(f, full.substr(0, slash));
        std::vector<hsize_t> dims;
        for (int i = 0; i < p.shape.rank(); ++i) dims.push_back(static_cast<hsize_t>(p.shape[i]));
        h5_write_floats(g, full.substr(slash + 1), dims, e.data.data() + p.offset);
      }
    }
    if (!s.scalars.empty()) {
      H5Id g = h5_make_groups(f, "scalars");
      for (const auto& [name, v] : s.scalars) write_scalar(g, name, v);
    }
    if (!s.floats.empty()) {
      H5Id g = h5_make_groups(f, "floats");
      for (const auto& [name, v] : s.floats) h5_write_floats(g, name, {v.size()}, v.data());
    }
    if (!s.ints.empty()) {
      H5Id g = h5_make_groups(f, "ints");
      for (const auto& [name, v] : s.ints) h5_write_int64s(g, name, {v.size()}, v.data());
    }
    if (!s.strings.empty()) {
      H5Id g = h5_make_groups(f, "strings");
      for (const auto& [name, v] : s.strings) write_string(g, name, v);
    }
  };
  write_sealed_h5(path, write, sync_directory);
}

namespace {

H5Id open_checkpoint(const std::string& path, CheckpointState& s) {
  if (!verify_seal(path)) fail_input(path + ": has no seal (file checksum): not a complete dptrain checkpoint");
  H5Id f = h5_open_read(path);
  if (!h5_has_attribute(f, "format")) fail_input(path + ": not a dptrain checkpoint (no format attribute)");
  std::string fmt = h5_read_string_attribute(f, "format", path);
  const int version = CheckpointState::parse_format_tag(fmt);
  if (version == 0) fail_input(path + ": not a dptrain checkpoint (format is '" + fmt + "')");
  if (version < CheckpointState::oldest_format_version || version > CheckpointState::format_version)
    fail_input(path + ": checkpoint format version " + std::to_string(version) + " ('" + fmt +
               "'); this dptrain reads versions " + std::to_string(CheckpointState::oldest_format_version) + " to " +
               std::to_string(CheckpointState::format_version) +
               (version > CheckpointState::format_version ? " (it was written by a newer dptrain)" : ""));
  s.version = version;
  s.source = path;
  s.config_text = read_string(f, "meta/config_text", path);
  hsize_t n;
  H5Id ids = open_dataset(f, "meta/ids", path, n);
  if (n != 4) fail_input(path + ": /meta/ids must hold 4 values");
  int64_t v[4];
  read_into(ids, H5T_NATIVE_INT64, v, path, "meta/ids");
  s.config_hash = static_cast<uint64_t>(v[0]);
  s.layout_hash = static_cast<uint64_t>(v[1]);
  s.step = v[2];
  s.world_size = v[3];
  if (s.step < 0 || s.world_size < 1) fail_input(path + ": /meta/ids holds an impossible step or world size");
  if (stable_hash(s.config_text) != s.config_hash)
    fail_input(path + ": the stored config text does not match its hash (damaged checkpoint)");
  return f;
}

}  // namespace

CheckpointState read_checkpoint_file(const std::string& path, const std::vector<FlatSpec>& flats) {
  CheckpointState s;
  H5Id f = open_checkpoint(path, s);
  for (const FlatSpec& spec : flats) {
    if (!h5_exists(f, spec.group)) {
      if (spec.required) fail_input(path + ": missing /" + spec.group);
      continue;
    }
    FlatEntry e{spec.group, spec.layout, std::vector<float>(static_cast<size_t>(spec.size), 0.0f)};
    for (const ParamInfo& p : spec.layout) {
      std::string name = spec.group + "/" + p.path;
      hsize_t n;
      std::vector<hsize_t> dims;
      H5Id ds = open_dataset(f, name, path, n, &dims);
      std::vector<int64_t> got(dims.begin(), dims.end());
      if (Shape(got) != p.shape)
        fail_input(path + ": /" + name + " has shape " + Shape(got).str() + ", the model needs " + p.shape.str());
      read_into(ds, H5T_NATIVE_FLOAT, e.data.data() + p.offset, path, name);
    }
    s.flats.push_back(std::move(e));
  }
  for (const std::string& name : h5_group_children(f, "scalars", path))
    s.scalars.emplace_back(name, read_scalar(f, "scalars/" + name, path));
  for (const std::string& name : h5_group_children(f, "floats", path)) {
    hsize_t n;
    H5Id ds = open_dataset(f, "floats/" + name, path, n);
    std::vector<float> v(static_cast<size_t>(n));
    if (n) read_into(ds, H5T_NATIVE_FLOAT, v.data(), path, "floats/" + name);
    s.floats.emplace_back(name, std::move(v));
  }
  for (const std::string& name : h5_group_children(f, "ints", path)) {
    hsize_t n;
    H5Id ds = open_dataset(f, "ints/" + name, path, n);
    std::vector<int64_t> v(static_cast<size_t>(n));
    if (n) read_into(ds, H5T_NATIVE_INT64, v.data(), path, "ints/" + name);
    s.ints.emplace_back(name, std::move(v));
  }
  for (const std::string& name : h5_group_children(f, "strings", path))
    s.strings.emplace_back(name, read_string(f, "strings/" + name, path));
  return s;
}

namespace {

struct VisitState {
  std::string path;
  std::vector<std::string> datasets;
};

herr_t collect_dataset(hid_t, const char* name, const H5O_info_t* info, void* data) {
  auto* v = static_cast<VisitState*>(data);
  if (info->type == H5O_TYPE_DATASET) v->datasets.emplace_back(name);
  return v->datasets.size() > 1000000 ? -1 : 0;
}

}  // namespace

std::string verify_checkpoint_file(const std::string& path) {
  CheckpointState s;
  H5Id f = open_checkpoint(path, s);
  VisitState v{path, {}};
  DPT_H5(H5Ovisit(f, H5_INDEX_NAME, H5_ITER_INC, collect_dataset, &v), path + ": walking the file");
  std::string out = "checkpoint " + path + " (format " + CheckpointState::format_tag(s.version) + ")\nstep " +
                    std::to_string(s.step) + ", saved by " + std::to_string(s.world_size) +
                    (s.world_size == 1 ? " rank\n" : " ranks\n");
  int64_t floats = 0;
  std::vector<char> buf;
  for (const std::string& name : v.datasets) {
    hsize_t n;
    std::vector<hsize_t> dims;
    H5Id ds = open_dataset(f, name, path, n, &dims);
    H5Id type = h5_datatype(H5Dget_type(ds), path + ": /" + name);
    size_t size = H5Tget_size(type);
    if (size == 0 || size > 8) fail_input(path + ": /" + name + " has an unexpected element type");
    buf.resize(static_cast<size_t>(n) * size);
    // Reading in the stored type checks the Fletcher32 sum of every chunk.
    if (n) read_into(ds, type, buf.data(), path, name);
    if (name.rfind("meta/", 0) == 0 || name.rfind("strings/", 0) == 0) continue;
    std::string shape = "[";
    for (size_t i = 0; i < dims.size(); ++i) shape += (i ? ", " : "") + std::to_string(dims[i]);
    out += "  /" + name + " " + shape + "]\n";
    if (H5Tget_class(type) == H5T_FLOAT && size == 4) floats += static_cast<int64_t>(n);
  }
  return out + std::to_string(v.datasets.size()) + " datasets, " + std::to_string(floats) +
         " float32 values, all checksums verified\n";
}

}  // namespace dptrain
