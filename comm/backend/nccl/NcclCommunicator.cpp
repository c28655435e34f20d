#include "comm/backend/nccl/NcclCommunicator.h"

#include <sched.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "models/core/Error.h"
#include "models/kernels/cuda/CudaBackend.h"

// CUDA runtime calls of this backend: failures are internal errors carrying file:line and CUDA's message.
#define DPT_CUDART(call)                                                                                      \
  do {                                                                                                        \
    cudaError_t dpt_cuda_rc = (call);                                                                         \
    if (dpt_cuda_rc != cudaSuccess)                                                                           \
      ::dptrain::fail_internal(::dptrain::error_origin(__FILE__, __LINE__) + #call ": " +                     \
                               cudaGetErrorName(dpt_cuda_rc) + " (" + cudaGetErrorString(dpt_cuda_rc) + ")"); \
  } while (0)

namespace dptrain {

cudaStream_t nccl_compute_stream() {
  void* stream = cuda_compute_stream();
  return stream ? static_cast<cudaStream_t>(stream) : cudaStreamLegacy;
}

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

// The local rank as the launcher states it, for a process started without the MPI bootstrap.
int local_rank_from_environment() {
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "LOCAL_RANK", "MPI_LOCALRANKID"}) {
    int v = env_int(var, -1);
    if (v >= 0) return v;
  }
  return 0;
}

std::string nccl_message(ncclResult_t r) {
  std::string msg = ncclGetErrorString(r);
  const char* last = ncclGetLastError(nullptr);
  if (last && *last) msg += ": " + std::string(last);
  return msg;
}

size_t type_bytes(ncclDataType_t t) { return t == ncclDouble ? 8 : t == ncclFloat ? 4 : 1; }

}  // namespace

// A non-blocking all-reduce: completion is an event recorded on NCCL's stream. A host buffer is
// staged through the request's own device and pinned memory (the step's control lane).
class NcclCommunicator::Request final : public CommRequest {
 public:
  explicit Request(NcclCommunicator& comm) : comm_(comm) {
    DPT_CUDART(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  }
  ~Request() override {
    if (device_) cudaFree(device_);
    if (pinned_) cudaFreeHost(pinned_);
    if (done) cudaEventDestroy(done);
  }
  void wait() override {
    if (!active) return;
    comm_.wait_event(done, sequence);
    complete();
  }
  bool test() override {
    if (!active) return true;
    if (cudaEventQuery(done) != cudaSuccess) return false;  // not ready, or an error wait() reports
    complete();
    return true;
  }
  // Staging memory for a host buffer of `bytes` (grown on demand, so a step reuses it).
  void stage(size_t bytes) {
    if (bytes > capacity_) {
      if (device_) cudaFree(device_);
      if (pinned_) cudaFreeHost(pinned_);
      device_ = pinned_ = nullptr;
      DPT_CUDART(cudaMalloc(&device_, bytes));
      DPT_CUDART(cudaMallocHost(&pinned_, bytes));
      capacity_ = bytes;
    }
  }
  void complete() {
    if (host_target) std::memcpy(host_target, pinned_, host_bytes);
    active = false;
  }

  cudaEvent_t done = nullptr;
  uint64_t sequence = 0;
  bool active = false;
  void* host_target = nullptr;  // where the result goes when the caller's buffer is host memory
  size_t host_bytes = 0;
  const void* checked = nullptr;  // the last buffer looked up, and whether it was device memory
  bool checked_on_device = false;
  void* device_ = nullptr;
  void* pinned_ = nullptr;

 private:
  NcclCommunicator& comm_;
  size_t capacity_ = 0;
};

NcclCommunicator::NcclCommunicator(double timeout_s) : timeout_s_(timeout_s) {
  RankEnvironment env;
  if (launched_by_mpi()) {
    if (!mpi_backend_compiled())
      fail_input(
          "comm.backend = \"nccl\" with several ranks shares NCCL's unique id over MPI, and this dptrain was "
          "built without MPI; start one rank, or use a build with MPI");
    bootstrap_ = make_mpi_communicator(timeout_s);
    watch_ = dynamic_cast<CollectiveWatch*>(bootstrap_.get());
  } else if (read_rank_environment(env)) {
    // Started by torchrun's or SLURM's variables: the unique id travels over Gloo.
    bootstrap_ = make_gloo_communicator(env, timeout_s);
  }
  if (bootstrap_) {
    rank_ = bootstrap_->rank();
    size_ = bootstrap_->size();
    local_rank_ = bootstrap_->local_rank();
    local_size_ = bootstrap_->local_size();
  } else {
    local_rank_ = local_rank_from_environment();
  }

  const int devices = cuda_devices();
  if (devices <= 0)
    fail_input(cuda_compiled() ? "comm.backend = \"nccl\" needs a CUDA device, and none is visible on this machine"
                               : "comm.backend = \"nccl\" but this dptrain was built without CUDA");
  if (local_size_ > devices)
    fail_input("comm.backend = \"nccl\": " + std::to_string(local_size_) + " ranks on this node but " +
               std::to_string(devices) + " visible GPU" + (devices > 1 ? "s" : "") +
               "; NCCL needs one GPU per rank (start fewer ranks, or use comm.backend = \"mpi\")");
  device_ = cuda_device_for_local_rank(local_rank_);
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess || current != device_) cuda_set_device(device_);
  DPT_CUDART(cudaSetDevice(device_));

