// Entry points of the CUDA backend. CMake compiles CudaKernels.cu when nvcc is found and
// NoCuda.cpp otherwise, so shared code asks here instead of testing macros.
#pragma once

#include <cstddef>

#include "models/kernels/KernelBackend.h"

namespace dptrain {

// The CUDA backend, or null when this build has no CUDA or the machine has no usable GPU.
KernelBackend* cuda_kernels_if_available();
// Copies between host and device memory (either side may be the host).
void cuda_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
// Visible CUDA devices (0 without CUDA).
int cuda_devices();
// Whether this binary was built with CUDA.
bool cuda_compiled();

}  // namespace dptrain
