// The CPU backend's GEMM, by the engine the plan chooses (CpuPlan.h). OpenBLAS is kept
// single-threaded and threaded by us over blocks of C with OpenMP, so a process has one pool sized
// by `threads` and never OpenBLAS's busy-waiting pthreads beside it (they fight our workers for the
// cores and oversubscribe nodes shared by ranks); oneDNN threads itself over that same pool.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <mutex>

#include "models/kernels/cpu/CpuInternal.h"
#include "models/kernels/cpu/CpuKernels.h"

namespace dptrain {

namespace {

// Below this many multiply-adds a GEMM is not worth splitting.
constexpr double parallel_gemm_work = 1 << 20;
// Block edges fall on multiples of this many rows or columns (a vector width and a cache line).
constexpr int64_t block_align = 16;

// Sets C = beta C where there is nothing to multiply (k = 0), which BLAS interfaces refuse or skip.
void scale_only(int64_t m, int64_t n, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
}

bool unpacked_fits(bool trans_a, bool trans_b, float alpha, float beta) {
  return !trans_a && !trans_b && alpha == 1.0f && beta == 0.0f && cpu_unpacked_gemm_available();
}

void openblas_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                     int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

void openblas_threaded(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                       int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const bool split_n = n >= m;  // split the longer side: the other operand is packed once per block
  const int64_t side = split_n ? n : m;
  const int64_t blocks = std::min<int64_t>(threads, side / block_align);
  if (blocks < 2 || static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) < parallel_gemm_work) {
    openblas_serial(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
#pragma omp parallel for schedule(static) num_threads(static_cast <int>(blocks))
  for (int64_t t = 0; t < blocks; ++t) {
    int64_t lo = side * t / blocks / block_align * block_align;
    int64_t hi = t + 1 == blocks ? side : side * (t + 1) / blocks / block_align * block_align;
    if (hi <= lo) continue;
    if (split_n)  // columns [lo, hi) of C: columns of op(B)
      openblas_serial(trans_a, trans_b, m, hi - lo, k, alpha, a, lda, trans_b ? b + lo * ldb : b + lo, ldb, beta,
                      c + lo, ldc);
    else  // rows [lo, hi) of C: rows of op(A)
      openblas_serial(trans_a, trans_b, hi - lo, n, k, alpha, trans_a ? a + lo : a + lo * lda, lda, b, ldb, beta,
                      c + lo * ldc, ldc);
  }
}

}  // namespace

void cpu_gemm_init() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

void cpu_gemm_as(CpuEngine engine, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cpu_gemm_init();
  if (m <= 0 || n <= 0) return;
  if (k <= 0) return scale_only(m, n, beta, c, ldc);
  if (engine == CpuEngine::onednn && cpu_onednn_available())
    return cpu_onednn_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  if (engine == CpuEngine::unpacked && unpacked_fits(trans_a, trans_b, alpha, beta))
    return cpu_unpacked_gemm(m, n, k, a, lda, b, ldb, c, ldc);
  openblas_threaded(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void cpu_gemm_serial_as(CpuEngine engine, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) return scale_only(m, n, beta, c, ldc);
  if (engine == CpuEngine::onednn && cpu_onednn_available())
    return cpu_onednn_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  openblas_serial(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void cpu_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
              const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const ProductKey key{ProductKind::gemm, trans_a, trans_b, beta != 0.0f, m, n, k};
  cpu_gemm_as(cpu_product_choice(key).engine, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void cpu_gemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                     int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const ProductKey key{ProductKind::gemm_serial, trans_a, trans_b, beta != 0.0f, m, n, k};
  cpu_gemm_serial_as(cpu_product_choice(key).engine, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void CpuKernels::gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                      int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cpu_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace dptrain
