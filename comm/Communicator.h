// The collectives a data-parallel job needs, independent of transport. Backends live in
// backend/<name>/ (local: one process; mpi; nccl) and are chosen in one factory, make_communicator.
// Topology questions (rank, size, local rank) and collectives share one small interface, as in
// flashlight and xgboost's collective; the watchdog wraps any of them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/core/Device.h"

namespace dptrain {

// A reusable handle for a non-blocking collective: made once (make_request), started many times,
// so the step loop never allocates one. wait() must return before the buffer is read.
class CommRequest {
 public:
  virtual ~CommRequest() = default;
  // Blocks until the operation in flight completes (throws on failure); returns at once if idle.
  virtual void wait() = 0;
  // True when complete or idle; never blocks.
  [[nodiscard]] virtual bool test() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string backend() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Rank and number of ranks on this node (picks the GPU and sizes the thread count).
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;
  // Where the buffers handed to collectives live (cpu for mpi, cuda for nccl).
  virtual Device device() const { return Device::cpu; }

  // In-place sum over all ranks.
  virtual void allreduce_sum(float* data, int64_t count) = 0;
  virtual void allreduce_sum(double* data, int64_t count) = 0;
  // In-place max over all ranks.
  virtual void allreduce_max(double* data, int64_t count) = 0;
  virtual std::unique_ptr<CommRequest> make_request() = 0;
  // Starts an in-place float sum on an idle request; the buffer must not be touched until it completes.
  virtual void allreduce_sum_async(float* data, int64_t count, CommRequest& request) = 0;
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  // Gathers `bytes` from every rank into recv (size() * bytes, rank order).
  virtual void allgather(const void* send, size_t bytes, void* recv) = 0;
  virtual void barrier() = 0;
  // Ends the whole job after a fatal error (MPI_Abort); local does nothing.
  virtual void abort(int exit_code) {}

  // Names the collective in flight, for the watchdog's message ("allreduce of bucket 3").
  void set_operation(const char* what, int64_t step) {
    operation_ = what;
    step_ = step;
  }
  const char* operation() const { return operation_; }
  int64_t step() const { return step_; }

 private:
  const char* operation_ = "start-up";
  int64_t step_ = -1;
};

// Picks the backend: "local", "mpi", "nccl", or "auto": local for one process; for several ranks
// started by mpirun/srun, nccl when the model lives on a GPU (model_device) and NCCL is built in,
// else mpi. Collectives that do not finish within timeout_s fail with a peer error naming the
// missing ranks.
std::unique_ptr<Communicator> make_communicator(const std::string& backend, double timeout_s = 300.0,
                                                Device model_device = Device::cpu);

// Whether the environment says we were started by mpirun/srun as one of several ranks.
bool launched_as_multiple_ranks();

}  // namespace dptrain
