#include "storage/checkpoint/ModelFile.h"

#include "models/kernels/KernelBackend.h"
#include "storage/AtomicFile.h"
#include "storage/hdf5/H5.h"
#include "storage/hdf5/SealedFile.h"

namespace dptrain {

namespace {
constexpr const char* model_format = "dptrain-model/1";

std::vector<float> host_copy(const Model& model) {
  std::vector<float> host(static_cast<size_t>(model.flat_size()));
  copy_memory(host.data(), Device::cpu, model.params().data(), model.device(), host.size() * sizeof(float));
  return host;
}

std::vector<float> read_float_vector(hid_t f, const std::string& name, const std::string& what) {
  H5Id ds = h5_dataset(H5Dopen2(f, name.c_str(), H5P_DEFAULT), what + ": " + name);
  hsize_t n = 1;
  for (hsize_t d : h5_dims(ds, what)) n *= d;
  if (n > (hsize_t{1} << 31)) fail_input(what + ": " + name + " is absurdly large");
  std::vector<float> v(static_cast<size_t>(n));
  DPT_H5(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), what + ": reading " + name);
  return v;
}
}  // namespace

// Parameters and buffers are both named views into a flat buffer: one writer and one reader.
void write_views(hid_t f, const std::string& group, const std::vector<ParamInfo>& views, const float* host) {
  for (const ParamInfo& p : views) {
    std::string full = group + "/" + p.path;
    auto slash = full.rfind('/');
    H5Id g = h5_make_groups(f, full.substr(0, slash));
    std::vector<hsize_t> dims;
    for (int i = 0; i < p.shape.rank(); ++i) dims.push_back(static_cast<hsize_t>(p.shape[i]));
    h5_write_floats(g, full.substr(slash + 1), dims, host + p.offset);
  }
}

void read_views(hid_t f, const std::string& group, const std::string& source, const char* what,
                const std::vector<ParamInfo>& views, float* host) {
  for (const ParamInfo& p : views) {
    std::string full = group + "/" + p.path;
    if (!h5_exists(f, full)) fail_input(source + ": " + what + " " + full + " is missing (a different model?)");
    H5Id ds = h5_dataset(H5Dopen2(f, full.c_str(), H5P_DEFAULT), source + ": " + full);
    std::vector<hsize_t> dims = h5_dims(ds, source + ": " + full);
    std::vector<int64_t> got(dims.begin(), dims.end());
    if (Shape(got) != p.shape)
      fail_input(source + ": " + what + " " + full + " has shape " + Shape(got).str() + ", the model needs " +
                 p.shape.str());
    DPT_H5(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, host + p.offset),
           source + ": reading " + full + " (checksum or data damaged)");
  }
}

void write_params(hid_t f, const std::string& group, const Model& model, const float* host) {
  write_views(f, group, model.param_infos(), host);
}

void read_params(hid_t f, const std::string& group, const std::string& source, Model& model, std::vector<float>& host) {
  host.assign(static_cast<size_t>(model.flat_size()), 0.0f);
  read_views(f, group, source, "parameter", model.param_infos(), host.data());
}

void write_buffers(hid_t f, const std::string& group, const Model& model) {
  if (model.buffer_infos().empty()) return;
  std::vector<float> host(static_cast<size_t>(model.buffers().numel()));
  copy_memory(host.data(), Device::cpu, model.buffers().data(), model.device(), host.size() * sizeof(float));
  write_views(f, group, model.buffer_infos(), host.data());
}

void read_buffers(hid_t f, const std::string& group, const std::string& source, Model& model) {
  if (model.buffer_infos().empty()) return;
  std::vector<float> host(static_cast<size_t>(model.buffers().numel()), 0.0f);
  read_views(f, group, source, "buffer", model.buffer_infos(), host.data());
  copy_memory(model.buffers().data(), model.device(), host.data(), Device::cpu, host.size() * sizeof(float));
}

void save_model_file(const std::string& path, const Model& model, const ModelFileMeta& meta) {
  h5_quiet();
  std::vector<float> host = host_copy(model);
  write_sealed_h5(path, [&](hid_t f) {
    h5_write_string_attribute(f, "format", model_format);
    h5_write_string_attribute(f, "config", meta.config_text);
    h5_write_string_attribute(f, "task", meta.task.classification ? "classification" : "regression");
    h5_write_int_attribute(f, "num_classes", meta.task.num_classes);
    h5_write_int_attribute(f, "target_dim", meta.task.target_dim);
    if (meta.task.label_width > 1) h5_write_int_attribute(f, "label_width", meta.task.label_width);
    std::vector<hsize_t> in;
    for (int64_t d : model.input_shape().to_vector()) in.push_back(static_cast<hsize_t>(d));
    std::vector<int32_t> in32(in.begin(), in.end());
    h5_write_ints(f, "input_shape", {in.size()}, in32.data(), false);
    write_params(f, "/params", model, host.data());
    write_buffers(f, "/buffers", model);
    if (!meta.norm_mean.empty()) {
      H5Id g = h5_make_groups(f, "normalization");
      h5_write_floats(g, "mean", {meta.norm_mean.size()}, meta.norm_mean.data());
      h5_write_floats(g, "std", {meta.norm_std.size()}, meta.norm_std.data());
    }
  });
}

