// The ONNX writer: one emitter per layer kind turns an ExportNode into nodes of the graph.
// Initializers carry the PyTorch state_dict names of safetensors export ("3.body.0.weight") in
// PyTorch's layouts; where an operator wants another layout (ONNX's LSTM and GRU gate orders) the
// reordered copy gets a name of its own. Dense layers become Gemm (transB = 1), which OpenCV's
// importer reads; attention and a tied head transpose their weights with a Transpose node.
#include "storage/export/OnnxExport.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>

#include "models/core/Error.h"
#include "models/layers/ActivationLayer.h"
#include "models/layers/BatchNorm.h"
#include "models/layers/Conv2d.h"
#include "models/layers/ConvTranspose2d.h"
#include "models/layers/Dense.h"
#include "models/layers/Embedding.h"
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
#include "models/layers/TiedOutput.h"
#include "models/layers/Upsample2d.h"
#include "storage/AtomicFile.h"

namespace dptrain {

bool onnx_export_available() { return true; }

namespace {

// A graph under construction: unique value names, initializers and nodes.
class Graph {
 public:
  explicit Graph(onnx::GraphProto& g) : g_(g) {}

  std::string fresh(const std::string& base) {
    const int k = used_[base]++;
    return k == 0 ? base : base + "_" + std::to_string(k);
  }

  std::string floats(const std::string& name, const std::vector<int64_t>& dims, const float* data) {
    onnx::TensorProto* t = g_.add_initializer();
    const std::string n = fresh(name);
    t->set_name(n);
    t->set_data_type(onnx::TensorProto::FLOAT);
    int64_t count = 1;
    for (int64_t d : dims) t->add_dims(d), count *= d;
    t->set_raw_data(std::string(reinterpret_cast<const char*>(data), static_cast<size_t>(count) * sizeof(float)));
    return n;
  }
  std::string floats(const std::string& name, const std::vector<int64_t>& dims, const std::vector<float>& v) {
    return floats(name, dims, v.data());
  }
  std::string scalar(const std::string& name, float v) { return floats(name, {}, &v); }

  // An INT64 constant: 1-D, or a scalar when `scalar`.
  std::string ints(const std::string& name, const std::vector<int64_t>& values, bool scalar = false) {
    onnx::TensorProto* t = g_.add_initializer();
    const std::string n = fresh(name);
    t->set_name(n);
    t->set_data_type(onnx::TensorProto::INT64);
    if (!scalar) t->add_dims(static_cast<int64_t>(values.size()));
    for (int64_t v : values) t->add_int64_data(v);
    return n;
  }

  // A node of `op` with one output named after `base`.
  onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& inputs, const std::string& base,
                        int outputs = 1) {
    onnx::NodeProto* n = g_.add_node();
    n->set_op_type(op);
    for (const auto& i : inputs) n->add_input(i);
    const std::string out = fresh(base + "/" + op);
    n->set_name(out);
    n->add_output(out);
    for (int k = 1; k < outputs; ++k) n->add_output(out + ":" + std::to_string(k));
    return *n;
  }
  std::string op(const std::string& op, const std::vector<std::string>& inputs, const std::string& base) {
    return node(op, inputs, base).output(0);
  }

  onnx::GraphProto& proto() { return g_; }

 private:
  onnx::GraphProto& g_;
  std::map<std::string, int> used_;
};

onnx::NodeProto& attr(onnx::NodeProto& n, const std::string& name, int64_t v) {
  onnx::AttributeProto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
  return n;
}
onnx::NodeProto& attr_float(onnx::NodeProto& n, const std::string& name, float v) {
  onnx::AttributeProto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
  return n;
}
onnx::NodeProto& attr_ints(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& v) {
  onnx::AttributeProto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
  return n;
}

std::vector<int64_t> dims_of(const Shape& s) { return s.to_vector(); }
// [-1, sample dims...]: a Reshape target that keeps the batch dynamic.
std::vector<int64_t> batch_shape(const Shape& sample) {
  std::vector<int64_t> d{-1};
  for (int64_t v : sample.to_vector()) d.push_back(v);
  return d;
}

class Emitter;
using Emit = std::function<std::string(Emitter&, const ExportNode&, const std::string&)>;
const std::map<std::string, Emit>& emitters();

class Emitter {
 public:
  Emitter(const ExportTree& tree, Graph& g) : tree_(tree), g_(g) {}

