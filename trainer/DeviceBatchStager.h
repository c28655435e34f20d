// Moves the reader's host batches to the GPU without stalling it: each batch is copied into
// page-locked staging memory and sent on the backend's copy stream into one of two device slots
// (double buffering), so the copy of batch t+1 runs while step t computes. Labels and (soft)
// targets travel with the features. Buffers grow to the largest batch once; a step allocates
// nothing. Only the CUDA path uses it: on the CPU the reader's batch is used where it lies.
#pragma once

#include <cstddef>
#include <cstdint>

#include "models/core/Tensor.h"
#include "storage/reader/ShardedReader.h"

namespace dptrain {

class DeviceBatchStager {
 public:
  DeviceBatchStager() = default;
  ~DeviceBatchStager();
  DeviceBatchStager(const DeviceBatchStager&) = delete;
  DeviceBatchStager& operator=(const DeviceBatchStager&) = delete;

  // Queues the copy of `host` into the next slot and returns it as a device batch: x, labels
  // (host.label_width per row) and targets (target_width floats per row) in device memory, the
  // other fields as in `host` (file_rows is not carried). The copy waits on the device for the
  // compute queued so far, which is the last reader of that slot; the returned batch stays valid
  // until the stage() after next.
  const Batch& stage(const Batch& host, int64_t target_width);
  // Makes the compute stream wait for the copies staged so far (no host wait): call it before
  // queueing the work that reads them, and before staging the batch that will overlap that work.
  void ready();

 private:
  struct Slot {
    Batch batch;
    Tensor x, targets;
    Workspace<int32_t> labels;
    void* pinned = nullptr;  // x, then labels, then targets
    size_t pinned_bytes = 0;
  };
  Slot slots_[2];
  int next_ = 0;
};

}  // namespace dptrain
