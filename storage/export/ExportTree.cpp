#include "storage/export/ExportTree.h"

#include <functional>

#include <nlohmann/json.hpp>

#include "models/core/Error.h"
#include "models/kernels/KernelBackend.h"
#include "models/layers/ActivationLayer.h"
#include "models/layers/ActivationNames.h"
#include "models/layers/BatchNorm.h"
#include "models/layers/Concat.h"
#include "models/layers/Conv2d.h"
#include "models/layers/ConvTranspose2d.h"
#include "models/layers/Dense.h"
#include "models/layers/Dropout.h"
#include "models/layers/Embedding.h"
#include "models/layers/GaussianSample.h"
#include "models/layers/Highway.h"
#include "models/layers/LayerNorm.h"
#include "models/layers/Maxout.h"
#include "models/layers/MultiHeadAttention.h"
#include "models/layers/Pool2d.h"
#include "models/layers/PositionalEncoding.h"
#include "models/layers/Recurrent.h"
#include "models/layers/Reshape.h"
#include "models/layers/Residual.h"
#include "models/layers/SequencePool.h"
#include "models/layers/Sequential.h"
#include "models/layers/TiedOutput.h"
#include "models/layers/TimeDistributed.h"
#include "models/layers/Upsample2d.h"
#include "models/zoo/Transformer.h"

