#include "models/core/Error.h"
#include "models/layers/Layer.h"

namespace dptrain {

std::string ParamRegistry::scope() const {
  std::string s;
  for (const auto& part : scopes_) s += (s.empty() ? "" : "/") + part;
  return s;
}

void ParamRegistry::declare(const std::string& name, const Shape& shape, const ParamInit& init, Tensor* value,
                            Tensor* grad) {
  std::string path = scope();
  path += (path.empty() ? "" : "/") + name;
  entries_.push_back({path, shape, init, size_, {value, grad}});
  size_ += (shape.numel() + alignment - 1) / alignment * alignment;
}

void ParamRegistry::bind(float* values, float* grads, Device device) {
  for (auto& e : entries_) {
    *e.slot.value = Tensor::view(values + e.offset, e.shape, device);
    *e.slot.grad = Tensor::view(grads + e.offset, e.shape, device);
  }
}

void ParamRegistry::declare_buffer(const std::string& name, const Shape& shape, const ParamInit& init, Tensor* value) {
  std::string path = scope();
  path += (path.empty() ? "" : "/") + name;
  buffer_entries_.push_back({path, shape, init, buffer_size_, {value, nullptr}});
  buffer_size_ += (shape.numel() + alignment - 1) / alignment * alignment;
}

void ParamRegistry::bind_buffers(float* values, Device device) {
  for (auto& e : buffer_entries_) *e.slot.value = Tensor::view(values + e.offset, e.shape, device);
}

}  // namespace dptrain
