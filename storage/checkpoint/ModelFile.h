// The trained-model file: every parameter as an HDF5 dataset under /params/<layer path> (float32,
// its own shape, so h5py or PyTorch can read it), buffers likewise under /buffers, the config
// text that rebuilds the architecture, the task, and the feature-normalization statistics.
// `dptrain eval` and `predict` load it; checkpoints (CheckpointStore) use the same /params and
// /buffers layout and add training state.
#pragma once

#include <string>
#include <vector>

#include "models/Model.h"
#include "models/zoo/ModelZoo.h"
#include "storage/hdf5/H5.h"

namespace dptrain {

struct ModelFileMeta {
  std::string config_text;
  TaskInfo task;
  std::vector<float> norm_mean, norm_std;  // empty when the model was trained without scaling
  std::vector<int64_t> input_shape;
};

// Writes the model atomically.
void save_model_file(const std::string& path, const Model& model, const ModelFileMeta& meta);
// Reads the metadata (config, task, normalization) of a model file.
ModelFileMeta read_model_meta(const std::string& path);

// Writes every parameter of `model` under `group` ("/params") of an open HDF5 file.
void write_params(hid_t file, const std::string& group, const Model& model, const float* host_values);
// Reads every parameter of `model` from `group`; names a missing parameter or a shape that differs.
void read_params(hid_t file, const std::string& group, const std::string& source, Model& model,
                 std::vector<float>& host_values);
// Writes / reads every buffer of `model` (non-trainable state such as batch-norm running
// statistics) under `group` ("/buffers"), straight from and into the model's device buffer; both
// do nothing for a model without buffers. Reading names a missing buffer or a shape that differs.
void write_buffers(hid_t file, const std::string& group, const Model& model);
void read_buffers(hid_t file, const std::string& group, const std::string& source, Model& model);
// Loads a model file's parameters and buffers into `model` (built from the same config).
void load_model_params(const std::string& path, Model& model);

// Fine-tuning (model.init_from): what init_from_model_file() did.
struct InitFromReport {
  int64_t loaded = 0, loaded_values = 0;  // parameters (and their values) taken from the file
  std::vector<std::string> kept;          // "path (why)": parameters left at their initial values
  std::vector<std::string> unused;        // file parameters no parameter of the model took
};
// Sets every parameter and buffer of `model` whose path and shape match one in the model file at
// `path` to the file's values; the rest keep theirs.
InitFromReport init_from_model_file(const std::string& path, Model& model);

}  // namespace dptrain
