#include "comm/backend/gloo/GlooCommunicator.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <unistd.h>

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/common/error.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>
#include <gloo/transport/unbound_buffer.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "comm/backend/BackendRegistry.h"
#include "comm/control/Rendezvous.h"
#include "models/core/Error.h"
#include "models/core/Hash.h"

namespace dptrain {

// Gloo calls that throw become failures of the collective in flight; this names the call.
#define DPT_GLOO(call)                     \
  do {                                     \
    try {                                  \
      call;                                \
    } catch (const ::gloo::Exception& e) { \
      throw GlooFailure(e.what());         \
    }                                      \
  } while (0)

namespace {

struct GlooFailure {
  std::string what;
};

// Gloo's rendezvous store, kept in rank 0's table (comm/control/Rendezvous.h).
class RendezvousStore final : public ::gloo::rendezvous::Store {
 public:
  RendezvousStore(RendezvousClient& client, double timeout_s) : client_(client), timeout_s_(timeout_s) {}
  void set(const std::string& key, const std::vector<char>& data) override { client_.set(key, data); }
  std::vector<char> get(const std::string& key) override { return client_.get(key, timeout_s_); }
  void wait(const std::vector<std::string>& keys) override {
    for (const auto& k : keys) client_.get(k, timeout_s_);
  }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override {
    for (const auto& k : keys) client_.get(k, std::chrono::duration<double>(timeout).count());
  }

 private:
  RendezvousClient& client_;
  double timeout_s_;
};

// The numeric IPv4 address `host` resolves to, or bad input naming the variable.
std::string resolve(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || !found)
    fail_input("MASTER_ADDR (rank 0's address) '" + host + "' does not resolve to an IPv4 address");
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(found->ai_addr)->sin_addr, text, sizeof text);
  freeaddrinfo(found);
  return text;
}

}  // namespace

class GlooRequest final : public CommRequest {
 public:
  explicit GlooRequest(GlooCommunicator& comm) : comm_(comm) {}
  void wait() override { comm_.wait(*this); }
  bool test() override { return !pending.load(std::memory_order_acquire); }
  std::atomic<bool> pending{false};
  std::string error;  // set with pending cleared, under the communicator's lock

 private:
  GlooCommunicator& comm_;
};

namespace {
constexpr size_t queue_capacity = 256;
// Float sums of at least this many bytes (and one element per rank) go round ring_sum.
constexpr int64_t ring_min_bytes = int64_t{256} << 10;
}  // namespace

GlooCommunicator::GlooCommunicator(const RankEnvironment& env, double timeout_s)
    : rank_(env.rank), size_(env.world), timeout_s_(timeout_s) {
  set_error_rank(rank_);
  const std::string address = resolve(env.rendezvous_host);
  const bool loopback = address.rfind("127.", 0) == 0;
  if (rank_ == 0) server_ = std::make_unique<RendezvousServer>(address, env.rendezvous_port, env.token, size_);
  // Ranks may start a while apart (a batch system's nodes): wait for rank 0 as for a collective.
  client_ = std::make_unique<RendezvousClient>(address, env.rendezvous_port, env.token, rank_, size_, timeout_s_);

  // Gloo listens on this host's address on the rendezvous' network (GLOO_SOCKET_IFNAME, as for
  // PyTorch, names an interface instead).
  ::gloo::transport::tcp::attr attr;
  if (const char* iface = std::getenv("GLOO_SOCKET_IFNAME"); iface && *iface) {
    attr.iface = iface;
  } else if (loopback) {
    attr.hostname = "127.0.0.1";
  } else {
    char name[256] = {};
    ::gethostname(name, sizeof name - 1);
    attr.hostname = name;
  }
  try {
    device_ = ::gloo::transport::tcp::CreateDevice(attr);
    auto context = std::make_shared<::gloo::rendezvous::Context>(rank_, size_);
    context->setTimeout(std::chrono::milliseconds(static_cast<int64_t>(timeout_s_ * 1000)));
    RendezvousStore store(*client_, timeout_s_);
    context->connectFullMesh(store, device_);
    context_ = context;
  } catch (const ::gloo::Exception& e) {
    throw Error(ErrorKind::peer, std::string("gloo: connecting the ranks through the rendezvous at ") +
                                     client_->where() + " failed: " + e.what());
  }
  sync_ = std::make_unique<GlooRequest>(*this);
  queue_.resize(queue_capacity);
  worker_ = std::thread([this] { work_loop(); });
  reporter_ = std::thread([this] { report_loop(); });

  // Ranks per host: given by the launcher, else counted from every rank's host name.
  uint64_t mine = stable_hash(std::to_string(gethostid()) + "/" + [] {
    char name[256] = {};
    ::gethostname(name, sizeof name - 1);
    return std::string(name);
  }());
  std::vector<uint64_t> hosts(static_cast<size_t>(size_));
  set_operation("host name exchange", -1);
  allgather(&mine, sizeof mine, hosts.data());
  local_rank_ = local_size_ = 0;
  for (int r = 0; r < size_; ++r) {
    if (hosts[static_cast<size_t>(r)] != mine) continue;
    if (r < rank_) ++local_rank_;
    ++local_size_;
  }
  if (env.local_rank >= 0) local_rank_ = env.local_rank;
  if (env.local_size > 0) local_size_ = env.local_size;
}