  DPT_CUDART(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  DPT_CUDART(cudaEventCreateWithFlags(&compute_ready_, cudaEventDisableTiming));
  DPT_CUDART(cudaEventCreateWithFlags(&sync_done_, cudaEventDisableTiming));

  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  if (rank_ == 0) {
    ncclResult_t r = ncclGetUniqueId(&id);
    if (r != ncclSuccess) failed("ncclGetUniqueId failed: " + nccl_message(r));
  }
  if (bootstrap_) {
    bootstrap_->set_operation("NCCL unique id broadcast", -1);
    bootstrap_->broadcast(&id, sizeof id, 0);
  }
  // A non-blocking communicator, so that start-up itself is polled against the deadline.
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  set_operation("NCCL communicator start-up", -1);
  uint64_t seq = enter();
  settle(ncclCommInitRankConfig(&comm_, size_, id, rank_, &config), "ncclCommInitRankConfig", seq);
}

NcclCommunicator::~NcclCommunicator() {
  if (comm_ && !aborted_) {
    // A clean shutdown flushes outstanding work with every peer; if that fails, abort instead.
    bool clean = cudaStreamSynchronize(stream_) == cudaSuccess;
    if (clean) {
      ncclResult_t r = ncclCommFinalize(comm_);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s_);
      while (r == ncclInProgress && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
        ncclCommGetAsyncError(comm_, &r);
      }
      clean = r == ncclSuccess;
    }
    if (clean)
      ncclCommDestroy(comm_);
    else
      ncclCommAbort(comm_);
  }
  if (scratch_) cudaFree(scratch_);
  if (sync_done_) cudaEventDestroy(sync_done_);
  if (compute_ready_) cudaEventDestroy(compute_ready_);
  if (stream_) cudaStreamDestroy(stream_);
  bootstrap_.reset();  // MPI last: NCCL's shutdown may still use its sockets
}

uint64_t NcclCommunicator::enter() {
  if (aborted_)
    throw Error(ErrorKind::peer,
                std::string(operation()) + ": the NCCL communicator was aborted after an earlier failure on this rank");
  if (!watch_) return ++sequence_;
  bootstrap_->set_operation(operation(), step());
  return sequence_ = watch_->enter();
}

void NcclCommunicator::kill_comm() {
  if (comm_ && !aborted_) ncclCommAbort(comm_);
  aborted_ = true;
}

void NcclCommunicator::failed(const std::string& what) {
  kill_comm();
  throw Error(ErrorKind::peer, what);
}

void NcclCommunicator::check_async(uint64_t sequence) {
  if (!comm_) return;
  ncclResult_t r = ncclSuccess;
  ncclResult_t q = ncclCommGetAsyncError(comm_, &r);
  if (q != ncclSuccess) r = q;
  if (r == ncclSuccess || r == ncclInProgress) return;
  failed(std::string(operation()) + (step() >= 0 ? " at step " + std::to_string(step()) : "") +
         " failed in NCCL: " + nccl_message(r));
}

void NcclCommunicator::timed_out(uint64_t sequence) {
  kill_comm();
  const std::string missing = watch_ ? watch_->missing_ranks(sequence) : std::string();
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.1f", timeout_s_);
  std::string msg = std::string(operation()) + (step() >= 0 ? " at step " + std::to_string(step()) : "") +
                    " did not finish within comm.timeout_s = " + secs + " s; ";
  msg += missing.empty() ? "every rank arrived, so NCCL itself is stuck" : missing + " did not arrive";
  throw Error(ErrorKind::peer, msg + " (NCCL communicator aborted)");
}

