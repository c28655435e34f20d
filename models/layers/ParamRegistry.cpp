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
  entries_.push_back({path, shape, init, size_, {value, grad}, inside_frozen()});
  size_ += (shape.numel() + alignment - 1) / alignment * alignment;
}

void ParamRegistry::set_freeze_paths(std::vector<std::string> paths) {
  freeze_paths_ = std::move(paths);
  freeze_matched_.assign(freeze_paths_.size(), false);
}

bool ParamRegistry::named_frozen(const std::string& scope) {
  bool named = false;
  for (size_t i = 0; i < freeze_paths_.size(); ++i)
    if (freeze_paths_[i] == scope) named = freeze_matched_[i] = true;
  return named;
}

std::vector<std::string> ParamRegistry::unmatched_freeze_paths() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < freeze_paths_.size(); ++i)
    if (!freeze_matched_[i]) out.push_back(freeze_paths_[i]);
  return out;
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
