// Entry points of the CUDA backend. CMake compiles the kernels/cuda/*.cu files when nvcc is found
// and NoCuda.cpp otherwise, so shared code asks here instead of testing macros. Plain C++: no CUDA
// header is included, so the trainer and launcher compile the same way with and without CUDA.
//
// The backend owns one compute stream (every KernelBackend op and cuBLAS call goes on it, in
// order) and one copy stream for host-to-device batch transfers from pinned memory that overlap
// the compute (docs/gpu.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "models/kernels/KernelBackend.h"

namespace dptrain {

// The CUDA backend, or null when this build has no CUDA or the machine has no usable GPU. The
// backend is created on first use on the device cuda_set_device chose (device 0 otherwise).
KernelBackend* cuda_kernels_if_available();
// Copies between host and device memory (either side may be the host). Waits until the data has
// arrived when either side is the host (pageable host memory may be reused at once); a
// device-to-device copy is queued on the compute stream.
void cuda_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
// Visible CUDA devices (0 without CUDA, or when the driver reports an error).
int cuda_devices();
// Whether this binary was built with CUDA.
bool cuda_compiled();

// ---- device selection (one rank per GPU)
// Makes `index` (among the visible devices) the device of this process; must be called before the
// backend is first used. Throws a bad-input error for an index outside [0, cuda_devices()).
void cuda_set_device(int index);
// The device a rank with this local rank should use: local_rank modulo the visible devices, so
// CUDA_VISIBLE_DEVICES is honoured. -1 when there is no device.
int cuda_device_for_local_rank(int local_rank);
// The name of the backend's device ("NVIDIA H100 80GB HBM3"), or "" without one.
const char* cuda_device_name();
// The backend's compute stream as a cudaStream_t (null without a device), for libraries that must
// order their work after the kernels queued on it, such as NCCL all-reducing gradient buckets.
void* cuda_compute_stream();

// ---- pinned host memory for the trainer's staging buffers (page-locked: the copy engine reads it
// directly, so a copy from it overlaps compute). Throws when the allocation fails.
void* cuda_host_alloc(size_t bytes);
void cuda_host_free(void* p);

// ---- batch transfers on the copy stream
// Queues dst (device) <- src (pinned host) on the copy stream. The copy first waits for every
// compute operation queued so far (dst may be a buffer the previous step still reads), so issue
// the copy of batch t+1 before queueing step t, into the buffer step t-1 used (double buffering):
// it then overlaps step t. src must stay untouched until cuda_sync_copies() returns.
void cuda_copy_async_to_device(void* dst, const void* src, size_t bytes);
// Makes the compute stream wait (on the device, the host does not block) for every copy queued so
// far; call it before queueing the step that reads them.
void cuda_wait_copies();
// Blocks the host until every queued copy has finished (their pinned sources may then be reused).
void cuda_sync_copies();

// ---- CUDA graphs: a training step of static shapes captured once and replayed as one launch
// (small models are launch-bound). Whether graph capture is available (a device and a driver
// that supports it).
bool cuda_graphs_supported();

// A captured sequence of backend operations. run(key, body) captures body() on the backend's
// compute stream the first time and whenever `key` differs from the captured one (shapes, or any
// host-side scalar the body bakes into its kernels: learning rate, step number for dropout keys),
// then launches the graph. While capturing nothing executes, so: run body() once eagerly before
// (allocations happen there, not under capture), and keep the body free of host synchronization
// (sum(), synchronize(), device-to-host copies), which capture forbids and reports as an error.
class CudaGraph {
 public:
  CudaGraph();
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;
  void run(uint64_t key, const std::function<void()>& body);
  // Drops the captured graph (the next run captures again).
  void reset();
  bool captured() const;
  // How many times a graph was captured (re-captures included), for tests and reports.
  int captures() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dptrain
