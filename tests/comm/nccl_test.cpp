// The NCCL backend on one rank: every collective over device and host buffers (host ones are staged
// through device memory, so with one rank the values must come back unchanged, bit for bit), the
// event-backed requests, and the gradient reducer on a device buffer. Tagged [cuda]: skipped with a
// message without a GPU or NCCL. The error paths that need no GPU run everywhere.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "comm/Communicator.h"
#include "comm/GradientReducer.h"
#include "comm/backend/BackendRegistry.h"
#include "models/core/Error.h"
#include "models/core/Tensor.h"
#include "models/kernels/KernelBackend.h"
#include "models/kernels/cuda/CudaBackend.h"

using namespace dptrain;

namespace {

bool nccl_usable() {
  if (!nccl_backend_compiled()) {
    WARN("built without NCCL: skipped");
    return false;
  }
  if (cuda_devices() == 0 || !cuda_available()) {
    WARN("no CUDA device: skipped");
    return false;
  }
  return true;
}

Tensor on_device(const std::vector<float>& v) {
  Tensor t = Tensor::zeros({static_cast<int64_t>(v.size())}, Device::cuda);
  copy_memory(t.data(), Device::cuda, v.data(), Device::cpu, v.size() * sizeof(float));
  return t;
}

std::vector<float> ramp(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * static_cast<float>(i % 97) - 3.25f;
  return v;
}

}  // namespace

TEST_CASE("nccl: one rank, every collective on device and host buffers", "[cuda][comm]") {
  if (!nccl_usable()) return;
  auto comm = make_communicator("nccl", 30.0);
  REQUIRE(comm->backend() == "nccl");
  CHECK(comm->device() == Device::cuda);
  CHECK(comm->rank() == 0);
  CHECK(comm->size() == 1);

  SECTION("float sum in place on the device, blocking and async") {
    const std::vector<float> v = ramp(300000, 0.5f);  // above any small-message path
    Tensor t = on_device(v);
    kernels(Device::cuda).scale(t.numel(), 2.0f, t.data());  // queued on the compute stream first
    comm->allreduce_sum(t.data(), t.numel());
    std::vector<float> twice = v;
    for (float& x : twice) x *= 2.0f;
    CHECK(to_host(t) == twice);
    auto req = comm->make_request();
    CHECK(req->test());                        // idle
    for (int round = 0; round < 3; ++round) {  // a request is reused step after step
      comm->allreduce_sum_async(t.data(), t.numel(), *req);
      req->wait();
      CHECK(req->test());
    }
    CHECK(to_host(t) == twice);
  }
  SECTION("host buffers: float async (the control lane), double sum and max") {
    float control[2] = {1.0f, 0.0f};
    auto req = comm->make_request();
    comm->allreduce_sum_async(control, 2, *req);
    req->wait();
    CHECK(control[0] == 1.0f);
    CHECK(control[1] == 0.0f);
    control[1] = 5.0f;
    comm->allreduce_sum_async(control, 2, *req);
    while (!req->test()) {
    }
    CHECK(control[1] == 5.0f);  // test() completing delivers the result too
    double sums[4] = {1.5, -2.25, 1e300, 0.0};
    comm->allreduce_sum(sums, 4);
    CHECK(sums[0] == 1.5);
    CHECK(sums[2] == 1e300);
    double mx[2] = {-7.0, 3.0};
    comm->allreduce_max(mx, 2);
    CHECK(mx[0] == -7.0);
    CHECK(mx[1] == 3.0);
    std::vector<float> big = ramp(70000, 1.0f);
    std::vector<float> copy = big;
    comm->allreduce_sum(big.data(), static_cast<int64_t>(big.size()));
    CHECK(big == copy);
  }
  SECTION("broadcast, allgather and barrier of host bytes") {
    char text[32] = "unique id or a fingerprint";
    comm->broadcast(text, sizeof text, 0);
    CHECK(std::string(text) == "unique id or a fingerprint");
    struct Fingerprint {
      uint64_t config, layout;
    } mine{42, 7}, all[1];
    comm->allgather(&mine, sizeof mine, all);
    CHECK(all[0].config == 42);
    CHECK(all[0].layout == 7);
    comm->barrier();
  }
  SECTION("the gradient reducer over a device buffer") {
    const std::vector<float> v = ramp(5000, 0.25f);
    Tensor grads = on_device(v);
    GradientReducer reducer(*comm, grads.data(), grads.numel(), {0, 1000, 2500, 4000}, 4096);
    reducer.begin_step(3, {1.0f, 0.0f});
    reducer.ready_from(2500);
    reducer.finish();
    CHECK(reducer.control(0) == 1.0f);
    CHECK(to_host(grads) == v);
  }
}

TEST_CASE("nccl: asking for it without a GPU or NCCL is a configuration error", "[comm]") {
  if (nccl_backend_compiled() && cuda_devices() > 0) {
    WARN("a GPU is visible: the no-GPU error path is not reachable here");
    return;
  }
  try {
    auto comm = make_communicator("nccl", 5.0);
    FAIL("make_communicator(\"nccl\") succeeded without a GPU");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::bad_input);
    INFO(e.what());
    CHECK(std::string(e.what()).find("comm.backend = \"nccl\"") != std::string::npos);
  }
}

TEST_CASE("comm.backend = auto: one process stays local, whatever the model's device", "[comm]") {
  CHECK(make_communicator("auto", 5.0, Device::cpu)->backend() == "local");
  CHECK(make_communicator("auto", 5.0, Device::cuda)->backend() == "local");
}
