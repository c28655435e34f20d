#include "comm/backend/mpi/MpiCommunicator.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <thread>

#include "comm/backend/BackendRegistry.h"
#include "comm/backend/mpi/MpiCheck.h"
#include "comm/backend/mpi/RingAllreduce.h"
#include "models/core/Error.h"

namespace dptrain {

namespace {

constexpr int announce_tag = 7001;
// Float sums of at least this many bytes (and at least one element per rank) go round the ring.
constexpr int64_t ring_min_bytes = int64_t{256} << 10;

int checked_count(int64_t count) {
  if (count > INT_MAX) fail_internal("MPI collective of " + std::to_string(count) + " elements exceeds INT_MAX");
  return static_cast<int>(count);
}

// One all-reduce in flight: an MPI_Iallreduce (small buffers) or a ring (large ones).
class MpiRequest final : public CommRequest {
 public:
  explicit MpiRequest(MpiCommunicator& comm) : comm_(comm) {}
  MPI_Request request = MPI_REQUEST_NULL;
  RingAllreduce ring;
  uint64_t sequence = 0;
  void wait() override {
    if (ring.active()) comm_.wait(ring, sequence);
    if (request != MPI_REQUEST_NULL) comm_.wait(request, sequence);
  }
  bool test() override {
    if (ring.active()) return ring.advance();
    int flag = 1;
    if (request != MPI_REQUEST_NULL) MPI_Test(&request, &flag, MPI_STATUS_IGNORE);
    return flag != 0;
  }

 private:
  MpiCommunicator& comm_;
};

}  // namespace

MpiCommunicator::MpiCommunicator(double timeout_s) : timeout_s_(timeout_s) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      throw Error(ErrorKind::peer, "MPI_Init_thread failed");
    owns_init_ = true;
  }
  MPI_Comm_dup(MPI_COMM_WORLD, &world_);
  MPI_Comm_set_errhandler(world_, MPI_ERRORS_RETURN);
  MPI_Comm_dup(MPI_COMM_WORLD, &watch_);
  MPI_Comm_set_errhandler(watch_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(world_, &rank_);
  MPI_Comm_size(world_, &size_);
  MPI_Comm local;
  DPT_MPI(MPI_Comm_split_type(world_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local));
  MPI_Comm_rank(local, &local_rank_);
  MPI_Comm_size(local, &local_size_);
  MPI_Comm_free(&local);
  set_error_rank(rank_);
  // Every rank's host name, for the watchdog's messages once ranks run on several machines.
  constexpr int host_bytes = 64;
  char mine[host_bytes] = {};
  ::gethostname(mine, host_bytes - 1);
  std::vector<char> all(static_cast<size_t>(size_) * host_bytes);
  DPT_MPI(MPI_Allgather(mine, host_bytes, MPI_CHAR, all.data(), host_bytes, MPI_CHAR, world_));
  for (int r = 0; r < size_; ++r) hosts_.emplace_back(all.data() + static_cast<size_t>(r) * host_bytes);
  seen_.assign(static_cast<size_t>(size_), 0);
  seen_step_.assign(static_cast<size_t>(size_), -1);
  outbox_.assign(static_cast<size_t>(2 * size_), 0);
  out_requests_.assign(static_cast<size_t>(size_), MPI_REQUEST_NULL);
}

MpiCommunicator::~MpiCommunicator() {
  for (auto& r : out_requests_)
    if (r != MPI_REQUEST_NULL) {
      MPI_Cancel(&r);
      MPI_Request_free(&r);
    }
  drain_announcements();
  if (watch_ != MPI_COMM_NULL) MPI_Comm_free(&watch_);
  if (world_ != MPI_COMM_NULL) MPI_Comm_free(&world_);
  if (owns_init_) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
}

void MpiCommunicator::drain_announcements() {
  while (true) {
    int flag = 0;
    MPI_Status status;
    MPI_Iprobe(MPI_ANY_SOURCE, announce_tag, watch_, &flag, &status);
    if (!flag) return;
    uint64_t msg[2];
    MPI_Recv(msg, 2, MPI_UINT64_T, status.MPI_SOURCE, announce_tag, watch_, MPI_STATUS_IGNORE);
    seen_[static_cast<size_t>(status.MPI_SOURCE)] = msg[0];
    seen_step_[static_cast<size_t>(status.MPI_SOURCE)] = static_cast<int64_t>(msg[1]);
  }
}

uint64_t MpiCommunicator::enter() {
  ++sequence_;
  seen_[static_cast<size_t>(rank_)] = sequence_;
  seen_step_[static_cast<size_t>(rank_)] = step();
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    MPI_Request& req = out_requests_[static_cast<size_t>(r)];
    int done = 1;
    if (req != MPI_REQUEST_NULL) MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (!done) continue;  // the peer is not receiving; it will look behind, which it is
    uint64_t* msg = &outbox_[static_cast<size_t>(2 * r)];
    msg[0] = sequence_;
    msg[1] = static_cast<uint64_t>(step());
    MPI_Isend(msg, 2, MPI_UINT64_T, r, announce_tag, watch_, &req);
  }
  drain_announcements();
  return sequence_;
}

void MpiCommunicator::wait(MPI_Request& request, uint64_t sequence) {
  poll_until(
      [&] {
        int flag = 0;
        DPT_MPI(MPI_Test(&request, &flag, MPI_STATUS_IGNORE));
        return flag != 0;
      },
      sequence);
}

