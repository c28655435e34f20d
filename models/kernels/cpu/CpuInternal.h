// Internals of the CPU backend shared by its files: the backend class, whose members are defined
// across one file per concern as KernelBackend.h groups them, and the pieces behind them that are
// tuned, and tested against their references, on their own (tests/models/cpu_kernels_test.cpp).
// Not a public API: layers reach the backend through KernelBackend.
#pragma once

#include <cstddef>
#include <cstdint>

#include "models/kernels/KernelBackend.h"
#include "models/kernels/cpu/CpuPlan.h"

namespace dptrain {

// Loops shorter than this stay on one thread: forking costs more than they do.
constexpr int64_t cpu_parallel_threshold = 1 << 15;

// The CPU backend (CpuKernels.h; cpu_kernels() holds the one instance). Its operations are grouped
// as in KernelBackend.h, each group defined in the file named above it.
class CpuKernels final : public KernelBackend {
 public:
  Device device() const override { return Device::cpu; }

  // CpuKernels.cpp: memory.
  void* allocate(size_t bytes) override;
  void release(void* p) override;
  void synchronize() override {}

  // CpuVector.cpp: vector operations.
  void fill(int64_t n, float value, float* x) override;
  void copy(int64_t n, const float* x, float* y) override;
  void copy_2d(int64_t rows, int64_t cols, const float* src, int64_t src_ld, float* dst, int64_t dst_ld) override;
  void axpy(int64_t n, float a, const float* x, float* y) override;
  void scale(int64_t n, float a, float* x) override;
  void add(int64_t n, const float* a, const float* b, float* y) override;
  void multiply(int64_t n, const float* a, const float* b, float* y) override;
  double sum_squares(int64_t n, const float* x) override;
  double sum(int64_t n, const float* x) override;

  // CpuGemm.cpp (gemm) and CpuDense.cpp: products.
  void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
            const float* b, int64_t ldb, float beta, float* c, int64_t ldc) override;
  void dense_forward(int64_t rows, int64_t in, int64_t out, const float* x, const float* w, const float* bias,
                     Activation act, float slope, float* y, LayerScratch& scratch) override;
  void dense_backward_input(int64_t rows, int64_t in, int64_t out, const float* dz, const float* w, float* dx) override;
  void row_bias_grad(int64_t rows, int64_t cols, const float* dy, float* dbias) override;

  // CpuActivation.cpp: activations.
  void bias_activation(Activation act, float slope, int64_t rows, int64_t cols, int64_t hw, const float* bias,
                       float* y) override;
  void activation(Activation act, float slope, int64_t n, const float* x, float* y) override;
  void activation_backward(Activation act, float slope, int64_t n, const float* y, const float* dy, float* dx) override;
  void maxout(int64_t rows, int64_t out_cols, int64_t pieces, const float* x, float* y) override;
  void maxout_backward(int64_t rows, int64_t out_cols, int64_t pieces, const float* x, const float* y, const float* dy,
                       float* dx) override;

  // CpuIm2col.cpp (im2col, col2im), CpuConv.cpp (convolution) and CpuPool.cpp (pooling, resampling).
  void im2col(const Conv2dGeometry& g, const float* x, float* col) override;
  void col2im(const Conv2dGeometry& g, const float* col, float* dx) override;
  void conv2d_forward(const Conv2dSpec& c, int64_t n, const float* x, const float* w, const float* bias, Activation act,
                      float slope, float* y, LayerScratch& scratch) override;
  void conv2d_backward(const Conv2dSpec& c, int64_t n, const float* x, const float* w, const float* y,
                       const float* dout, Activation act, float slope, float* dx, float* dw, float* dbias,
                       LayerScratch& scratch) override;
  void channel_bias_grad(int64_t n, int64_t c, int64_t hw, const float* dy, float* dbias) override;
  void max_pool(int64_t n, const Conv2dGeometry& g, const float* x, float* y, int32_t* argmax) override;
  void max_pool_backward(int64_t n, const Conv2dGeometry& g, const float* dy, const int32_t* argmax,
                         float* dx) override;
  void avg_pool(int64_t n, const Conv2dGeometry& g, const float* x, float* y) override;
  void avg_pool_backward(int64_t n, const Conv2dGeometry& g, const float* dy, float* dx) override;
  void max_unpool(int64_t planes, int64_t pooled, int64_t hw, const float* x, const int32_t* argmax, float* y) override;
  void max_unpool_backward(int64_t planes, int64_t pooled, int64_t hw, const float* dy, const int32_t* argmax,
                           float* dx) override;
  void upsample_nearest(int64_t planes, int64_t h, int64_t w, int64_t sh, int64_t sw, const float* x,
                        float* y) override;
  void upsample_nearest_backward(int64_t planes, int64_t h, int64_t w, int64_t sh, int64_t sw, const float* dy,
                                 float* dx) override;

