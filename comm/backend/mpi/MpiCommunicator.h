// The MPI backend (Open MPI). Every collective is issued non-blocking and waited on by polling
// with a deadline of comm.timeout_s, so a collective that never completes (a stalled or dead peer)
// becomes an error instead of a hang. To name the ranks at fault, each rank announces the
// sequence number of every collective it enters to the others on a private duplicate
// communicator (tiny eager messages); on a timeout the waiting rank drains those announcements
// and reports every rank that has not reached the same collective.
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

#include "comm/Communicator.h"
#include "comm/backend/BackendRegistry.h"

namespace dptrain {

class RingAllreduce;

class MpiCommunicator final : public Communicator, public CollectiveWatch {
 public:
  explicit MpiCommunicator(double timeout_s);
  ~MpiCommunicator() override;

  std::string backend() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }

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
  // Waits for `request` (polling with backoff) until the deadline; throws a peer error naming the
  // operation, the step and the ranks that have not arrived.
  void wait(MPI_Request& request, uint64_t sequence);
  // The same for a ring all-reduce (float sums of large buffers go round a ring).
  void wait(RingAllreduce& ring, uint64_t sequence);
  // Records entry into collective number `sequence` and tells the other ranks.
  uint64_t enter() override;
  std::string missing_ranks(uint64_t sequence) override;

 private:
  template <typename Done>
  void poll_until(Done done, uint64_t sequence);
  [[noreturn]] void timed_out(uint64_t sequence);
  void drain_announcements();

  MPI_Comm world_ = MPI_COMM_NULL, watch_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  double timeout_s_;
  uint64_t sequence_ = 0;
  std::vector<std::string> hosts_;  // every rank's host name
  std::vector<uint64_t> seen_;      // latest collective each rank announced
  std::vector<int64_t> seen_step_;  // and its training step
  std::vector<uint64_t> outbox_;    // send buffers of announcements in flight
  std::vector<MPI_Request> out_requests_;
  std::unique_ptr<CommRequest> sync_request_;  // reused by the blocking float all-reduce
  bool owns_init_ = false;
};

}  // namespace dptrain