ModelFileMeta read_model_meta(const std::string& path) {
  verify_seal(path);
  H5Id f = h5_open_read(path);
  ModelFileMeta m;
  if (!h5_has_attribute(f, "format")) fail_input(path + ": not a dptrain model file (no format attribute)");
  std::string fmt = h5_read_string_attribute(f, "format", path);
  if (fmt != model_format && fmt.rfind("dptrain-checkpoint/", 0) != 0)
    fail_input(path + ": format is '" + fmt + "', expected " + model_format);
  m.config_text = h5_read_string_attribute(f, "config", path);
  m.task.classification = h5_read_string_attribute(f, "task", path) == "classification";
  m.task.num_classes = h5_read_int_attribute(f, "num_classes", path);
  m.task.target_dim = h5_read_int_attribute(f, "target_dim", path);
  if (h5_has_attribute(f, "label_width")) {  // per-step targets; absent: one class per sample
    m.task.label_width = h5_read_int_attribute(f, "label_width", path);
    if (m.task.label_width < 1) fail_input(path + ": label_width must be >= 1");
  }
  if (h5_exists(f, "input_shape")) {
    H5Id ds = h5_dataset(H5Dopen2(f, "input_shape", H5P_DEFAULT), path + ": input_shape");
    std::vector<hsize_t> dims = h5_dims(ds, path);
    if (dims.size() != 1 || dims[0] == 0 || dims[0] > Shape::max_rank) fail_input(path + ": bad input_shape");
    std::vector<int32_t> v(dims[0]);
    DPT_H5(H5Dread(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), path + ": input_shape");
    for (int32_t d : v) {
      if (d <= 0) fail_input(path + ": bad input_shape");
      m.input_shape.push_back(d);
    }
  }
  if (h5_exists(f, "normalization/mean")) {
    m.norm_mean = read_float_vector(f, "normalization/mean", path);
    m.norm_std = read_float_vector(f, "normalization/std", path);
    if (m.norm_mean.size() != m.norm_std.size()) fail_input(path + ": normalization mean and std differ in size");
  }
  return m;
}

InitFromReport init_from_model_file(const std::string& path, Model& model) {
  h5_quiet();
  H5Id f = h5_open_read(path);
  if (!h5_exists(f, "params")) fail_input(path + ": not a dptrain model file (no /params group)");
  InitFromReport report;
  std::vector<std::string> in_file = h5_dataset_paths(f, "params", path);
  // Every view whose path and shape match is read over the model's current values.
  auto take = [&](const std::string& group, const std::vector<ParamInfo>& views, Tensor& flat, bool params) {
    if (views.empty()) return;
    std::vector<float> host = to_host(flat);
    for (const ParamInfo& p : views) {
      const std::string full = group + "/" + p.path;
      if (!h5_exists(f, full)) {
        if (params) report.kept.push_back(p.path + " (not in the file)");
        continue;
      }
      H5Id ds = h5_dataset(H5Dopen2(f, full.c_str(), H5P_DEFAULT), path + ": " + full);
      std::vector<hsize_t> dims = h5_dims(ds, path + ": " + full);
      const Shape got(std::vector<int64_t>(dims.begin(), dims.end()));
      if (params) std::erase(in_file, p.path);
      if (got != p.shape) {
        if (params) report.kept.push_back(p.path + " (file " + got.str() + ", model " + p.shape.str() + ")");
        continue;
      }
      DPT_H5(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, host.data() + p.offset),
             path + ": reading " + full + " (checksum or data damaged)");
      if (params) report.loaded += 1, report.loaded_values += p.shape.numel();
    }
    from_host(flat, host);
  };
  take("/params", model.param_infos(), model.params(), true);
  take("/buffers", model.buffer_infos(), model.buffers(), false);
  report.unused = in_file;
  return report;
}

void load_model_params(const std::string& path, Model& model) {
  H5Id f = h5_open_read(path);
  std::vector<float> host;
  read_params(f, "/params", path, model, host);
  copy_memory(model.params().data(), model.device(), host.data(), Device::cpu, host.size() * sizeof(float));
  read_buffers(f, "/buffers", path, model);
}

}  // namespace dptrain
