// The CUDA entry points of a build without nvcc: no device, and a clear error if one is asked for.
#include "models/core/Error.h"
#include "models/kernels/cuda/CudaBackend.h"

namespace dptrain {

KernelBackend* cuda_kernels_if_available() { return nullptr; }

void cuda_copy(void*, Device, const void*, Device, size_t) {
  fail_input("this dptrain was built without CUDA; set device = \"cpu\"");
}

bool cuda_compiled() { return false; }

int cuda_devices() { return 0; }

}  // namespace dptrain
