// A trained model as the exporters see it (`dptrain export`, docs/export.md): the layer tree with
// each layer's dptrain path, its name in the equivalent PyTorch module, its sample shapes and its
// tensors on the host, plus what `dptrain predict` does around the layers (input scaling before,
// softmax or sigmoid after). The safetensors and ONNX writers and the architecture description
// that python/dptrain_torch.py builds its nn.Module from all walk this one tree, so a layer is
// named and described in one place.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "models/Model.h"
#include "storage/checkpoint/ModelFile.h"

namespace dptrain {

// What `dptrain predict` applies to the network's output (trainer/Predictor.cpp).
enum class ExportHead { none, softmax, sigmoid };
std::string export_head_name(ExportHead head);
// The head predict applies: softmax over each step's k outputs for a classifier with k > 1,
// sigmoid for one logit, nothing for regression and reconstruction.
ExportHead predict_head(const TaskInfo& task, bool reconstruct, int64_t outputs_per_step);

struct ExportNode {
  Layer* layer = nullptr;
  std::string kind;  // Layer::kind(): "dense", "residual", ...
  std::string role;  // how the parent holds it: "" (a list entry), "body", "shortcut", "inner"
  std::string path;  // dptrain scope: "03_residual/body/00_conv2d" ("" for the root)
  std::string name;  // the PyTorch module's name in the state_dict: "3.body.0" ("" for the root)
  Shape in, out;     // sample shapes, without the batch dimension
  std::vector<ExportNode> children;
};

// A parameter or buffer of the model, on the host.
struct HostTensor {
  Shape shape;
  const float* data = nullptr;
  bool buffer = false;  // a buffer (batch-norm running statistics), not a trained parameter
};

class ExportTree {
 public:
  // `model` holds the trained values (load_trained_model); `source` names the model file in
  // messages and metadata. Fails naming the layer when the model holds one that no exporter knows.
  ExportTree(Model& model, ModelFileMeta meta, ExportHead head, std::string source);

  const ExportNode& root() const { return root_; }
  const ModelFileMeta& meta() const { return meta_; }
  ExportHead head() const { return head_; }
  const std::string& source() const { return source_; }
  const Shape& input_shape() const { return input_; }
  const Shape& output_shape() const { return root_.out; }

  // The parameters and buffers `node` declared itself, by dptrain name ("weight", "running_mean"),
  // in declaration order.
  const std::vector<std::pair<std::string, HostTensor>>& tensors(const ExportNode& node) const;
  // One of them; an internal error naming the layer when it has none of that name.
  const HostTensor& tensor(const ExportNode& node, const std::string& name) const;

  // The node of `layer` (a tied output's embedding); an internal error when it is not in the tree.
  const ExportNode* find(const Layer* layer) const;

  // Input scaling as the reader applies it, v = (v - mean) * inv_std per value of a sample
  // (inv_std = 1.0f / std); both empty when the model was trained without.
  const std::vector<float>& norm_mean() const { return meta_.norm_mean; }
  const std::vector<float>& norm_inv_std() const { return inv_std_; }

  // The architecture as JSON (format "dptrain-architecture/1"): every node's type, PyTorch name,
  // shapes and attributes, containers with their children; what python/dptrain_torch.py reads.
  nlohmann::json architecture() const;

  // "03_residual/body/00_conv2d (conv2d)" for messages.
  static std::string describe(const ExportNode& node);

 private:
  std::vector<float> params_, buffers_;
  std::map<std::string, std::vector<std::pair<std::string, HostTensor>>> by_layer_;
  ModelFileMeta meta_;
  ExportHead head_;
  std::string source_;
  Shape input_;
  std::vector<float> inv_std_;
  ExportNode root_;
};

}  // namespace dptrain