  std::string emit(const ExportNode& node, const std::string& x) {
    const auto& table = emitters();
    auto it = table.find(node.kind);
    if (it == table.end()) {
      std::string kinds;
      for (const auto& [k, fn] : table) kinds += (kinds.empty() ? "" : ", ") + k;
      fail_input(tree_.source() + ": " + ExportTree::describe(node) +
                 " has no ONNX form in dptrain export; layers it exports: " + kinds);
    }
    return it->second(*this, node, x);
  }

  // The node's parameter or buffer as an initializer under its PyTorch name.
  std::string param(const ExportNode& node, const std::string& name) {
    const HostTensor& t = tree_.tensor(node, name);
    return g_.floats(prefix(node) + name, dims_of(t.shape), t.data);
  }
  static std::string prefix(const ExportNode& node) { return node.name.empty() ? "" : node.name + "."; }
  static std::string base(const ExportNode& node) { return node.name.empty() ? node.kind : node.name; }

  std::string activation(const std::string& x, Activation act, float slope, const std::string& base) {
    switch (act) {
      case Activation::identity:
        return x;
      case Activation::relu:
        return g_.op("Relu", {x}, base);
      case Activation::sigmoid:
        return g_.op("Sigmoid", {x}, base);
      case Activation::tanh:
        return g_.op("Tanh", {x}, base);
      case Activation::leaky_relu:
        return attr_float(g_.node("LeakyRelu", {x}, base), "alpha", slope).output(0);
    }
    fail_internal("unknown activation");
  }

  // x [n, T, ...] -> [n * T, ...] -> f -> [n, T, ...out]: a per-step layer over a sequence.
  std::string per_step(const ExportNode& node, const std::string& x, const std::function<std::string(std::string)>& f) {
    const std::string b = base(node);
    const std::string flat = g_.op("Reshape", {x, g_.ints(b + ".steps_in", batch_shape(node.in.drop_first()))}, b);
    const std::string y = f(flat);
    return g_.op("Reshape", {y, g_.ints(b + ".steps_out", batch_shape(node.out))}, b);
  }

  const ExportTree& tree() const { return tree_; }
  Graph& g() { return g_; }
  // An embedding with a padding id marks which steps hold real tokens, [n, T] of 1 and 0 (dptrain's
  // SequenceMask); the attention and mean pooling after it read it.
  std::string key_mask;
  // That mask, or a bad-input error naming `node` when no embedding before it made one.
  const std::string& mask_for(const ExportNode& node) const {
    if (key_mask.empty())
      fail_input(tree_.source() + ": " + ExportTree::describe(node) +
                 " is masked but no embedding before it has a pad_id");
    return key_mask;
  }

