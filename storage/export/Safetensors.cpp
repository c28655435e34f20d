#include "storage/export/Safetensors.h"

#include <bit>
#include <cstring>

#include <nlohmann/json.hpp>

#include "models/core/Error.h"
#include "storage/AtomicFile.h"

namespace dptrain {

static_assert(std::endian::native == std::endian::little, "safetensors stores little-endian values");

namespace {

std::string float_bytes(const float* data, int64_t n) {
  return std::string(reinterpret_cast<const char*>(data), static_cast<size_t>(n) * sizeof(float));
}

SafetensorsTensor f32(const std::string& name, const Shape& shape, const float* data) {
  return {name, "F32", shape.to_vector(), float_bytes(data, shape.numel())};
}

// How a kind's dptrain tensor names become PyTorch's, where they differ, and the tensors PyTorch
// keeps that dptrain has no use for. One row per kind; a kind without a row keeps its names.
struct TorchNames {
  std::map<std::string, std::string> rename;
  // Extra entries: batch norm's step counter, the recurrent layers' second bias.
  void (*extra)(const ExportTree&, const ExportNode&, const std::string& prefix,
                std::vector<SafetensorsTensor>&) = nullptr;
};

void zero_hh_bias(const ExportTree& tree, const ExportNode& node, const std::string& prefix,
                  std::vector<SafetensorsTensor>& out) {
  // dptrain's simple RNN and LSTM have one bias (b_ih + b_hh); PyTorch's second is zero.
  const HostTensor& b = tree.tensor(node, "bias");
  std::vector<float> zeros(static_cast<size_t>(b.shape.numel()), 0.0f);
  out.push_back(f32(prefix + "bias_hh_l0", b.shape, zeros.data()));
}

const std::map<std::string, TorchNames>& torch_names() {
  static const std::map<std::string, TorchNames> table = {
      {"batchnorm",
       {{},
        [](const ExportTree&, const ExportNode&, const std::string& prefix, std::vector<SafetensorsTensor>& out) {
          // Not counted by dptrain; PyTorch reads it only with momentum=None. Stored as 0.
          const int64_t zero = 0;
          out.push_back({prefix + "num_batches_tracked",
                         "I64",
                         {},
                         std::string(reinterpret_cast<const char*>(&zero), sizeof zero)});
        }}},
      {"attention", {{{"out_proj_weight", "out_proj.weight"}, {"out_proj_bias", "out_proj.bias"}}}},
      {"rnn", {{{"weight_ih", "weight_ih_l0"}, {"weight_hh", "weight_hh_l0"}, {"bias", "bias_ih_l0"}}, zero_hh_bias}},
      {"lstm", {{{"weight_ih", "weight_ih_l0"}, {"weight_hh", "weight_hh_l0"}, {"bias", "bias_ih_l0"}}, zero_hh_bias}},
      {"gru",
       {{{"weight_ih", "weight_ih_l0"},
         {"weight_hh", "weight_hh_l0"},
         {"bias", "bias_ih_l0"},
         {"bias_hh", "bias_hh_l0"}}}},
  };
  return table;
}

void add_node(const ExportTree& tree, const ExportNode& node, std::vector<SafetensorsTensor>& out) {
  const auto& tensors = tree.tensors(node);
  if (!tensors.empty()) {
    const std::string prefix = node.name.empty() ? "" : node.name + ".";
    const auto row = torch_names().find(node.kind);
    for (const auto& [name, t] : tensors) {
      std::string torch = name;
      if (row != torch_names().end())
        if (auto r = row->second.rename.find(name); r != row->second.rename.end()) torch = r->second;
      out.push_back(f32(prefix + torch, t.shape, t.data));
    }
    if (row != torch_names().end() && row->second.extra) row->second.extra(tree, node, prefix, out);
  }
  for (const ExportNode& c : node.children) add_node(tree, c, out);
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<SafetensorsTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const SafetensorsTensor& t : tensors) {
    if (header.contains(t.name)) fail_internal(path + ": two tensors named " + t.name);
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string text = header.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');  // the data starts 8-byte aligned
  std::string file(8, '\0');
  const uint64_t n = text.size();
  std::memcpy(file.data(), &n, sizeof n);
  file.reserve(8 + text.size() + offset);
  file += text;
  for (const SafetensorsTensor& t : tensors) file += t.bytes;
  write_bytes_atomically(path, file);
}

std::vector<SafetensorsTensor> torch_state_dict(const ExportTree& tree) {
  std::vector<SafetensorsTensor> out;
  if (!tree.norm_mean().empty()) {
    out.push_back(f32("normalize.mean", tree.input_shape(), tree.norm_mean().data()));
    out.push_back(f32("normalize.std", tree.input_shape(), tree.meta().norm_std.data()));
  }
  add_node(tree, tree.root(), out);
  return out;
}

void export_safetensors(const ExportTree& tree, const std::string& path) {
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"},
      {"dptrain.architecture", tree.architecture().dump()},
      {"dptrain.config", tree.meta().config_text},
      {"dptrain.head", export_head_name(tree.head())},
      {"dptrain.source", tree.source()},
  };
  write_safetensors(path, torch_state_dict(tree), metadata);
}

}  // namespace dptrain
