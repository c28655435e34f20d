// Builds layers from config tables with a `type` key ([[model.layers]], [[model.blocks]], a
// residual's body). One table row per type names it, says what it is, declares its keys with their
// defaults and builds it, so the help text, the valid keys of a table (only its type's, reported by
// ConfigNode::check_unused) and the layer built all come from one place.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/core/ConfigNode.h"
#include "models/kernels/KernelBackend.h"
#include "models/layers/Layer.h"
#include "models/layers/Sequential.h"
#include "models/zoo/KeyReader.h"

namespace dptrain {

class Pool2d;

class LayerBuilder {
 public:
  struct Type {
    std::string name;
    std::vector<std::string> aliases = {};  // other names of the same type ("linear" for "dense")
    std::string about;                      // one line for the help
    std::vector<KeySpec> keys = {};         // besides `type`
    std::unique_ptr<Layer> (*build)(LayerBuilder&, const KeyReader&);
  };
  // Every layer type, in the order the help lists them.
  static const std::vector<Type>& types();
  // The row of a type name or alias; null when there is none.
  static const Type* find(const std::string& type);

  // The layer of one table; fails naming the valid types when `type` is missing or unknown.
  std::unique_ptr<Layer> layer(const ConfigNode& c);
  // Adds the layers of `tables` in order. A dense or convolution without an activation directly
  // before a batch norm gets no bias unless its table sets `bias`: the normalization subtracts it,
  // so its gradient is zero up to rounding, and Adam turns that rounding into lr-sized steps that
  // differ with the number of ranks (PyTorch's DCGAN and our ResNet leave that bias out too).
  void add_all(Sequential& seq, const std::vector<ConfigNode>& tables);
  // The tables of `key` as one Sequential; fails naming the key when the list is empty.
  std::unique_ptr<Sequential> list(const ConfigNode& parent, const std::string& key);

 private:
  bool default_bias(const KeyReader& c, Activation act) const {
    return c.get_bool("bias", !(batchnorm_follows_ && act == Activation::identity));
  }
  // Max poolings not yet paired: a maxunpool2d pairs with the nearest preceding one anywhere in
  // the model (an encoder and its mirrored decoder).
  std::vector<const Pool2d*> pools_;
  bool batchnorm_follows_ = false;  // the table being built is directly followed by a batch norm
};

// The layer type names for messages: "dense, conv2d, ...".
std::string layer_type_names();

// Checked reads shared by the layer types and the model kinds; each fails naming the key. The
// second read_activation parses `name`, the value of `key` the caller read with its own default.
Activation read_activation(const KeyReader& c, const std::string& key);
Activation read_activation(const KeyReader& c, const std::string& key, const std::string& name);
int64_t read_positive(const KeyReader& c, const std::string& key);
float read_probability(const KeyReader& c, const std::string& key);
// The same for a key declared with a computed default, `fallback`.
float read_probability(const KeyReader& c, const std::string& key, double fallback);

}  // namespace dptrain
