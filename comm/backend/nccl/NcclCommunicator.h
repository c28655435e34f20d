// The NCCL backend: one rank per GPU, collectives on NCCL's own stream. Device buffers (the flat
// gradients) are reduced in place, each after an event on the compute stream, so a bucket's
// all-reduce starts as soon as backward has produced it; host buffers (metrics, the control lane,
// start-up checks) are staged through device scratch memory, so every collective of a job uses one
// transport. NCCL's unique id is made on rank 0 and shared through the MPI backend, whose
// announcements also serve the watchdog: a collective that misses comm.timeout_s aborts the NCCL
// communicator and throws a peer error naming the operation, the step and the ranks that never
// arrived, exactly as the MPI backend does. One rank needs no MPI.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <memory>
#include <string>

#include "comm/Communicator.h"
#include "comm/backend/BackendRegistry.h"

namespace dptrain {

// The stream the kernel backend computes on: a collective on device memory waits, on the device,
// for the work queued on it so far.
cudaStream_t nccl_compute_stream();

class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(double timeout_s);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  std::string backend() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  Device device() const override { return Device::cuda; }
  // The CUDA device index this rank uses.
  int cuda_device() const { return device_; }

  void allreduce_sum(float* data, int64_t count) override;
  void allreduce_sum(double* data, int64_t count) override;
  void allreduce_max(double* data, int64_t count) override;
  std::unique_ptr<CommRequest> make_request() override;
  void allreduce_sum_async(float* data, int64_t count, CommRequest& request) override;
  void broadcast(void* data, size_t bytes, int root) override;
  void allgather(const void* send, size_t bytes, void* recv) override;
  void barrier() override;
  void abort(int exit_code) override;

  void set_timeout(double seconds) { timeout_s_ = seconds; }
  // Polls `done` (and NCCL's asynchronous error state) until it completes or comm.timeout_s
  // passes; on failure or timeout aborts the communicator and throws a peer error.
  void wait_event(cudaEvent_t done, uint64_t sequence);

 private:
  class Request;
  // Records entry into the next collective (announced to the other ranks when there are several).
  uint64_t enter();
  // Finishes an NCCL call: a non-blocking communicator may answer ncclInProgress, which is polled.
  void settle(ncclResult_t result, const char* call, uint64_t sequence);
  // Throws (and aborts the communicator) when NCCL reports an asynchronous error.
  void check_async(uint64_t sequence);
  [[noreturn]] void timed_out(uint64_t sequence);
  [[noreturn]] void failed(const std::string& what);
  void kill_comm();
  bool on_device(const void* p);
  // Starts op on `data` (device memory) after the compute stream's work queued so far.
  void enqueue_reduce(void* data, int64_t count, ncclDataType_t type, ncclRedOp_t op, uint64_t sequence);
  // A blocking collective on host or device memory.
  void reduce(void* data, int64_t count, ncclDataType_t type, ncclRedOp_t op);
  void* scratch(size_t bytes);  // device scratch for host buffers, grown on demand

  std::unique_ptr<Communicator> bootstrap_;  // the MPI communicator; null with one rank
  CollectiveWatch* watch_ = nullptr;         // bootstrap_ as a watchdog
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;        // NCCL's own stream
  cudaEvent_t compute_ready_ = nullptr;  // recorded on the compute stream before a collective
  cudaEvent_t sync_done_ = nullptr;      // completion of the blocking collectives
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1, device_ = 0;
  double timeout_s_;
  uint64_t sequence_ = 0;
  bool aborted_ = false;
};

}  // namespace dptrain
