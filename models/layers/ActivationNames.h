// Config names of the activations, shared by the layers and the model zoo.
#pragma once

#include <string>

#include "models/kernels/KernelBackend.h"

namespace dptrain {

std::string activation_name(Activation act);
// Parses "relu", "leaky_relu", "sigmoid", "tanh", "identity"/"linear"/"none"; false if unknown.
bool parse_activation(const std::string& name, Activation& act);

}  // namespace dptrain