 private:
  const ExportTree& tree_;
  Graph& g_;
};

// y = x W^T + b on [n, features] (a sample of any shape is taken flat, as Dense does).
std::string dense(Emitter& e, const ExportNode& n, const std::string& x) {
  const auto& d = static_cast<const Dense&>(*n.layer);
  Graph& g = e.g();
  const std::string b = Emitter::base(n);
  const std::string in = n.in.rank() > 1 ? attr(g.node("Flatten", {x}, b), "axis", 1).output(0) : x;
  // A bias of zeros where the layer has none: OpenCV's Gemm import wants three inputs.
  const std::string bias = d.has_bias() ? e.param(n, "bias")
                                        : g.floats(Emitter::prefix(n) + "bias_zeros", {d.out_features()},
                                                   std::vector<float>(static_cast<size_t>(d.out_features()), 0.0f));
  const std::string y = attr(g.node("Gemm", {in, e.param(n, "weight"), bias}, b), "transB", 1).output(0);
  return e.activation(y, d.activation(), d.slope(), b);
}

std::string conv2d(Emitter& e, const ExportNode& n, const std::string& x) {
  const auto& c = static_cast<const Conv2d&>(*n.layer);
  const Conv2dOptions& o = c.options();
  std::vector<std::string> inputs{x, e.param(n, "weight")};
  if (o.bias) inputs.push_back(e.param(n, "bias"));
  onnx::NodeProto& conv = e.g().node("Conv", inputs, Emitter::base(n));
  attr_ints(conv, "kernel_shape", {o.kernel_h, o.kernel_w});
  attr_ints(conv, "strides", {o.stride, o.stride});
  attr_ints(conv, "pads", {o.padding, o.padding, o.padding, o.padding});
  attr_ints(conv, "dilations", {o.dilation, o.dilation});
  attr(conv, "group", o.groups);
  return e.activation(conv.output(0), o.activation, o.slope, Emitter::base(n));
}

// ConvTranspose's weight [in, out, kh, kw] is PyTorch's and dptrain's.
std::string conv_transpose2d(Emitter& e, const ExportNode& n, const std::string& x) {
  const auto& c = static_cast<const ConvTranspose2d&>(*n.layer);
  const ConvTranspose2dOptions& o = c.options();
  std::vector<std::string> inputs{x, e.param(n, "weight")};
  if (o.bias) inputs.push_back(e.param(n, "bias"));
  onnx::NodeProto& conv = e.g().node("ConvTranspose", inputs, Emitter::base(n));
  attr_ints(conv, "kernel_shape", {o.kernel_h, o.kernel_w});
  attr_ints(conv, "strides", {o.stride, o.stride});
  attr_ints(conv, "pads", {o.padding, o.padding, o.padding, o.padding});
  attr_ints(conv, "output_padding", {o.output_padding, o.output_padding});
  attr_ints(conv, "dilations", {o.dilation, o.dilation});
  return e.activation(conv.output(0), o.activation, o.slope, Emitter::base(n));
}

// Nearest-neighbour upsampling by whole factors: output pixel i reads input pixel floor(i / scale).
std::string upsample2d(Emitter& e, const ExportNode& n, const std::string& x) {
  const auto& u = static_cast<const Upsample2d&>(*n.layer);
  Graph& g = e.g();
  const std::string b = Emitter::base(n);
  const std::vector<float> scales{1.0f, 1.0f, static_cast<float>(u.scale_h()), static_cast<float>(u.scale_w())};
  onnx::NodeProto& r = g.node("Resize", {x, "", g.floats(b + ".scales", {4}, scales)}, b);
  onnx::AttributeProto* mode = r.add_attribute();
  mode->set_name("mode");
  mode->set_type(onnx::AttributeProto::STRING);
  mode->set_s("nearest");
  onnx::AttributeProto* coords = r.add_attribute();
  coords->set_name("coordinate_transformation_mode");
  coords->set_type(onnx::AttributeProto::STRING);
  coords->set_s("asymmetric");
  onnx::AttributeProto* round = r.add_attribute();
  round->set_name("nearest_mode");
  round->set_type(onnx::AttributeProto::STRING);
  round->set_s("floor");
  return r.output(0);
}

// y = t (h - x) + x, h = act(x W_h^T + b_h), t = sigmoid(x W_t^T + b_t), over flat features.
std::string highway(Emitter& e, const ExportNode& n, const std::string& x) {
  const auto& h = static_cast<const Highway&>(*n.layer);
  Graph& g = e.g();
  const std::string b = Emitter::base(n);
  const std::string flat = n.in.rank() > 1 ? attr(g.node("Flatten", {x}, b), "axis", 1).output(0) : x;
  auto gemm = [&](const char* w, const char* bias) {
    return attr(g.node("Gemm", {flat, e.param(n, w), e.param(n, bias)}, b), "transB", 1).output(0);
  };
  const std::string hx = e.activation(gemm("weight_h", "bias_h"), h.activation(), h.slope(), b);
  const std::string t = g.op("Sigmoid", {gemm("weight_t", "bias_t")}, b);
  const std::string y = g.op("Add", {g.op("Mul", {t, g.op("Sub", {hx, flat}, b)}, b), flat}, b);
  return n.in.rank() > 1 ? g.op("Reshape", {y, g.ints(b + ".shape", batch_shape(n.out))}, b) : y;
}

// A VAE's sample at inference: the mean, the first half of [mu, log variance].
std::string gaussian_sample(Emitter& e, const ExportNode& n, const std::string& x) {
  Graph& g = e.g();
  const std::string b = Emitter::base(n);
  return g.op("Slice", {x, g.ints(b + ".starts", {0}), g.ints(b + ".ends", {n.out[0]}), g.ints(b + ".axes", {1})}, b);
}

// The branches on the same input, joined along dimension 1 (channels, or features).
std::string concat(Emitter& e, const ExportNode& n, const std::string& x) {
  std::vector<std::string> parts;
  for (const ExportNode& c : n.children) parts.push_back(e.emit(c, x));
  return attr(e.g().node("Concat", parts, Emitter::base(n)), "axis", 1).output(0);
}

std::string pool(Emitter& e, const ExportNode& n, const std::string& x) {
  const auto& p = static_cast<const Pool2d&>(*n.layer);
  const bool max = p.pool_kind() == Pool2d::Kind::max;
  if (p.global()) return e.g().op(max ? "GlobalMaxPool" : "GlobalAveragePool", {x}, Emitter::base(n));
  const Conv2dGeometry& geo = p.geometry();
  const std::string b = Emitter::base(n);
  std::string in = x;
  std::vector<int64_t> pads{geo.pad_h, geo.pad_w, geo.pad_h, geo.pad_w};
  if (!max && (geo.pad_h || geo.pad_w)) {
    // dptrain divides by the whole window, padding included (count_include_pad = 1). OpenCV 4.6
    // ignores that attribute, so the zeros are padded by a Pad of their own, which every runtime
    // reads alike.
    in = e.g().op("Pad", {x, e.g().ints(b + ".pads", {0, 0, geo.pad_h, geo.pad_w, 0, 0, geo.pad_h, geo.pad_w})}, b);
    pads = {0, 0, 0, 0};
  }
  onnx::NodeProto& node = e.g().node(max ? "MaxPool" : "AveragePool", {in}, b);
  attr_ints(node, "kernel_shape", {geo.kernel_h, geo.kernel_w});
  attr_ints(node, "strides", {geo.stride_h, geo.stride_w});
  attr_ints(node, "pads", pads);
  return node.output(0);
}

std::string batchnorm(Emitter& e, const ExportNode& n, const std::string& x) {
  const auto& bn = static_cast<const BatchNorm&>(*n.layer);
  onnx::NodeProto& node =
      e.g().node("BatchNormalization",
                 {x, e.param(n, "weight"), e.param(n, "bias"), e.param(n, "running_mean"), e.param(n, "running_var")},
                 Emitter::base(n));
  return attr_float(node, "epsilon", bn.eps()).output(0);
}

std::string activation_layer(Emitter& e, const ExportNode& n, const std::string& x) {
  const auto& a = static_cast<const ActivationLayer&>(*n.layer);
  return e.activation(x, a.activation(), a.slope(), Emitter::base(n));
}

std::string pass(Emitter&, const ExportNode&, const std::string& x) { return x; }

std::string reshape(Emitter& e, const ExportNode& n, const std::string& x) {
  const std::string b = Emitter::base(n);
  return e.g().op("Reshape", {x, e.g().ints(b + ".shape", batch_shape(n.out))}, b);
}

// Groups of `pieces` consecutive features reduced by max: [n, units * pieces] -> [n, units].
std::string maxout(Emitter& e, const ExportNode& n, const std::string& x) {
  const int64_t pieces = static_cast<const Maxout&>(*n.layer).pieces();
  const std::string b = Emitter::base(n);
  const std::string grouped = e.g().op("Reshape", {x, e.g().ints(b + ".groups", {-1, n.out[0], pieces})}, b);
  onnx::NodeProto& m = e.g().node("ReduceMax", {grouped}, b);
  attr_ints(m, "axes", {2});
  return attr(m, "keepdims", 0).output(0);
}

// x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), the exact form dptrain and PyTorch compute.
std::string gelu(Emitter& e, const ExportNode& n, const std::string& x) {
  Graph& g = e.g();
  const std::string b = Emitter::base(n);
  const std::string scaled = g.op("Mul", {x, g.scalar(b + ".inv_sqrt2", static_cast<float>(1.0 / std::sqrt(2.0)))}, b);
  const std::string phi = g.op("Add", {g.op("Erf", {scaled}, b), g.scalar(b + ".one", 1.0f)}, b);
  return g.op("Mul", {g.op("Mul", {x, phi}, b), g.scalar(b + ".half", 0.5f)}, b);
}

std::string sequential(Emitter& e, const ExportNode& n, const std::string& x) {
  std::string y = x;
  for (const ExportNode& c : n.children) y = e.emit(c, y);
  return y;
}

std::string residual(Emitter& e, const ExportNode& n, const std::string& x) {
  const auto& r = static_cast<const Residual&>(*n.layer);
  const std::string body = e.emit(n.children[0], x);
  const std::string skip = n.children.size() > 1 ? e.emit(n.children[1], x) : x;
  const std::string sum = e.g().op("Add", {body, skip}, Emitter::base(n));
  return e.activation(sum, r.activation(), r.slope(), Emitter::base(n));
}

std::string time_distributed(Emitter& e, const ExportNode& n, const std::string& x) {
  return e.per_step(n, x, [&](const std::string& flat) { return e.emit(n.children[0], flat); });
}

std::string transformer_block(Emitter& e, const ExportNode& n, const std::string& x) {
  return e.emit(n.children[0], x);
}

// Over the last dimension: (x - mean) / sqrt(var + eps) * weight + bias (biased variance).
std::string layernorm(Emitter& e, const ExportNode& n, const std::string& x) {
  Graph& g = e.g();
  const std::string b = Emitter::base(n);
  auto mean = [&](const std::string& v) {
    onnx::NodeProto& m = g.node("ReduceMean", {v}, b);
    attr_ints(m, "axes", {-1});
    return attr(m, "keepdims", 1).output(0);
  };
  const std::string centered = g.op("Sub", {x, mean(x)}, b);
  const std::string var = mean(g.op("Mul", {centered, centered}, b));
  const float eps = static_cast<const LayerNorm&>(*n.layer).eps();
  const std::string std = g.op("Sqrt", {g.op("Add", {var, g.scalar(b + ".eps", eps)}, b)}, b);
  const std::string normalized = g.op("Div", {centered, std}, b);
  return g.op("Add", {g.op("Mul", {normalized, e.param(n, "weight")}, b), e.param(n, "bias")}, b);
}

// Ids stored as floats, [n, T] or [n, T, 1], to vectors [n, T, dim].
std::string embedding(Emitter& e, const ExportNode& n, const std::string& x) {
  Graph& g = e.g();
  const std::string b = Emitter::base(n);
  const std::string ids = attr(g.node("Cast", {x}, b), "to", onnx::TensorProto::INT64).output(0);
  const std::string rows = attr(g.node("Gather", {e.param(n, "weight"), ids}, b), "axis", 0).output(0);
  const int64_t pad = static_cast<const Embedding&>(*n.layer).pad_id();
  if (pad >= 0) {  // 1 where the id is not the padding id, as dptrain's token_mask
    const std::string is_pad = g.op("Equal", {x, g.scalar(b + ".pad_id", static_cast<float>(pad))}, b);
    const std::string keep =
        attr(g.node("Cast", {g.op("Not", {is_pad}, b)}, b), "to", onnx::TensorProto::FLOAT).output(0);
    e.key_mask = g.op("Reshape", {keep, g.ints(b + ".mask_shape", {-1, n.out[0]})}, b);
  }
  return g.op("Reshape", {rows, g.ints(b + ".shape", batch_shape(n.out))}, b);
}

std::string positional(Emitter& e, const ExportNode& n, const std::string& x) {
  const auto& p = static_cast<const PositionalEncoding&>(*n.layer);
  const std::string table = p.encoding() == PositionalEncoding::Kind::learned
                                ? e.param(n, "weight")
                                : e.g().floats(Emitter::prefix(n) + "sinusoids", dims_of(n.in), p.sinusoids());
  return e.g().op("Add", {x, table}, Emitter::base(n));
}

// The mean over steps; with a padding mask, over the real steps only (0 when there is none).
std::string mean_pool(Emitter& e, const ExportNode& n, const std::string& x) {
  Graph& g = e.g();
  const std::string b = Emitter::base(n);
  if (!static_cast<const SequencePool&>(*n.layer).masked()) {
    onnx::NodeProto& m = g.node("ReduceMean", {x}, b);
    attr_ints(m, "axes", {1});
    return attr(m, "keepdims", 0).output(0);
  }
  const std::string& keep = e.mask_for(n);
  const std::string steps = g.ints(b + ".axes", {1});
  const std::string w = g.op("Reshape", {keep, g.ints(b + ".weights", {-1, n.in[0], 1})}, b);
  const std::string sum = attr(g.node("ReduceSum", {g.op("Mul", {x, w}, b), steps}, b), "keepdims", 0).output(0);
  const std::string count = attr(g.node("ReduceSum", {keep, steps}, b), "keepdims", 1).output(0);
  return g.op("Div", {sum, g.op("Max", {count, g.scalar(b + ".one", 1.0f)}, b)}, b);
}

// Rows [blocks of `hidden`] of a gate-stacked matrix or vector in the order `order`, as a [1, ...]
// tensor: PyTorch stacks LSTM gates i f g o and GRU gates r z n, ONNX wants i o f c and z r h.
std::vector<float> gates(const HostTensor& t, int64_t hidden, const std::vector<int>& order) {
  const int64_t block = hidden * (t.shape.rank() > 1 ? t.shape[1] : 1);
  std::vector<float> out;
  for (int k : order) out.insert(out.end(), t.data + k * block, t.data + (k + 1) * block);
  return out;
}

// ONNX's RNN, LSTM and GRU (time-major, zero initial state) on [n, T, features].
std::string recurrent(Emitter& e, const ExportNode& n, const std::string& x) {
  const auto& r = static_cast<const Recurrent&>(*n.layer);
  Graph& g = e.g();
  const std::string b = Emitter::base(n), p = Emitter::prefix(n);
  const int64_t h = r.hidden(), steps = n.in[0], features = n.in[1];
  const Recurrent::Cell cell = r.cell();
  const std::vector<int> order = cell == Recurrent::Cell::lstm  ? std::vector<int>{0, 3, 1, 2}
                                 : cell == Recurrent::Cell::gru ? std::vector<int>{1, 0, 2}
                                                                : std::vector<int>{0};
  const int64_t gate_rows = h * static_cast<int64_t>(order.size());
  const ExportTree& tree = e.tree();
  std::vector<float> bias = gates(tree.tensor(n, "bias"), h, order);
  if (cell == Recurrent::Cell::gru) {
    const std::vector<float> bh = gates(tree.tensor(n, "bias_hh"), h, order);
    bias.insert(bias.end(), bh.begin(), bh.end());
  } else {
    bias.resize(static_cast<size_t>(2 * gate_rows), 0.0f);  // dptrain's one bias is b_ih + b_hh
  }
  const std::string w = g.floats(p + "onnx_W", {1, gate_rows, features}, gates(tree.tensor(n, "weight_ih"), h, order));
  const std::string rr = g.floats(p + "onnx_R", {1, gate_rows, h}, gates(tree.tensor(n, "weight_hh"), h, order));
  const std::string bb = g.floats(p + "onnx_B", {1, 2 * gate_rows}, bias);
  const std::string time_major = attr_ints(g.node("Transpose", {x}, b), "perm", {1, 0, 2}).output(0);
  const char* op = cell == Recurrent::Cell::lstm ? "LSTM" : cell == Recurrent::Cell::gru ? "GRU" : "RNN";
  onnx::NodeProto& node = g.node(op, {time_major, w, rr, bb}, b, 2);
  attr(node, "hidden_size", h);
  if (cell == Recurrent::Cell::gru) attr(node, "linear_before_reset", 1);  // r gates (W_hn h + b_hn), as PyTorch
  if (!r.return_sequences()) return g.op("Reshape", {node.output(1), g.ints(b + ".last", {-1, h})}, b);
  const std::string seq = g.op("Reshape", {node.output(0), g.ints(b + ".steps", {steps, -1, h})}, b);
  return attr_ints(g.node("Transpose", {seq}, b), "perm", {1, 0, 2}).output(0);
}

// Self-attention over [n, T, dim], the projections in nn.MultiheadAttention's layout.
std::string attention(Emitter& e, const ExportNode& n, const std::string& x) {
  const auto& a = static_cast<const MultiHeadAttention&>(*n.layer);
  Graph& g = e.g();
  const std::string b = Emitter::base(n);
  const int64_t steps = n.in[0], dim = n.in[1], heads = a.heads(), hd = dim / heads;
  auto transposed = [&](const std::string& w) {
    return attr_ints(g.node("Transpose", {w}, b), "perm", {1, 0}).output(0);
  };
  const std::string qkv =
      g.op("Add", {g.op("MatMul", {x, transposed(e.param(n, "in_proj_weight"))}, b), e.param(n, "in_proj_bias")}, b);
  const std::string split = g.op("Reshape", {qkv, g.ints(b + ".heads", {-1, steps, 3, heads, hd})}, b);
  const std::string stacked = attr_ints(g.node("Transpose", {split}, b), "perm", {2, 0, 3, 1, 4}).output(0);
  auto pick = [&](int64_t i) {
    return attr(g.node("Gather", {stacked, g.ints(b + ".index", {i}, true)}, b), "axis", 0).output(0);
  };
  const std::string q = pick(0), k = pick(1), v = pick(2);
  const std::string kt = attr_ints(g.node("Transpose", {k}, b), "perm", {0, 1, 3, 2}).output(0);
  std::string scores =
      g.op("Mul", {g.op("MatMul", {q, kt}, b), g.scalar(b + ".scale", 1.0f / std::sqrt(static_cast<float>(hd)))}, b);
  // Keys a query may not see (after it, when causal; padding, when masked) get -1e30 added, so
  // exp(-1e30 - max) is exactly 0; a query that may see no key at all gets no weight, as in dptrain.
  std::string allowed;
  if (a.causal()) {
    std::vector<float> tril(static_cast<size_t>(steps * steps), 0.0f);
    for (int64_t i = 0; i < steps; ++i)
      for (int64_t j = 0; j <= i; ++j) tril[static_cast<size_t>(i * steps + j)] = 1.0f;
    allowed = g.floats(b + ".causal", {steps, steps}, tril);
  }
  if (a.masked()) {
    const std::string keys = g.op("Reshape", {e.mask_for(n), g.ints(b + ".keys", {-1, 1, 1, steps})}, b);
    allowed = allowed.empty() ? keys : g.op("Mul", {keys, allowed}, b);
  }
  if (!allowed.empty()) {
    const std::string penalty =
        g.op("Mul", {g.op("Sub", {allowed, g.scalar(b + ".one", 1.0f)}, b), g.scalar(b + ".big", 1e30f)}, b);
    scores = g.op("Add", {scores, penalty}, b);
  }
  std::string probs = attr(g.node("Softmax", {scores}, b), "axis", -1).output(0);
  if (a.masked()) {
    onnx::NodeProto& any = g.node("ReduceMax", {allowed}, b);
    attr_ints(any, "axes", {-1});
    probs = g.op("Mul", {probs, attr(any, "keepdims", 1).output(0)}, b);
  }
  const std::string context = g.op("MatMul", {probs, v}, b);
  const std::string merged = g.op("Reshape",
                                  {attr_ints(g.node("Transpose", {context}, b), "perm", {0, 2, 1, 3}).output(0),
                                   g.ints(b + ".merge", {-1, steps, dim})},
                                  b);
  return g.op("Add",
              {g.op("MatMul", {merged, transposed(e.param(n, "out_proj_weight"))}, b), e.param(n, "out_proj_bias")}, b);
}

// A language model's head tied to its embedding: h E^T (+ bias), E under the embedding's name.
std::string tied_output(Emitter& e, const ExportNode& n, const std::string& x) {
  const auto& t = static_cast<const TiedOutput&>(*n.layer);
  const ExportNode* emb = e.tree().find(&t.embedding());
  Graph& g = e.g();
  const std::string b = Emitter::base(n);
  const std::string et = attr_ints(g.node("Transpose", {e.param(*emb, "weight")}, b), "perm", {1, 0}).output(0);
  std::string y = g.op("MatMul", {x, et}, b);
  if (t.has_bias()) y = g.op("Add", {y, e.param(n, "bias")}, b);
  return y;
}

const std::map<std::string, Emit>& emitters() {
  static const std::map<std::string, Emit> table = {
      {"sequential", sequential},
      {"dense", dense},
      {"conv2d", conv2d},
      {"conv_transpose2d", conv_transpose2d},
      {"upsample2d", upsample2d},
      {"highway", highway},
      {"gaussian_sample", gaussian_sample},
      {"concat", concat},
      {"maxpool2d", pool},
      {"avgpool2d", pool},
      {"batchnorm", batchnorm},
      {"relu", activation_layer},
      {"leaky_relu", activation_layer},
      {"sigmoid", activation_layer},
      {"tanh", activation_layer},
      {"identity", activation_layer},
      {"gelu", gelu},
      {"dropout", pass},  // identity at inference
      {"flatten", reshape},
      {"reshape", reshape},
      {"maxout", maxout},
      {"residual", residual},
      {"time_distributed", time_distributed},
      {"transformer_block", transformer_block},
      {"layernorm", layernorm},
      {"embedding", embedding},
      {"positional", positional},
      {"mean_pool", mean_pool},
      {"rnn", recurrent},
      {"lstm", recurrent},
      {"gru", recurrent},
      {"attention", attention},
      {"tied_output", tied_output},
  };
  return table;
}

void value_info(onnx::ValueInfoProto* v, const std::string& name, const Shape& sample) {
  v->set_name(name);
  onnx::TypeProto_Tensor* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  onnx::TensorShapeProto* s = t->mutable_shape();
  s->add_dim()->set_dim_param("N");
  for (int64_t d : sample.to_vector()) s->add_dim()->set_dim_value(d);
}

}  // namespace

