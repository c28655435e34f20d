// Tensor: float32 data, a shape and a device. Either it owns its storage (and can grow it) or it
// is a view into memory owned elsewhere, such as a layer's slice of the model's flat parameter
// buffer. resize() reuses capacity, so workspaces sized by the first step never allocate again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "models/core/Device.h"
#include "models/core/Shape.h"

namespace dptrain {

// Raw device memory released through the backend that allocated it.
class DeviceMemory {
 public:
  DeviceMemory(size_t bytes, Device device);
  ~DeviceMemory();
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
};

class Tensor {
 public:
  Tensor() = default;
  // An owning, zero-filled tensor.
  static Tensor zeros(const Shape& shape, Device device = Device::cpu);
  // A non-owning view of memory that outlives it.
  static Tensor view(float* data, const Shape& shape, Device device = Device::cpu);

  // Gives the tensor a new shape. An owning tensor keeps its storage when it has the capacity
  // and reallocates (contents lost) otherwise; a view may only shrink or keep its size.
  void resize(const Shape& shape);
  // Same as resize, for an empty tensor that must own storage on `device`.
  void resize(const Shape& shape, Device device);

  float* data() { return data_; }
  const float* data() const { return data_; }
  const Shape& shape() const { return shape_; }
  Device device() const { return device_; }
  int64_t numel() const { return shape_.numel(); }
  int64_t rows() const { return shape_.rank() ? shape_[0] : 0; }
  int64_t row_size() const { return shape_.row_size(); }
  bool empty() const { return data_ == nullptr; }
  size_t capacity() const { return capacity_; }

  // A view of rows [begin, end) along dimension 0.
  Tensor rows_view(int64_t begin, int64_t end) const;
  // An alias of the same data with another shape of the same number of elements. Aliases are
  // for passing data through (flatten, identity dropout): resizing one detaches it and gives it
  // storage of its own instead of writing into the aliased memory.
  Tensor reshaped(const Shape& shape) const;
  Tensor alias() const { return reshaped(shape_); }

  // Copies all elements from `src` (same numel; any devices).
  void copy_from(const Tensor& src);
  void fill(float value);

 private:
  std::shared_ptr<DeviceMemory> storage_;
  float* data_ = nullptr;
  Shape shape_;
  Device device_ = Device::cpu;
  size_t capacity_ = 0;  // elements
  bool view_ = false;    // views never reallocate
  bool alias_ = false;   // see reshaped()
};

// A host copy of a tensor's elements (from any device), and the way back into a tensor of the
// same number of elements.
std::vector<float> to_host(const Tensor& t);
void from_host(Tensor& t, const std::vector<float>& v);

// Typed workspace memory (indices, masks) that grows like Tensor::resize.
template <typename T>
class Workspace {
 public:
  T* reserve(int64_t count, Device device) {
    size_t bytes = static_cast<size_t>(count) * sizeof(T);
    if (!mem_ || mem_->bytes() < bytes || mem_->device() != device)
      mem_ = std::make_shared<DeviceMemory>(bytes ? bytes : sizeof(T), device);
    return static_cast<T*>(mem_->data());
  }
  T* data() const { return mem_ ? static_cast<T*>(mem_->data()) : nullptr; }

 private:
  std::shared_ptr<DeviceMemory> mem_;
};

}  // namespace dptrain
