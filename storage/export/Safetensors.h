// The safetensors format (Hugging Face's): an 8-byte little-endian header length, a JSON header
// naming every tensor's dtype, shape and byte range (plus an optional "__metadata__" of strings),
// padded with spaces to a multiple of 8, then the tensors' bytes back to back. `dptrain export`
// writes a model under the state_dict names of the equivalent PyTorch module (docs/export.md).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "storage/export/ExportTree.h"

namespace dptrain {

struct SafetensorsTensor {
  std::string name;
  std::string dtype;  // "F32" or "I64"
  std::vector<int64_t> shape;
  std::string bytes;  // little-endian values
};

// Writes `tensors` and `metadata` atomically (nothing is left at `path` when it fails).
void write_safetensors(const std::string& path, const std::vector<SafetensorsTensor>& tensors,
                       const std::map<std::string, std::string>& metadata);

// The model's PyTorch state_dict, in module order: each parameter and buffer under the name the
// equivalent module (python/dptrain_torch.py) gives it, input scaling as "normalize.mean" and
// "normalize.std" first when the model has it.
std::vector<SafetensorsTensor> torch_state_dict(const ExportTree& tree);

// Writes the model as safetensors: torch_state_dict() plus metadata "format" = "pt",
// "dptrain.architecture" (ExportTree::architecture() as JSON text), "dptrain.config" (the training
// config), "dptrain.head" and "dptrain.source".
void export_safetensors(const ExportTree& tree, const std::string& path);

}  // namespace dptrain