GlooCommunicator::~GlooCommunicator() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
  }
  cv_.notify_all();
  report_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  if (reporter_.joinable()) reporter_.join();
  incoming_buffer_.reset();
  unbound_.clear();
  context_.reset();
  device_.reset();
  client_.reset();
  server_.reset();
}

void GlooCommunicator::submit(Op op, GlooRequest& request) {
  op.sequence = ++sequence_;
  op.step = step();
  op.what = operation();
  op.request = &request;
  std::unique_lock<std::mutex> lock(mu_);
  DPT_ASSERT(!request.pending.load(), "collective started on a request still in flight");
  // A full queue (never in training: a step has a few dozen buckets) waits for room.
  done_cv_.wait(lock, [&] { return tail_ - head_ < queue_capacity; });
  request.error.clear();
  request.pending.store(true, std::memory_order_release);
  queue_[tail_++ % queue_capacity] = op;
  cv_.notify_one();
}

void GlooCommunicator::wait(GlooRequest& request) {
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] { return !request.pending.load(std::memory_order_acquire); });
  if (!request.error.empty()) throw Error(ErrorKind::peer, request.error);
}

void GlooCommunicator::run_blocking(Op op) {
  submit(op, *sync_);
  wait(*sync_);
}

void GlooCommunicator::work_loop() {
  while (true) {
    Op op;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return closing_ || head_ != tail_; });
      if (head_ == tail_) return;
      op = queue_[head_ % queue_capacity];
    }
    entered_step_.store(op.step, std::memory_order_relaxed);
    entered_.store(op.sequence, std::memory_order_relaxed);
    std::string error;
    if (broken_.empty()) {
      try {
        execute(op);
      } catch (const GlooFailure& f) {
        error = diagnose(op, f.what);
      }
    } else {
      error = broken_;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (!error.empty() && broken_.empty()) broken_ = error;
    op.request->error = error;
    op.request->pending.store(false, std::memory_order_release);
    ++head_;
    done_cv_.notify_all();
  }
}

