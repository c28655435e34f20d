// The reference dense forward every backend inherits: one gemm, y = x w^T, then the fused bias and
// activation pass; the input gradient, one gemm dx = dz w; and batched products as a loop of gemm.
// Backends override them where another GEMM formulation is faster (the CPU one computes y^T for
// wide layers, and both products without packing the weights) and are tested against them.
#include "models/kernels/KernelBackend.h"

namespace dptrain {

void KernelBackend::dense_forward(int64_t rows, int64_t in, int64_t out, const float* x, const float* w,
                                  const float* bias, Activation act, float slope, float* y, LayerScratch&) {
  gemm(false, true, rows, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
  bias_activation(act, slope, rows, out, 1, bias, y);
}

void KernelBackend::dense_backward_input(int64_t rows, int64_t in, int64_t out, const float* dz, const float* w,
                                         float* dx) {
  gemm(false, false, rows, in, out, 1.0f, dz, out, w, in, 0.0f, dx, in);
}

void KernelBackend::gemm_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                                 const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                                 int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c, int64_t batch) {
  for (int64_t i = 0; i < batch; ++i)
    gemm(trans_a, trans_b, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta, c + i * stride_c, ldc);
}

}  // namespace dptrain
