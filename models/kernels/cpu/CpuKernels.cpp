// The CPU backend's one instance, its memory and its threads. The backend's operations are defined
// by concern in the files CpuInternal.h names, as KernelBackend.h groups them.
#include "models/kernels/cpu/CpuKernels.h"

#include <omp.h>
#include <sys/mman.h>

#include <cstdlib>
#include <string>

#include "models/core/Error.h"
#include "models/kernels/cpu/CpuInternal.h"

namespace dptrain {

namespace {

constexpr size_t huge_page = size_t{2} << 20;

}  // namespace

// Buffers of 2 MiB and more (the flat parameters, gradients and optimizer state, large
// activations) are placed on 2 MiB boundaries and asked for transparent huge pages: the optimizer
// pass and the GEMM's packing of weights stream through them, and with 4 KiB pages their TLB
// misses cost 15-35% of the optimizer pass. Where THP is off the advice is ignored.
void* CpuKernels::allocate(size_t bytes) {
  const size_t align = bytes >= huge_page ? huge_page : 64;
  size_t rounded = (bytes + align - 1) / align * align;
  void* p = std::aligned_alloc(align, rounded ? rounded : align);
  if (!p) throw Error(ErrorKind::internal, "out of host memory allocating " + std::to_string(bytes) + " bytes");
  if (align == huge_page) madvise(p, rounded, MADV_HUGEPAGE);
  return p;
}

void CpuKernels::release(void* p) { std::free(p); }

KernelBackend& cpu_kernels() {
  static CpuKernels backend;
  return backend;
}

void set_cpu_threads(int threads) {
  if (threads <= 0) return;
  cpu_gemm_init();  // OpenBLAS stays on one thread; cpu_gemm threads it with OpenMP
  omp_set_num_threads(threads);
}

int cpu_threads() { return omp_get_max_threads(); }

}  // namespace dptrain
