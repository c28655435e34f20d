// The CPU backend: GEMM through CBLAS (OpenBLAS), everything else as plain loops written for the
// compiler to vectorize, threaded with OpenMP only where the work is large enough to pay for it.
#pragma once

#include "models/kernels/KernelBackend.h"

namespace dptrain {

KernelBackend& cpu_kernels();

// Sets the threads used by BLAS and OpenMP (0 = leave as is).
void set_cpu_threads(int threads);
int cpu_threads();

}  // namespace dptrain