void GlooCommunicator::execute(const Op& op) {
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s_ * 1000));
  const uint32_t tag = static_cast<uint32_t>(op.sequence % (1u << 30));
  if (op.kind == Op::sum_float && size_ > 1 && op.count >= size_ &&
      op.count * static_cast<int64_t>(sizeof(float)) >= ring_min_bytes)
    return ring_sum(static_cast<float*>(op.data), op.count, op.sequence);
  switch (op.kind) {
    case Op::sum_float:
    case Op::sum_double:
    case Op::max_double: {
      ::gloo::AllreduceOptions o(context_);
      if (op.kind == Op::sum_float) {
        o.setOutput(static_cast<float*>(op.data), static_cast<size_t>(op.count));
        o.setReduceFunction(static_cast<void (*)(void*, const void*, const void*, size_t)>(&::gloo::sum<float>));
      } else {
        o.setOutput(static_cast<double*>(op.data), static_cast<size_t>(op.count));
        if (op.kind == Op::sum_double)
          o.setReduceFunction(static_cast<void (*)(void*, const void*, const void*, size_t)>(&::gloo::sum<double>));
        else
          o.setReduceFunction(static_cast<void (*)(void*, const void*, const void*, size_t)>(&::gloo::max<double>));
      }
      o.setAlgorithm(::gloo::AllreduceOptions::Algorithm::RING);
      // Smaller float sums and the doubles: Gloo's ring, each rank's share in one piece (1-16 MB;
      // over loopback TCP faster than its 1 MB segments).
      const size_t bytes = static_cast<size_t>(op.count) * (op.kind == Op::sum_float ? 4 : 8);
      o.setMaxSegmentSize(std::clamp(bytes / static_cast<size_t>(size_), size_t{1} << 20, size_t{16} << 20));
      o.setTag(tag);
      o.setTimeout(timeout);
      DPT_GLOO(::gloo::allreduce(o));
      return;
    }
    case Op::broadcast: {
      ::gloo::BroadcastOptions o(context_);
      o.setOutput(static_cast<uint8_t*>(op.data), static_cast<size_t>(op.count));
      o.setRoot(op.root);
      o.setTag(tag);
      o.setTimeout(timeout);
      DPT_GLOO(::gloo::broadcast(o));
      return;
    }
    case Op::allgather: {
      ::gloo::AllgatherOptions o(context_);
      o.setInput(const_cast<uint8_t*>(static_cast<const uint8_t*>(op.send)), static_cast<size_t>(op.count));
      o.setOutput(static_cast<uint8_t*>(op.data), static_cast<size_t>(op.count) * static_cast<size_t>(size_));
      o.setTag(tag);
      o.setTimeout(timeout);
      DPT_GLOO(::gloo::allgather(o));
      return;
    }
    case Op::barrier: {
      ::gloo::BarrierOptions o(context_);
      o.setTag(tag);
      o.setTimeout(timeout);
      DPT_GLOO(::gloo::barrier(o));
      return;
    }
  }
}

// The MPI backend's ring (comm/backend/mpi/RingAllreduce.cpp), step for step and segment for
// segment, over Gloo's point-to-point buffers: reduce-scatter (send segment r - s to the right,
// receive segment r - s - 1 from the left and add it to ours), then allgather (send the final
// segment r + 1 - t, receive segment r - t straight into place). Same sums in the same order as
// over MPI, so the two backends give the same bits.
void GlooCommunicator::ring_sum(float* data, int64_t count, uint64_t sequence) {
  const int n = size_, r = rank_, right = (r + 1) % n, left = (r + n - 1) % n;
  auto segment = [&](int index) {
    const int k = ((index % n) + n) % n;
    return std::pair<int64_t, int64_t>{count * k / n, count * (k + 1) / n};
  };
  const size_t largest = static_cast<size_t>((count + n - 1) / n);
  if (incoming_.size() < largest) {  // grows once
    incoming_.resize(largest);
    incoming_buffer_.reset();
  }
  if (!incoming_buffer_) incoming_buffer_ = context_->createUnboundBuffer(incoming_.data(), largest * sizeof(float));
  ::gloo::transport::UnboundBuffer& in = *incoming_buffer_;
  ::gloo::transport::UnboundBuffer& buf = unbound(data, static_cast<size_t>(count) * sizeof(float));
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s_ * 1000));
  constexpr size_t f = sizeof(float);
  for (int step = 0; step < 2 * (n - 1); ++step) {
    const bool scatter = step < n - 1;
    const int t = scatter ? step : step - (n - 1);
    const auto [s0, s1] = segment(scatter ? r - t : r + 1 - t);
    const auto [r0, r1] = segment(scatter ? r - t - 1 : r - t);
    const uint64_t slot = (sequence << 16) | static_cast<uint64_t>(step);
    DPT_GLOO(buf.send(right, slot, static_cast<size_t>(s0) * f, static_cast<size_t>(s1 - s0) * f));
    if (scatter)
      DPT_GLOO(in.recv(left, slot, 0, static_cast<size_t>(r1 - r0) * f));
    else
      DPT_GLOO(buf.recv(left, slot, static_cast<size_t>(r0) * f, static_cast<size_t>(r1 - r0) * f));
    DPT_GLOO((scatter ? in : buf).waitRecv(timeout));
    DPT_GLOO(buf.waitSend(timeout));
    if (scatter) {
      float* out = data + r0;
      const float* add = incoming_.data();
      for (int64_t i = 0, m = r1 - r0; i < m; ++i) out[i] += add[i];
    }
  }
}

// Gloo's registration of a buffer, made once per buffer (the gradient buckets stay put).
::gloo::transport::UnboundBuffer& GlooCommunicator::unbound(float* data, size_t bytes) {
  for (auto& b : unbound_)
    if (b->ptr == data && b->size == bytes) return *b;
  if (unbound_.size() >= 64) unbound_.erase(unbound_.begin());
  unbound_.push_back(context_->createUnboundBuffer(data, bytes));
  return *unbound_.back();
}