namespace dptrain {

std::string export_head_name(ExportHead head) {
  switch (head) {
    case ExportHead::softmax:
      return "softmax";
    case ExportHead::sigmoid:
      return "sigmoid";
    case ExportHead::none:
      break;
  }
  return "none";
}

ExportHead predict_head(const TaskInfo& task, bool reconstruct, int64_t outputs_per_step) {
  if (!task.classification || reconstruct) return ExportHead::none;
  return outputs_per_step == 1 ? ExportHead::sigmoid : ExportHead::softmax;
}

namespace {

std::string join(const std::string& a, const std::string& b, char sep) { return a.empty() ? b : a + sep + b; }

ExportNode child_of(Layer& layer, const std::string& role, const std::string& path, const std::string& name,
                    const Shape& in, const Shape& out) {
  ExportNode c;
  c.layer = &layer;
  c.kind = layer.kind();
  c.role = role;
  c.path = path;
  c.name = name;
  c.in = in;
  c.out = out;
  return c;
}

// The containers, one row each: how a container holds its layers, and so how their dptrain paths
// and PyTorch names nest. Sequential's child i is "NN_kind" in dptrain and "i" in PyTorch (an
// nn.Sequential); a residual's body and shortcut are "body" and "shortcut" in both, a concat's
// branches "branch<i>"; a time-distributed layer is its inner layer applied to the last dimension
// (nn.Linear does that by itself), so it adds no PyTorch name; a Transformer block is its two
// residuals, an nn.Sequential of its own. Every other kind is a leaf.
using Children = void (*)(ExportNode&);

const std::map<std::string, Children>& containers() {
  static const std::map<std::string, Children> table = {
      {"sequential",
       [](ExportNode& n) {
         auto& s = static_cast<Sequential&>(*n.layer);
         for (size_t i = 0; i < s.size(); ++i)
           n.children.push_back(child_of(s.layer(i), "", join(n.path, child_scope(i, s.layer(i).kind()), '/'),
                                         join(n.name, std::to_string(i), '.'), i ? s.output_shape(i - 1) : n.in,
                                         s.output_shape(i)));
       }},
      {"residual",
       [](ExportNode& n) {
         auto& r = static_cast<Residual&>(*n.layer);
         n.children.push_back(
             child_of(r.body(), "body", join(n.path, "body", '/'), join(n.name, "body", '.'), n.in, n.out));
         if (r.shortcut())
           n.children.push_back(child_of(*r.shortcut(), "shortcut", join(n.path, "shortcut", '/'),
                                         join(n.name, "shortcut", '.'), n.in, n.out));
       }},
      {"concat",
       [](ExportNode& n) {
         auto& c = static_cast<Concat&>(*n.layer);
         for (size_t i = 0; i < c.branch_count(); ++i) {
           const std::string branch = "branch" + std::to_string(i);
           n.children.push_back(child_of(c.branch(i), branch, join(n.path, branch, '/'), join(n.name, branch, '.'),
                                         n.in, c.branch_shape(i)));
         }
       }},
      {"time_distributed",
       [](ExportNode& n) {
         Layer& inner = static_cast<TimeDistributed&>(*n.layer).inner();
         n.children.push_back(
             child_of(inner, "inner", join(n.path, inner.kind(), '/'), n.name, n.in.drop_first(), n.out.drop_first()));
       }},
      {"transformer_block",
       [](ExportNode& n) {
         n.children.push_back(
             child_of(static_cast<TransformerBlock&>(*n.layer).body(), "body", n.path, n.name, n.in, n.out));
       }},
  };
  return table;
}

void walk(ExportNode& node) {
  if (auto it = containers().find(node.kind); it != containers().end()) it->second(node);
  for (ExportNode& c : node.children) walk(c);
}

void collect(const ExportNode& node, std::vector<const ExportNode*>& out) {
  out.push_back(&node);
  for (const ExportNode& c : node.children) collect(c, out);
}

nlohmann::json shape_json(const Shape& s) { return s.to_vector(); }

// The attributes each kind reports in the architecture description (besides type, name, path and
// shapes): what a PyTorch module needs to be built the same. One row per kind; kinds without a row
// report only their shapes.
using Attributes = std::function<void(const ExportTree&, const ExportNode&, nlohmann::json&)>;

const std::map<std::string, Attributes>& attribute_table() {
  static const std::map<std::string, Attributes> table = [] {
    const Attributes pool = [](const ExportTree&, const ExportNode& n, nlohmann::json& j) {
      const auto& p = static_cast<const Pool2d&>(*n.layer);
      const Conv2dGeometry& g = p.geometry();
      j["kernel"] = {g.kernel_h, g.kernel_w};
      j["stride"] = {g.stride_h, g.stride_w};
      j["padding"] = g.pad_h;
      j["global"] = p.global();
    };
    const Attributes recurrent = [](const ExportTree&, const ExportNode& n, nlohmann::json& j) {
      const auto& r = static_cast<const Recurrent&>(*n.layer);
      j["input_size"] = n.in[1];
      j["hidden"] = r.hidden();
      j["return_sequences"] = r.return_sequences();
    };
    return std::map<std::string, Attributes>{
        {"dense",
         [](const ExportTree&, const ExportNode& n, nlohmann::json& j) {
           const auto& d = static_cast<const Dense&>(*n.layer);
           j["in_features"] = d.in_features();
           j["out_features"] = d.out_features();
           j["bias"] = d.has_bias();
           j["activation"] = activation_name(d.activation());
           j["slope"] = d.slope();
         }},
        {"conv2d",
         [](const ExportTree&, const ExportNode& n, nlohmann::json& j) {
           const auto& c = static_cast<const Conv2d&>(*n.layer);
           const Conv2dOptions& o = c.options();
           j["in_channels"] = c.in_channels();
           j["out_channels"] = o.out_channels;
           j["kernel"] = {o.kernel_h, o.kernel_w};
           j["stride"] = o.stride;
           j["padding"] = o.padding;
           j["dilation"] = o.dilation;
           j["groups"] = o.groups;
           j["bias"] = o.bias;
           j["activation"] = activation_name(o.activation);
           j["slope"] = o.slope;
         }},
        {"conv_transpose2d",
         [](const ExportTree&, const ExportNode& n, nlohmann::json& j) {
           const auto& c = static_cast<const ConvTranspose2d&>(*n.layer);
           const ConvTranspose2dOptions& o = c.options();
           j["in_channels"] = c.in_channels();
           j["out_channels"] = o.out_channels;
           j["kernel"] = {o.kernel_h, o.kernel_w};
           j["stride"] = o.stride;
           j["padding"] = o.padding;
           j["output_padding"] = o.output_padding;
           j["dilation"] = o.dilation;
           j["bias"] = o.bias;
           j["activation"] = activation_name(o.activation);
           j["slope"] = o.slope;
         }},
        {"upsample2d",
         [](const ExportTree&, const ExportNode& n, nlohmann::json& j) {
           const auto& u = static_cast<const Upsample2d&>(*n.layer);
           j["scale"] = {u.scale_h(), u.scale_w()};
         }},
        {"highway",
         [](const ExportTree&, const ExportNode& n, nlohmann::json& j) {
           const auto& h = static_cast<const Highway&>(*n.layer);
           j["activation"] = activation_name(h.activation());
           j["slope"] = h.slope();
         }},
        {"gaussian_sample",
         [](const ExportTree&, const ExportNode& n, nlohmann::json& j) {
           j["latent"] = static_cast<const GaussianSample&>(*n.layer).latent();
         }},
        {"maxpool2d", pool},
        {"avgpool2d", pool},
        {"batchnorm",
         [](const ExportTree&, const ExportNode& n, nlohmann::json& j) {
           const auto& b = static_cast<const BatchNorm&>(*n.layer);
           j["features"] = n.in[0];
           j["eps"] = b.eps();
           j["momentum"] = b.momentum();
         }},
        {"dropout", [](const ExportTree&, const ExportNode& n,
                       nlohmann::json& j) { j["p"] = static_cast<const Dropout&>(*n.layer).p(); }},
        {"maxout", [](const ExportTree&, const ExportNode& n,
                      nlohmann::json& j) { j["pieces"] = static_cast<const Maxout&>(*n.layer).pieces(); }},
        {"leaky_relu", [](const ExportTree&, const ExportNode& n,
                          nlohmann::json& j) { j["slope"] = static_cast<const ActivationLayer&>(*n.layer).slope(); }},
        {"residual",
         [](const ExportTree&, const ExportNode& n, nlohmann::json& j) {
           const auto& r = static_cast<const Residual&>(*n.layer);
           j["activation"] = activation_name(r.activation());
           j["slope"] = r.slope();
         }},
        {"layernorm",
         [](const ExportTree&, const ExportNode& n, nlohmann::json& j) {
           j["features"] = n.in[n.in.rank() - 1];
           j["eps"] = static_cast<const LayerNorm&>(*n.layer).eps();
         }},
        {"embedding",
         [](const ExportTree&, const ExportNode& n, nlohmann::json& j) {
           auto& e = static_cast<Embedding&>(*n.layer);
           j["vocab"] = e.vocab();
           j["dim"] = e.dim();
           j["pad_id"] = e.pad_id();
         }},
        {"rnn", recurrent},
        {"lstm", recurrent},
        {"gru", recurrent},
        {"attention",
         [](const ExportTree&, const ExportNode& n, nlohmann::json& j) {
           const auto& a = static_cast<const MultiHeadAttention&>(*n.layer);
           j["dim"] = n.in[1];
           j["heads"] = a.heads();
           j["causal"] = a.causal();
           j["masked"] = a.masked();
         }},
        {"positional",
         [](const ExportTree&, const ExportNode& n, nlohmann::json& j) {
           const auto& p = static_cast<const PositionalEncoding&>(*n.layer);
           j["encoding"] = p.encoding() == PositionalEncoding::Kind::learned ? "learned" : "sinusoidal";
         }},
        {"tied_output",
         [](const ExportTree& tree, const ExportNode& n, nlohmann::json& j) {
           const auto& t = static_cast<const TiedOutput&>(*n.layer);
           j["embedding"] = tree.find(&t.embedding())->name;  // the module whose weight it shares
           j["bias"] = t.has_bias();
         }},
        {"mean_pool", [](const ExportTree&, const ExportNode& n,
                         nlohmann::json& j) { j["masked"] = static_cast<const SequencePool&>(*n.layer).masked(); }},
    };
  }();
  return table;
}

nlohmann::json node_json(const ExportTree& tree, const ExportNode& n) {
  nlohmann::json j;
  j["type"] = n.kind;
  j["name"] = n.name;
  j["path"] = n.path;
  j["in"] = shape_json(n.in);
  j["out"] = shape_json(n.out);
  const auto& table = attribute_table();
  if (auto it = table.find(n.kind); it != table.end() && it->second) it->second(tree, n, j);
  if (n.kind == "sequential" || n.kind == "concat") {
    const char* key = n.kind == "concat" ? "branches" : "layers";
    j[key] = nlohmann::json::array();
    for (const ExportNode& c : n.children) j[key].push_back(node_json(tree, c));
  } else {
    for (const ExportNode& c : n.children) j[c.role] = node_json(tree, c);
    if (n.kind == "residual" && n.children.size() == 1) j["shortcut"] = nullptr;
  }
  return j;
}

}  // namespace

std::string ExportTree::describe(const ExportNode& node) {
  return (node.path.empty() ? std::string("the model") : "layer " + node.path) + " (" + node.kind + ")";
}

ExportTree::ExportTree(Model& model, ModelFileMeta meta, ExportHead head, std::string source)
    : meta_(std::move(meta)), head_(head), source_(std::move(source)), input_(model.input_shape()) {
  params_ = to_host(model.params());
  if (!model.buffer_infos().empty()) buffers_ = to_host(model.buffers());
  auto add = [&](const std::vector<ParamInfo>& infos, const std::vector<float>& flat, bool buffer) {
    for (const ParamInfo& p : infos) {
      const auto slash = p.path.rfind('/');
      const std::string layer = slash == std::string::npos ? "" : p.path.substr(0, slash);
      by_layer_[layer].push_back({p.path.substr(slash + 1), HostTensor{p.shape, flat.data() + p.offset, buffer}});
    }
  };
  add(model.param_infos(), params_, false);
  add(model.buffer_infos(), buffers_, true);
  for (float s : meta_.norm_std) inv_std_.push_back(1.0f / s);
  if (!meta_.norm_mean.empty() && static_cast<int64_t>(meta_.norm_mean.size()) != input_.numel())
    fail_input(source_ + ": normalization has " + std::to_string(meta_.norm_mean.size()) +
               " values, the model's input " + input_.str() + " has " + std::to_string(input_.numel()));

  root_.layer = &model.root();
  root_.kind = root_.layer->kind();
  root_.in = model.input_shape();
  root_.out = model.output_shape();
  walk(root_);
  // Every parameter must belong to a layer the walk reached; one that does not sits inside a
  // container the walk does not open, which is named rather than silently left out.
  std::vector<const ExportNode*> nodes;
  collect(root_, nodes);
  for (const auto& [layer, tensors] : by_layer_) {
    bool reached = false;
    for (const ExportNode* n : nodes) reached = reached || n->path == layer;
    if (reached) continue;
    const ExportNode* holder = &root_;
    for (const ExportNode* n : nodes)
      if (!n->path.empty() && layer.rfind(n->path + "/", 0) == 0 && n->path.size() > holder->path.size()) holder = n;
    fail_input(source_ + ": " + describe(*holder) + " cannot be exported: the layers inside it (" + layer +
               ") are not supported by dptrain export");
  }
}

const std::vector<std::pair<std::string, HostTensor>>& ExportTree::tensors(const ExportNode& node) const {
  static const std::vector<std::pair<std::string, HostTensor>> none;
  // A container that shares its path with its only child (a Transformer block and its body) owns nothing.
  if (!node.children.empty()) return none;
  auto it = by_layer_.find(node.path);
  return it == by_layer_.end() ? none : it->second;
}

const HostTensor& ExportTree::tensor(const ExportNode& node, const std::string& name) const {
  for (const auto& [n, t] : tensors(node))
    if (n == name) return t;
  fail_internal(source_ + ": " + describe(node) + " has no tensor '" + name + "'");
}

const ExportNode* ExportTree::find(const Layer* layer) const {
  std::vector<const ExportNode*> nodes;
  collect(root_, nodes);
  for (const ExportNode* n : nodes)
    if (n->layer == layer) return n;
  fail_internal(source_ + ": a layer the model refers to is not in its tree");
}

nlohmann::json ExportTree::architecture() const {
  nlohmann::json j;
  j["format"] = "dptrain-architecture/1";
  j["input_shape"] = shape_json(input_);
  j["output_shape"] = shape_json(root_.out);
  j["normalize"] = !meta_.norm_mean.empty();
  j["head"] = export_head_name(head_);
  j["model"] = node_json(*this, root_);
  return j;
}

}  // namespace dptrain