void NcclCommunicator::settle(ncclResult_t result, const char* call, uint64_t sequence) {
  if (result == ncclSuccess) return;
  if (result != ncclInProgress)
    failed(std::string(operation()) + (step() >= 0 ? " at step " + std::to_string(step()) : "") + ": " + call +
           " failed: " + nccl_message(result));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s_);
  for (int spins = 0;; ++spins) {
    ncclResult_t state = ncclSuccess;
    ncclCommGetAsyncError(comm_, &state);
    if (state == ncclSuccess) return;
    if (state != ncclInProgress) failed(std::string(operation()) + ": " + call + " failed: " + nccl_message(state));
    if (std::chrono::steady_clock::now() > deadline) timed_out(sequence);
    if (spins < 200)
      sched_yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(spins < 2000 ? 20 : 500));
  }
}

void NcclCommunicator::wait_event(cudaEvent_t done, uint64_t sequence) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s_);
  for (int spins = 0;; ++spins) {
    cudaError_t e = cudaEventQuery(done);
    if (e == cudaSuccess) return;
    if (e != cudaErrorNotReady) {
      check_async(sequence);  // NCCL's own message is the better one when it has one
      failed(std::string(operation()) + ": CUDA error while waiting for NCCL: " + cudaGetErrorName(e) + " (" +
             cudaGetErrorString(e) + ")");
    }
    check_async(sequence);
    if (std::chrono::steady_clock::now() > deadline) timed_out(sequence);
    // Spin briefly for latency, then back off and leave the core to the data loader.
    if (spins < 200)
      sched_yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(spins < 2000 ? 20 : 200));
  }
}

bool NcclCommunicator::on_device(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    (void)cudaGetLastError();  // older drivers: plain host memory is an error, not a type
    return false;
  }
  if (a.type != cudaMemoryTypeDevice && a.type != cudaMemoryTypeManaged) return false;
  if (a.type == cudaMemoryTypeDevice && a.device != device_)
    fail_internal("collective on memory of CUDA device " + std::to_string(a.device) + ", but this rank uses device " +
                  std::to_string(device_));
  return true;
}

void* NcclCommunicator::scratch(size_t bytes) {
  if (bytes > scratch_bytes_) {
    if (scratch_) cudaFree(scratch_);
    scratch_ = nullptr;
    DPT_CUDART(cudaMalloc(&scratch_, bytes));
    scratch_bytes_ = bytes;
  }
  return scratch_;
}

void NcclCommunicator::enqueue_reduce(void* data, int64_t count, ncclDataType_t type, ncclRedOp_t op,
                                      uint64_t sequence) {
  // NCCL's stream waits (on the device) for what compute has queued so far: the bucket's gradients.
  DPT_CUDART(cudaEventRecord(compute_ready_, nccl_compute_stream()));
  DPT_CUDART(cudaStreamWaitEvent(stream_, compute_ready_, 0));
  settle(ncclAllReduce(data, data, static_cast<size_t>(count), type, op, comm_, stream_), "ncclAllReduce", sequence);
}

void NcclCommunicator::reduce(void* data, int64_t count, ncclDataType_t type, ncclRedOp_t op) {
  uint64_t seq = enter();
  if (count <= 0) return;
  const size_t bytes = static_cast<size_t>(count) * type_bytes(type);
  if (on_device(data)) {
    enqueue_reduce(data, count, type, op, seq);
  } else {
    void* dev = scratch(bytes);
    DPT_CUDART(cudaMemcpyAsync(dev, data, bytes, cudaMemcpyHostToDevice, stream_));
    settle(ncclAllReduce(dev, dev, static_cast<size_t>(count), type, op, comm_, stream_), "ncclAllReduce", seq);
    DPT_CUDART(cudaMemcpyAsync(data, dev, bytes, cudaMemcpyDeviceToHost, stream_));
  }
  DPT_CUDART(cudaEventRecord(sync_done_, stream_));
  wait_event(sync_done_, seq);
}

void NcclCommunicator::allreduce_sum(float* data, int64_t count) { reduce(data, count, ncclFloat, ncclSum); }
void NcclCommunicator::allreduce_sum(double* data, int64_t count) { reduce(data, count, ncclDouble, ncclSum); }
void NcclCommunicator::allreduce_max(double* data, int64_t count) { reduce(data, count, ncclDouble, ncclMax); }

