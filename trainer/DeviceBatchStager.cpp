#include "trainer/DeviceBatchStager.h"

#include <cstring>

#include "models/kernels/cuda/CudaBackend.h"

namespace dptrain {

DeviceBatchStager::~DeviceBatchStager() {
  cuda_sync_copies();  // nothing may still read the pinned memory
  for (Slot& s : slots_) cuda_host_free(s.pinned);
}

const Batch& DeviceBatchStager::stage(const Batch& host, int64_t target_width) {
  Slot& s = slots_[next_];
  next_ ^= 1;
  const int64_t rows = host.rows();
  const size_t x_bytes = static_cast<size_t>(host.x.numel()) * sizeof(float);
  const int64_t label_count = rows * host.label_width;  // per-step labels: label_width per row
  const size_t label_bytes = host.labels ? static_cast<size_t>(label_count) * sizeof(int32_t) : 0;
  const size_t target_bytes = host.targets ? static_cast<size_t>(rows * target_width) * sizeof(float) : 0;
  const size_t need = x_bytes + label_bytes + target_bytes;

  // The pinned memory of this slot was last sent two stagings ago; wait until that copy is done.
  cuda_sync_copies();
  if (need > s.pinned_bytes) {
    cuda_host_free(s.pinned);
    s.pinned = nullptr;
    s.pinned_bytes = 0;
    s.pinned = cuda_host_alloc(need);
    s.pinned_bytes = need;
  }
  char* pinned = static_cast<char*>(s.pinned);
  std::memcpy(pinned, host.x.data(), x_bytes);
  if (label_bytes) std::memcpy(pinned + x_bytes, host.labels, label_bytes);
  if (target_bytes) std::memcpy(pinned + x_bytes + label_bytes, host.targets, target_bytes);

  s.x.resize(host.x.shape(), Device::cuda);
  cuda_copy_async_to_device(s.x.data(), pinned, x_bytes);
  int32_t* labels = nullptr;
  if (label_bytes) {
    labels = s.labels.reserve(label_count, Device::cuda);
    cuda_copy_async_to_device(labels, pinned + x_bytes, label_bytes);
  }
  float* targets = nullptr;
  if (target_bytes) {
    s.targets.resize({rows * target_width}, Device::cuda);
    targets = s.targets.data();
    cuda_copy_async_to_device(targets, pinned + x_bytes + label_bytes, target_bytes);
  }
  s.batch.epoch = host.epoch;
  s.batch.step_in_epoch = host.step_in_epoch;
  s.batch.micro = host.micro;
  s.batch.micro_rows = host.micro_rows;
  s.batch.global_rows = host.global_rows;
  s.batch.row0 = host.row0;
  s.batch.x = Tensor::view(s.x.data(), host.x.shape(), Device::cuda);
  s.batch.labels = labels;
  s.batch.label_width = host.label_width;
  s.batch.targets = targets;
  s.batch.file_rows = nullptr;
  return s.batch;
}

void DeviceBatchStager::ready() { cuda_wait_copies(); }

}  // namespace dptrain
