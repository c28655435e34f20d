// The Gloo backend: TCP collectives for ranks that no MPI launcher started (torchrun's variables,
// srun --mpi=none; comm/RankEnvironment.h). Rank 0 serves the rendezvous (comm/control/Rendezvous.h)
// through which Gloo connects its full mesh; every collective then runs on one communication
// thread in the order the ranks issued them (large float sums round the MPI backend's ring, over
// Gloo's point-to-point buffers, so both backends give the same bits), so the non-blocking all-reduce of the gradient
// buckets overlaps the backward pass as with MPI. Gloo's own timeout (comm.timeout_s) ends a
// collective that stalls; a failed or timed-out collective asks the rendezvous which ranks are
// gone or behind and names them (exit code 3).
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "comm/Communicator.h"
#include "comm/RankEnvironment.h"

namespace gloo {
class Context;
namespace transport {
class Device;
class UnboundBuffer;
}  // namespace transport
}  // namespace gloo

namespace dptrain {

class RendezvousServer;
class RendezvousClient;
class GlooRequest;

class GlooCommunicator final : public Communicator {
 public:
  GlooCommunicator(const RankEnvironment& env, double timeout_s);
  ~GlooCommunicator() override;

  std::string backend() const override { return "gloo"; }
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
  // Ends this process at once (its peers see their connections close and name it).
  void abort(int exit_code) override;

  // One collective for the communication thread (public for GlooRequest).
  struct Op {
    enum Kind { sum_float, sum_double, max_double, broadcast, allgather, barrier } kind = barrier;
    void* data = nullptr;
    const void* send = nullptr;
    int64_t count = 0;
    int root = 0;
    uint64_t sequence = 0;
    int64_t step = -1;
    const char* what = "";
    GlooRequest* request = nullptr;
  };
  // Waits for `request` to complete; throws its failure.
  void wait(GlooRequest& request);

 private:
  void submit(Op op, GlooRequest& request);
  void run_blocking(Op op);
  void work_loop();
  void report_loop();
  void execute(const Op& op);
  void ring_sum(float* data, int64_t count, uint64_t sequence);
  ::gloo::transport::UnboundBuffer& unbound(float* data, size_t bytes);
  std::string diagnose(const Op& op, const std::string& cause);

  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  double timeout_s_;
  uint64_t sequence_ = 0;  // collectives issued by this rank
  std::atomic<uint64_t> entered_{0};
  std::atomic<int64_t> entered_step_{-1};
  std::unique_ptr<RendezvousServer> server_;  // rank 0
  std::unique_ptr<RendezvousClient> client_;
  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::Context> context_;
  std::unique_ptr<GlooRequest> sync_;  // the blocking collectives' request
  // ring_sum's state, used on the communication thread only.
  std::vector<float> incoming_;  // one segment from the left
  std::unique_ptr<::gloo::transport::UnboundBuffer> incoming_buffer_;
  std::vector<std::unique_ptr<::gloo::transport::UnboundBuffer>> unbound_;

  std::mutex mu_;
  std::condition_variable cv_;         // work queued, or closing
  std::condition_variable done_cv_;    // a collective finished
  std::condition_variable report_cv_;  // closing (wakes the progress reporter)
  std::vector<Op> queue_;              // a ring: collectives [head_, tail_) wait or run, in issue order
  uint64_t head_ = 0, tail_ = 0;
  std::string broken_;  // the first failure: every later collective fails with it
  bool closing_ = false;
  std::thread worker_, reporter_;
};

}  // namespace dptrain