  // CpuNorm.cpp: normalization and batch statistics.
  void batch_norm_stats(int64_t n, int64_t c, int64_t hw, const float* x, const float* shift, double* sum,
                        double* sumsq) override;
  void batch_norm_finalize(int64_t c, double count, float momentum, const float* shift, const double* sum,
                           const double* sumsq, float* mean, float* var, float* running_mean,
                           float* running_var) override;
  void batch_norm_forward(int64_t n, int64_t c, int64_t hw, float eps, const float* x, const float* mean,
                          const float* var, const float* gamma, const float* beta, float* y) override;
  void batch_norm_backward_reduce(int64_t n, int64_t c, int64_t hw, float eps, const float* dy, const float* x,
                                  const float* mean, const float* var, double* sum_dy, double* sum_dy_xhat,
                                  float* dgamma, float* dbeta) override;
  void batch_norm_backward(int64_t n, int64_t c, int64_t hw, float eps, double count, const float* dy, const float* x,
                           const float* mean, const float* var, const float* gamma, const double* sum_dy,
                           const double* sum_dy_xhat, float* dx) override;
  void layer_norm_forward(int64_t rows, int64_t cols, float eps, const float* x, const float* gamma, const float* beta,
                          float* y, float* mean, float* inv_std) override;
  void layer_norm_backward(int64_t rows, int64_t cols, const float* x, const float* dy, const float* gamma,
                           const float* mean, const float* inv_std, float* dx, float* dgamma, float* dbeta) override;
  void minibatch_stddev(int64_t rows, int64_t group, int64_t features, int64_t extra, const float* x,
                        float* y) override;
  void minibatch_stddev_backward(int64_t rows, int64_t group, int64_t features, int64_t extra, const float* x,
                                 const float* dy, float* dx) override;

  // CpuRecurrent.cpp: embedding and recurrent cells.
  void embedding(int64_t count, int64_t dim, int64_t vocab, const float* ids, const float* weight, float* y) override;
  void embedding_backward(int64_t count, int64_t dim, const float* ids, const float* dy, float* dweight) override;
  void lstm_cell(int64_t n, int64_t hidden, float* gates, const float* c_prev, float* c, float* h) override;
  void lstm_cell_backward(int64_t n, int64_t hidden, const float* gates, const float* c_prev, const float* c,
                          const float* dh, float* dc, float* dgates) override;
  void gru_cell(int64_t n, int64_t hidden, float* gx, const float* gh, const float* h_prev, float* h) override;
  void gru_cell_backward(int64_t n, int64_t hidden, const float* gx, const float* gh, const float* h_prev,
                         const float* dh, float* dgx, float* dgh, float* dh_prev) override;

  // CpuSequence.cpp: sequences and attention.
  void gelu(int64_t n, const float* x, float* y) override;
  void gelu_backward(int64_t n, const float* x, const float* dy, float* dx) override;
  void gemm_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                    int64_t lda, int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float beta, float* c,
                    int64_t ldc, int64_t stride_c, int64_t batch) override;
  void attention_softmax(int64_t n, int64_t heads, int64_t steps, float scale, bool causal, const float* key_mask,
                         float* scores) override;
  void softmax_backward(int64_t rows, int64_t cols, float scale, const float* p, const float* dp, float* ds) override;
  void token_mask(int64_t count, const float* ids, float pad_id, float* mask) override;
  void sequence_mean(int64_t n, int64_t steps, int64_t dim, const float* x, const float* mask, float* y) override;
  void sequence_mean_backward(int64_t n, int64_t steps, int64_t dim, const float* dy, const float* mask,
                              float* dx) override;

  // CpuRandom.cpp: per-sample random draws and adversarial inputs.
  void dropout(int64_t rows, int64_t row_size, float p, const SampleKeys& keys, const float* x, float* y) override;
  void dropout_backward(int64_t rows, int64_t row_size, float p, const SampleKeys& keys, const float* dy,
                        float* dx) override;
  void gaussian_sample(int64_t rows, int64_t k, bool sample, const SampleKeys& keys, const float* x, float* z,
                       float* kl) override;
  void gaussian_sample_backward(int64_t rows, int64_t k, bool sample, const SampleKeys& keys, const float* x,
                                const float* dz, float kl_scale, float* dx) override;
  void adversarial_start(int64_t rows, int64_t row_size, float epsilon, float fraction, bool random_start,
                         const SampleKeys& keys, const float* x0, float* x) override;
  void adversarial_step(int64_t rows, int64_t row_size, float step_size, float epsilon, float fraction,
                        const SampleKeys& keys, const float* x0, const float* grad, float* x) override;

  // CpuLoss.cpp: losses.
  void softmax_cross_entropy(int64_t rows, int64_t cols, const float* logits, const int32_t* labels,
                             const float* targets, float scale, float* dlogits, float* stats) override;
  void distillation_loss(int64_t rows, int64_t cols, float temperature, float alpha, const float* logits,
                         const float* teacher_logits, const int32_t* labels, float scale, float* dlogits,
                         float* stats) override;
  void sigmoid_cross_entropy(int64_t rows, int64_t cols, const float* logits, const int32_t* labels,
                             const float* targets, float scale, float* dlogits, float* stats) override;
  void mean_squared_error(int64_t rows, int64_t cols, const float* pred, const float* targets, float scale,
                          float* dpred, float* stats) override;
  void multiclass_hinge(int64_t rows, int64_t cols, const float* scores, const int32_t* labels, float margin,
                        float scale, float* dscores, float* stats) override;
  void prediction_entropy(int64_t rows, int64_t cols, const float* logits, float scale, float* dlogits,
                          float* stats) override;
  void softmax(int64_t rows, int64_t cols, const float* logits, float* probs) override;
  void gan_loss(const GanTerm& term, int64_t rows, const float* scores, float scale, float* dscores,
                float* stats) override;

  // CpuOptimizer.cpp: the optimizer step and weight clipping.
  bool optimizer_update_checked(const OptimizerStep& step, int64_t n, float* w, const float* g, float* state1,
                                float* state2) override;
  void optimizer_update(const OptimizerStep& step, int64_t n, float* w, const float* g, float* state1,
                        float* state2) override;
  void clamp(int64_t n, float lo, float hi, float* x) override;
};

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
// The same, returning whether every g[i] was finite (checked in the same pass).
bool cpu_optimizer_update_checked(const OptimizerStep& s, int64_t n, float* w, const float* g, float* m, float* v);

}  // namespace dptrain