void export_onnx(const ExportTree& tree, const std::string& path) {
  onnx::ModelProto model;
  model.set_ir_version(7);  // the IR version of opset 13
  model.set_producer_name("dptrain");
  model.set_producer_version("0.1.0");
  model.set_doc_string("exported by dptrain export from " + tree.source() +
                       "; outputs: " + export_head_name(tree.head()) + " as dptrain predict writes them");
  onnx::OperatorSetIdProto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(onnx_opset);
  auto meta = [&](const std::string& key, const std::string& value) {
    onnx::StringStringEntryProto* p = model.add_metadata_props();
    p->set_key(key);
    p->set_value(value);
  };
  meta("dptrain.config", tree.meta().config_text);
  meta("dptrain.head", export_head_name(tree.head()));

  onnx::GraphProto* proto = model.mutable_graph();
  proto->set_name("dptrain");
  Graph g(*proto);
  Emitter e(tree, g);
  std::string x = "input";
  g.fresh(x);
  if (!tree.norm_mean().empty()) {  // the reader's scaling, (v - mean) * (1 / std), same float ops
    std::vector<int64_t> dims = dims_of(tree.input_shape());
    x = g.op("Sub", {x, g.floats("normalize.mean", dims, tree.norm_mean())}, "normalize");
    x = g.op("Mul", {x, g.floats("normalize.inv_std", dims, tree.norm_inv_std())}, "normalize");
  }
  x = e.emit(tree.root(), x);
  switch (tree.head()) {
    case ExportHead::softmax:
      x = attr(g.node("Softmax", {x}, "head"), "axis", -1).output(0);
      break;
    case ExportHead::sigmoid:
      x = g.op("Sigmoid", {x}, "head");
      break;
    case ExportHead::none:
      break;
  }
  onnx::NodeProto& out = g.node("Identity", {x}, "output");
  out.set_output(0, "output");
  value_info(proto->add_input(), "input", tree.input_shape());
  value_info(proto->add_output(), "output", tree.output_shape());

  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& ex) {
    fail_internal(tree.source() + ": the ONNX graph dptrain export built fails onnx::checker: " + ex.what());
  }
  if (model.ByteSizeLong() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    fail_input(path +
               ": the model is over protobuf's 2 GiB limit, which ONNX files without external data keep; "
               "--format safetensors has none");
  std::string bytes;
  if (!model.SerializeToString(&bytes)) fail_internal(path + ": the ONNX model could not be serialized");
  write_bytes_atomically(path, bytes);
}

}  // namespace dptrain
