// Pieces of the CPU backend that live outside CpuKernels.cpp so that each can be tuned, and tested
// against its reference, on its own (tests/models/cpu_kernels_test.cpp). Not a public API: layers
// reach them through KernelBackend.
#pragma once

#include <cstdint>

#include "models/kernels/KernelBackend.h"
#include "models/kernels/cpu/CpuPlan.h"

namespace dptrain {

// Row-major C = alpha op(A) op(B) + beta C, by the engine the plan chooses (CpuPlan.h). With
// OpenBLAS it splits C into column or row blocks over the OpenMP threads, each block one
// single-threaded call, so the process has one thread pool (OpenMP) and never a second one spinning
// beside it (OpenBLAS's); oneDNN threads itself over the same OpenMP pool. For a given thread count
// and engine results repeat bit for bit; across thread counts or engines they agree to rounding
// only (a BLAS may round an element differently when it falls on another edge of a call).
void cpu_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
              const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
// The same by a given engine (for measuring): `unpacked` computes plain overwriting products
// (no transposes, alpha 1, beta 0) and hands every other one to OpenBLAS.
void cpu_gemm_as(CpuEngine engine, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// One single-threaded product (for callers that thread over samples themselves), by the plan's
// engine, and by a given one.
void cpu_gemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                     int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
void cpu_gemm_serial_as(CpuEngine engine, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// True where the build found oneDNN; its sgemm (row-major), on the calling thread's OpenMP team.
bool cpu_onednn_available();
void cpu_onednn_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                      int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// Makes the BLAS single-threaded; called once before the first GEMM and by set_cpu_threads.
void cpu_gemm_init();

// im2col and col2im of KernelBackend. With padding_zeroed, col's padding positions already hold
// zeros (from an earlier call with the same geometry) and are not written again. col2im adds into
// dx, or with overwrite sets it (and may then skip the zeroing pass).
void cpu_im2col(const Conv2dGeometry& g, const float* x, float* col, bool padding_zeroed = false);
void cpu_col2im(const Conv2dGeometry& g, const float* col, float* dx, bool overwrite = false);

// Max pooling over `planes` planes when no window reaches padding (no padding or dilation).
void cpu_max_pool_unpadded(int64_t planes, const Conv2dGeometry& g, const float* x, float* y, int32_t* argmax);
// Max pooling backward (dx overwritten) for 2x2 windows of stride 2 without padding; false when
// the geometry is another one.
bool cpu_max_pool_backward_2x2(int64_t planes, const Conv2dGeometry& g, const float* dy, const int32_t* argmax,
                               float* dx);

// The whole-batch convolution of KernelBackend::conv2d_forward/backward, threaded over samples;
// `k` is the CPU backend (for the bias and activation passes, run per sample while it is hot).
void cpu_conv2d_forward(KernelBackend& k, const Conv2dSpec& c, int64_t n, const float* x, const float* w,
                        const float* bias, Activation act, float slope, float* y, LayerScratch& scratch);
void cpu_conv2d_backward(KernelBackend& k, const Conv2dSpec& c, int64_t n, const float* x, const float* w,
                         const float* y, const float* dout, Activation act, float slope, float* dx, float* dw,
                         float* dbias, LayerScratch& scratch);

// KernelBackend::dense_forward as the plan chooses: y^T = w x^T and a transpose fused with bias and
// ReLU (transposed), or y = x w^T and the bias pass; and by a given choice (for measuring).
void cpu_dense_forward(KernelBackend& k, int64_t rows, int64_t in, int64_t out, const float* x, const float* w,
                       const float* bias, Activation act, float slope, float* y, LayerScratch& scratch);
void cpu_dense_forward_as(ProductChoice choice, KernelBackend& k, int64_t rows, int64_t in, int64_t out, const float* x,
                          const float* w, const float* bias, Activation act, float slope, float* y,
                          LayerScratch& scratch);
// KernelBackend::dense_backward_input (dx = dz w) as the plan chooses, and by a given engine.
void cpu_dense_input_grad(int64_t rows, int64_t in, int64_t out, const float* dz, const float* w, float* dx);
void cpu_dense_input_grad_as(CpuEngine engine, int64_t rows, int64_t in, int64_t out, const float* dz, const float* w,
                             float* dx);
// Whether the dense forward can fuse `act` into its transpose (identity, ReLU).
inline bool cpu_dense_fuses(Activation act) { return act == Activation::identity || act == Activation::relu; }

// C[m x n] = A[m x k] B[k x n], row-major, C overwritten, without packing (CpuUnpackedGemm.cpp):
// for dense layers' products with a batch, where one operand is far larger than the other. Each
// element is one sum over k in order, so a row's result does not depend on the other rows of the
// call or the threads. Where AVX-512 is missing it is cpu_gemm, and available() says false.
bool cpu_unpacked_gemm_available();
void cpu_unpacked_gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                       float* c, int64_t ldc);

// One fused pass of the optimizer over n parameters: a loop per kind, so each vectorizes.
void cpu_optimizer_update(const OptimizerStep& s, int64_t n, float* w, const float* g, float* m, float* v);

}  // namespace dptrain