// Which ranks are gone (their rendezvous connection closed) or behind (their last reported
// collective is an earlier one); the rendezvous sees a dead process's connection close at once,
// but give it a moment.
std::string GlooCommunicator::diagnose(const Op& op, const std::string& cause) {
  std::string head = std::string(op.what) + (op.step >= 0 ? " at step " + std::to_string(op.step) : "");
  std::vector<std::string> missing;
  try {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    std::vector<std::string> behind;
    while (true) {
      std::vector<PeerState> peers = client_->peers(5.0);
      missing.clear();
      behind.clear();
      // Hosts are named once the ranks run on more than one (as the MPI backend's watchdog does).
      const bool hosts_differ =
          std::any_of(peers.begin(), peers.end(), [&](const PeerState& p) { return p.host != peers[0].host; });
      for (int r = 0; r < static_cast<int>(peers.size()); ++r) {
        const PeerState& p = peers[static_cast<size_t>(r)];
        const std::string at = p.step >= 0 ? "last seen at step " + std::to_string(p.step) : "not seen since start-up";
        const std::string who = std::to_string(r) + (hosts_differ ? " on " + p.host : "");
        if (!p.connected)
          missing.push_back(who + " (gone; " + at + ")");
        else if (r != rank_ && p.sequence < op.sequence)
          behind.push_back(who + " (" + at + ")");
      }
      if (!missing.empty() || std::chrono::steady_clock::now() > until) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (missing.empty()) missing = behind;
  } catch (const Error&) {
    missing = {"0 (gone: it serves the rendezvous at " + client_->where() + ", which no longer answers)"};
  }
  std::string msg = head + " failed over gloo: " + cause + "; ";
  if (missing.empty()) return msg + "every rank is connected and arrived, so the transport itself failed";
  msg += missing.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < missing.size(); ++i) msg += (i ? ", " : "") + missing[i];
  return msg + " did not arrive";
}

void GlooCommunicator::report_loop() {
  uint64_t sent = 0;
  std::unique_lock<std::mutex> lock(mu_);
  while (!closing_) {
    report_cv_.wait_for(lock, std::chrono::milliseconds(200));
    uint64_t now = entered_.load(std::memory_order_relaxed);
    if (now == sent || closing_) continue;
    lock.unlock();
    try {
      client_->report(now, entered_step_.load(std::memory_order_relaxed));
      sent = now;
    } catch (const Error&) {
      lock.lock();
      return;  // the rendezvous is gone: rank 0 ended; collectives report it if it matters
    }
    lock.lock();
  }
}

void GlooCommunicator::allreduce_sum(float* data, int64_t count) {
  run_blocking({.kind = Op::sum_float, .data = data, .count = count});
}
void GlooCommunicator::allreduce_sum(double* data, int64_t count) {
  run_blocking({.kind = Op::sum_double, .data = data, .count = count});
}
void GlooCommunicator::allreduce_max(double* data, int64_t count) {
  run_blocking({.kind = Op::max_double, .data = data, .count = count});
}
std::unique_ptr<CommRequest> GlooCommunicator::make_request() { return std::make_unique<GlooRequest>(*this); }
void GlooCommunicator::allreduce_sum_async(float* data, int64_t count, CommRequest& request) {
  submit({.kind = Op::sum_float, .data = data, .count = count}, static_cast<GlooRequest&>(request));
}
void GlooCommunicator::broadcast(void* data, size_t bytes, int root) {
  run_blocking({.kind = Op::broadcast, .data = data, .count = static_cast<int64_t>(bytes), .root = root});
}
void GlooCommunicator::allgather(const void* send, size_t bytes, void* recv) {
  run_blocking({.kind = Op::allgather, .data = recv, .send = send, .count = static_cast<int64_t>(bytes)});
}
void GlooCommunicator::barrier() { run_blocking({.kind = Op::barrier}); }

void GlooCommunicator::abort(int exit_code) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(exit_code);
}

bool gloo_backend_compiled() { return true; }
std::unique_ptr<Communicator> make_gloo_communicator(const RankEnvironment& env, double timeout_s) {
  return std::make_unique<GlooCommunicator>(env, timeout_s);
}

}  // namespace dptrain
