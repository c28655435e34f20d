#include "models/layers/ActivationNames.h"

namespace dptrain {

std::string activation_name(Activation act) {
  switch (act) {
    case Activation::identity:
      return "identity";
    case Activation::relu:
      return "relu";
    case Activation::leaky_relu:
      return "leaky_relu";
    case Activation::sigmoid:
      return "sigmoid";
    case Activation::tanh:
      return "tanh";
  }
  return "?";
}

bool parse_activation(const std::string& name, Activation& act) {
  if (name == "relu")
    act = Activation::relu;
  else if (name == "leaky_relu")
    act = Activation::leaky_relu;
  else if (name == "sigmoid")
    act = Activation::sigmoid;
  else if (name == "tanh")
    act = Activation::tanh;
  else if (name == "identity" || name == "linear" || name == "none")
    act = Activation::identity;
  else
    return false;
  return true;
}

}  // namespace dptrain
