// Builds a model from the [model] table of a config: the classic kinds by name (linear, logistic
// and softmax regression, linear SVM, MLP, CNN), the modern ones (ResNet, MobileNet-style,
// LSTM/GRU/RNN sequence classifiers, Transformer language models and classifiers, autoencoders, VAE) or an explicit
// layer list, each with the loss it is trained with. The output layer is sized from the data's task unless the list is
// explicit; autoencoders reconstruct their input instead. One table row per kind (and per layer type,
// models/zoo/LayerBuilder.h) chooses the builder, declares the only keys valid for it and prints
// the help, so a key another kind takes is reported as unknown.
#pragma once

#include <memory>
#include <string>

#include "models/core/ConfigNode.h"
#include "models/core/Shape.h"
#include "models/layers/Layer.h"
#include "models/losses/Loss.h"

namespace dptrain {

// What the data asks of the model's output.
struct TaskInfo {
  bool classification = true;
  int64_t num_classes = 2;  // classification
  int64_t target_dim = 1;   // regression: floats per sample
  int64_t label_width = 1;  // class ids per sample: 1, or one per step (per-step targets [N, T])
};

struct ZooModel {
  std::unique_ptr<Layer> root;
  LossKind loss;
  std::string kind;
  bool reconstruct = false;  // the targets are the input itself (autoencoder, vae)
  int64_t samples = 0;       // vae: how many prior samples to write as an image grid after training
  // Fine-tuning (every kind): layer paths whose parameters stay fixed (model.freeze), and a model
  // file whose parameters initialize those of the same path and shape (model.init_from).
  std::vector<std::string> freeze;
  std::string init_from;
};

// Reads [model] and returns the layers (not yet set up) and the loss. `input` is the sample shape
// of the data; the kinds that size themselves from it (resnet, mobilenet, autoencoder, vae) need it.
// Reads only `kind`, `loss` and the chosen kind's keys: run ConfigNode::check_unused() afterwards to
// report any other key with file, line and the kind's valid keys.
ZooModel build_model(const ConfigNode& model, const TaskInfo& task, const Shape& input = Shape());

// Builds one layer from a table with a `type` key (used by `cnn` blocks and explicit lists).
std::unique_ptr<Layer> build_layer(const ConfigNode& layer);

// Model kinds and layer types the zoo knows, for help texts: one line per kind (type) with its
// description and keys with their defaults, then a line on what every kind (table) takes.
std::string model_kinds_help();
std::string layer_types_help();

}  // namespace dptrain
