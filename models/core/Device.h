// Where a tensor's memory lives. A runtime field, not a template parameter: a layer runs on
// whatever device its input is on, through the kernel backend for that device.
#pragma once

#include <string>

namespace dptrain {

enum class Device { cpu, cuda };

inline const char* device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

}  // namespace dptrain
