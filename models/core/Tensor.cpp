#include "models/core/Tensor.h"

#include "models/core/Error.h"
#include "models/kernels/KernelBackend.h"

namespace dptrain {

DeviceMemory::DeviceMemory(size_t bytes, Device device) : bytes_(bytes), device_(device) {
  data_ = kernels(device).allocate(bytes);
}

DeviceMemory::~DeviceMemory() { kernels(device_).release(data_); }

Tensor Tensor::zeros(const Shape& shape, Device device) {
  Tensor t;
  t.resize(shape, device);
  t.fill(0.0f);
  return t;
}

Tensor Tensor::view(float* data, const Shape& shape, Device device) {
  Tensor t;
  t.data_ = data;
  t.shape_ = shape;
  t.device_ = device;
  t.capacity_ = static_cast<size_t>(shape.numel());
  t.view_ = true;
  return t;
}

void Tensor::resize(const Shape& shape) { resize(shape, device_); }

void Tensor::resize(const Shape& shape, Device device) {
  size_t need = static_cast<size_t>(shape.numel());
  if (alias_) *this = Tensor();
  if (view_) {
    DPT_ASSERT(need <= capacity_ && device == device_,
               "a view cannot grow from " + shape_.str() + " to " + shape.str());
  } else if (!storage_ || need > capacity_ || device != device_) {
    size_t cap = need ? need : 1;
    storage_ = std::make_shared<DeviceMemory>(cap * sizeof(float), device);
    data_ = static_cast<float*>(storage_->data());
    capacity_ = cap;
    device_ = device;
  }
  shape_ = shape;
}

Tensor Tensor::rows_view(int64_t begin, int64_t end) const {
  DPT_ASSERT(shape_.rank() >= 1 && begin >= 0 && begin <= end && end <= shape_[0], "row range out of bounds");
  Shape s = shape_;
  s[0] = end - begin;
  Tensor t = view(const_cast<float*>(data_) + begin * shape_.row_size(), s, device_);
  t.storage_ = storage_;
  t.capacity_ = static_cast<size_t>(s.numel());
  return t;
}

Tensor Tensor::reshaped(const Shape& shape) const {
  DPT_ASSERT(shape.numel() == shape_.numel(), "reshape " + shape_.str() + " to " + shape.str());
  Tensor t = *this;
  t.shape_ = shape;
  t.alias_ = true;
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  DPT_ASSERT(src.numel() == numel(), "copy of " + src.shape().str() + " into " + shape_.str());
  copy_memory(data_, device_, src.data_, src.device_, static_cast<size_t>(numel()) * sizeof(float));
}

void Tensor::fill(float value) { kernels(device_).fill(numel(), value, data_); }

std::vector<float> to_host(const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  copy_memory(v.data(), Device::cpu, t.data(), t.device(), v.size() * sizeof(float));
  return v;
}

void from_host(Tensor& t, const std::vector<float>& v) {
  DPT_ASSERT(static_cast<int64_t>(v.size()) == t.numel(), "host buffer size");
  copy_memory(t.data(), t.device(), v.data(), Device::cpu, v.size() * sizeof(float));
}

}  // namespace dptrain
