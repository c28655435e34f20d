// The one place a device's backend is chosen.
#include <cstring>

#include "models/core/Error.h"
#include "models/kernels/KernelBackend.h"
#include "models/kernels/cpu/CpuKernels.h"
#include "models/kernels/cuda/CudaBackend.h"

namespace dptrain {

KernelBackend& kernels(Device device) {
  if (device == Device::cpu) return cpu_kernels();
  if (KernelBackend* cuda = cuda_kernels_if_available()) return *cuda;
  fail_input(cuda_compiled() ? "no CUDA device is available on this machine; set device = \"cpu\""
                             : "this dptrain was built without CUDA; set device = \"cpu\"");
}

bool cuda_available() { return cuda_kernels_if_available() != nullptr; }

void copy_memory(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0 || dst == src) return;
  if (dst_device == Device::cpu && src_device == Device::cpu) {
    std::memcpy(dst, src, bytes);
    return;
  }
  cuda_copy(dst, dst_device, src, src_device, bytes);
}

}  // namespace dptrain