std::unique_ptr<CommRequest> NcclCommunicator::make_request() { return std::make_unique<Request>(*this); }

void NcclCommunicator::allreduce_sum_async(float* data, int64_t count, CommRequest& request) {
  auto& r = static_cast<Request&>(request);
  DPT_ASSERT(!r.active, "all-reduce started on a request still in flight");
  r.sequence = enter();
  if (data != r.checked) {  // a request is reused on the same buffer step after step
    r.checked = data;
    r.checked_on_device = on_device(data);
  }
  r.host_target = nullptr;
  if (r.checked_on_device) {
    enqueue_reduce(data, count, ncclFloat, ncclSum, r.sequence);
  } else {
    const size_t bytes = static_cast<size_t>(count) * sizeof(float);
    r.stage(bytes);
    std::memcpy(r.pinned_, data, bytes);
    DPT_CUDART(cudaMemcpyAsync(r.device_, r.pinned_, bytes, cudaMemcpyHostToDevice, stream_));
    settle(ncclAllReduce(r.device_, r.device_, static_cast<size_t>(count), ncclFloat, ncclSum, comm_, stream_),
           "ncclAllReduce", r.sequence);
    DPT_CUDART(cudaMemcpyAsync(r.pinned_, r.device_, bytes, cudaMemcpyDeviceToHost, stream_));
    r.host_target = data;
    r.host_bytes = bytes;
  }
  DPT_CUDART(cudaEventRecord(r.done, stream_));
  r.active = true;
}

void NcclCommunicator::broadcast(void* data, size_t bytes, int root) {
  uint64_t seq = enter();
  if (bytes == 0) return;
  const bool device = on_device(data);
  void* buf = device ? data : scratch(bytes);
  if (device) {
    DPT_CUDART(cudaEventRecord(compute_ready_, nccl_compute_stream()));
    DPT_CUDART(cudaStreamWaitEvent(stream_, compute_ready_, 0));
  } else {
    DPT_CUDART(cudaMemcpyAsync(buf, data, bytes, cudaMemcpyHostToDevice, stream_));
  }
  settle(ncclBroadcast(buf, buf, bytes, ncclUint8, root, comm_, stream_), "ncclBroadcast", seq);
  if (!device) DPT_CUDART(cudaMemcpyAsync(data, buf, bytes, cudaMemcpyDeviceToHost, stream_));
  DPT_CUDART(cudaEventRecord(sync_done_, stream_));
  wait_event(sync_done_, seq);
}

void NcclCommunicator::allgather(const void* send, size_t bytes, void* recv) {
  uint64_t seq = enter();
  if (bytes == 0) return;
  const size_t total = bytes * static_cast<size_t>(size_);
  const bool device = on_device(send) && on_device(recv);
  char* buf = device ? static_cast<char*>(recv) : static_cast<char*>(scratch(total));
  const void* in = device ? send : buf + bytes * static_cast<size_t>(rank_);
  if (device) {
    DPT_CUDART(cudaEventRecord(compute_ready_, nccl_compute_stream()));
    DPT_CUDART(cudaStreamWaitEvent(stream_, compute_ready_, 0));
  } else {
    DPT_CUDART(cudaMemcpyAsync(const_cast<void*>(in), send, bytes, cudaMemcpyHostToDevice, stream_));
  }
  settle(ncclAllGather(in, buf, bytes, ncclUint8, comm_, stream_), "ncclAllGather", seq);
  if (!device) DPT_CUDART(cudaMemcpyAsync(recv, buf, total, cudaMemcpyDeviceToHost, stream_));
  DPT_CUDART(cudaEventRecord(sync_done_, stream_));
  wait_event(sync_done_, seq);
}

void NcclCommunicator::barrier() {
  // NCCL has no barrier: a one-element all-reduce is one.
  float* one = static_cast<float*>(scratch(sizeof(float)));
  uint64_t seq = enter();
  settle(ncclAllReduce(one, one, 1, ncclFloat, ncclSum, comm_, stream_), "ncclAllReduce", seq);
  DPT_CUDART(cudaEventRecord(sync_done_, stream_));
  wait_event(sync_done_, seq);
}

void NcclCommunicator::abort(int exit_code) {
  kill_comm();
  if (bootstrap_) bootstrap_->abort(exit_code);
}

bool nccl_backend_compiled() { return true; }
std::unique_ptr<Communicator> make_nccl_communicator(double timeout_s) {
  return std::make_unique<NcclCommunicator>(timeout_s);
}

}  // namespace dptrain
