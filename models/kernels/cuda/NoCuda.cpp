// The CUDA entry points of a build without nvcc: no device, and a clear error if one is asked for.
#include "models/core/Error.h"
#include "models/kernels/cuda/CudaBackend.h"

namespace dptrain {

namespace {
[[noreturn]] void no_cuda() { fail_input("this dptrain was built without CUDA; set device = \"cpu\""); }
}  // namespace

KernelBackend* cuda_kernels_if_available() { return nullptr; }

void cuda_copy(void*, Device, const void*, Device, size_t) { no_cuda(); }

bool cuda_compiled() { return false; }

int cuda_devices() { return 0; }

void cuda_set_device(int) { no_cuda(); }
int cuda_device_for_local_rank(int) { return -1; }
const char* cuda_device_name() { return ""; }
void* cuda_compute_stream() { return nullptr; }

void* cuda_host_alloc(size_t) { no_cuda(); }
void cuda_host_free(void* p) {
  if (p) no_cuda();
}
void cuda_copy_async_to_device(void*, const void*, size_t) { no_cuda(); }
void cuda_wait_copies() {}
void cuda_sync_copies() {}

bool cuda_graphs_supported() { return false; }

struct CudaGraph::Impl {};
CudaGraph::CudaGraph() = default;
CudaGraph::~CudaGraph() = default;
void CudaGraph::run(uint64_t, const std::function<void()>&) { no_cuda(); }
void CudaGraph::reset() {}
bool CudaGraph::captured() const { return false; }
int CudaGraph::captures() const { return 0; }

}  // namespace dptrain