void MpiCommunicator::wait(RingAllreduce& ring, uint64_t sequence) {
  poll_until([&] { return ring.advance(); }, sequence);
}

template <typename Done>
void MpiCommunicator::poll_until(Done done, uint64_t sequence) {
  if (done()) return;
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::duration<double>(timeout_s_);
  for (int spins = 0;; ++spins) {
    if (done()) return;
    auto now = std::chrono::steady_clock::now();
    if (now > deadline) timed_out(sequence);
    // Spin (yielding) for the first few milliseconds: MPI moves a large message only inside MPI
    // calls, so a sleeping rank delays its peer too; then back off so that oversubscribed ranks
    // leave the core to their peers.
    if (now - start < std::chrono::milliseconds(5))
      sched_yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(spins < 2000 ? 20 : 500));
  }
}

std::string MpiCommunicator::missing_ranks(uint64_t sequence) {
  drain_announcements();
  std::string missing;
  for (int r = 0; r < size_; ++r) {
    if (seen_[static_cast<size_t>(r)] >= sequence) continue;
    missing += (missing.empty() ? "" : ", ") + std::to_string(r);
    if (std::count(hosts_.begin(), hosts_.end(), hosts_[0]) != size_)
      missing += " on " + hosts_[static_cast<size_t>(r)];
    int64_t s = seen_step_[static_cast<size_t>(r)];
    missing += s >= 0 ? " (last seen at step " + std::to_string(s) + ")" : " (not seen since start-up)";
  }
  if (missing.empty()) return missing;
  return "rank" + std::string(missing.find(',') == std::string::npos ? " " : "s ") + missing;
}

void MpiCommunicator::timed_out(uint64_t sequence) {
  std::string missing = missing_ranks(sequence);
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.1f", timeout_s_);
  std::string msg = std::string(operation()) + (step() >= 0 ? " at step " + std::to_string(step()) : "") +
                    " did not finish within comm.timeout_s = " + secs + " s; ";
  msg += missing.empty() ? "every rank arrived, so the transport itself is stuck" : missing + " did not arrive";
  throw Error(ErrorKind::peer, msg);
}

void MpiCommunicator::allreduce_sum(float* data, int64_t count) {
  if (!sync_request_) sync_request_ = make_request();
  allreduce_sum_async(data, count, *sync_request_);
  sync_request_->wait();
}

void MpiCommunicator::allreduce_sum(double* data, int64_t count) {
  uint64_t seq = enter();
  MPI_Request req;
  DPT_MPI(MPI_Iallreduce(MPI_IN_PLACE, data, checked_count(count), MPI_DOUBLE, MPI_SUM, world_, &req));
  wait(req, seq);
}

void MpiCommunicator::allreduce_max(double* data, int64_t count) {
  uint64_t seq = enter();
  MPI_Request req;
  DPT_MPI(MPI_Iallreduce(MPI_IN_PLACE, data, checked_count(count), MPI_DOUBLE, MPI_MAX, world_, &req));
  wait(req, seq);
}

std::unique_ptr<CommRequest> MpiCommunicator::make_request() { return std::make_unique<MpiRequest>(*this); }

void MpiCommunicator::allreduce_sum_async(float* data, int64_t count, CommRequest& request) {
  auto& r = static_cast<MpiRequest&>(request);
  DPT_ASSERT(r.request == MPI_REQUEST_NULL && !r.ring.active(), "all-reduce started on a request still in flight");
  r.sequence = enter();
  if (size_ > 1 && count >= size_ && count * static_cast<int64_t>(sizeof(float)) >= ring_min_bytes) {
    checked_count(count);
    // Every rank enters collectives in the same order, so the sequence number tells concurrent
    // rings apart on every rank alike.
    r.ring.start(data, count, world_, 1 + static_cast<int>(r.sequence % 30000));
    return;
  }
  DPT_MPI(MPI_Iallreduce(MPI_IN_PLACE, data, checked_count(count), MPI_FLOAT, MPI_SUM, world_, &r.request));
}

void MpiCommunicator::broadcast(void* data, size_t bytes, int root) {
  uint64_t seq = enter();
  MPI_Request req;
  DPT_MPI(MPI_Ibcast(data, checked_count(static_cast<int64_t>(bytes)), MPI_BYTE, root, world_, &req));
  wait(req, seq);
}

void MpiCommunicator::allgather(const void* send, size_t bytes, void* recv) {
  uint64_t seq = enter();
  MPI_Request req;
  int n = checked_count(static_cast<int64_t>(bytes));
  DPT_MPI(MPI_Iallgather(send, n, MPI_BYTE, recv, n, MPI_BYTE, world_, &req));
  wait(req, seq);
}

void MpiCommunicator::barrier() {
  uint64_t seq = enter();
  MPI_Request req;
  DPT_MPI(MPI_Ibarrier(world_, &req));
  wait(req, seq);
}

void MpiCommunicator::abort(int exit_code) {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, exit_code);
}

bool mpi_backend_compiled() { return true; }
std::unique_ptr<Communicator> make_mpi_communicator(double timeout_s) {
  return std::make_unique<MpiCommunicator>(timeout_s);
}

}  // namespace dptrain
