// Internals of the CUDA backend shared by its .cu files (one per theme: CudaKernels.cu holds the
// runtime, memory, vector ops and GEMM; CudaConv.cu, CudaLosses.cu, CudaOptim.cu,
// CudaModelBreadth.cu and CudaSequence.cu the rest). Not a public header: it includes CUDA's.
//
// Determinism: every reduction runs in a fixed order (a thread's strided partial sums, then a
// shared-memory tree over a fixed block size; no float atomics), grid sizes depend on the problem
// only, and cuBLAS runs on one stream with its own workspace, so two runs give the same bits.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "models/core/Error.h"
#include "models/kernels/KernelBackend.h"
#include "models/kernels/KernelMath.h"

namespace dptrain::cuda {

// Throws dptrain's internal error naming the failed call, file:line (and rank) and the device.
[[noreturn]] void fail_call(const char* call, const std::string& message, const char* file, int line);
const char* cublas_message(cublasStatus_t status);

}  // namespace dptrain::cuda

#define DPT_CUDA_CHECK(call)                                                                                          \
  do {                                                                                                                \
    cudaError_t dpt_err_ = (call);                                                                                    \
    if (dpt_err_ != cudaSuccess) ::dptrain::cuda::fail_call(#call, cudaGetErrorString(dpt_err_), __FILE__, __LINE__); \
  } while (0)

#define DPT_CUBLAS_CHECK(call)                                                                         \
  do {                                                                                                 \
    cublasStatus_t dpt_st_ = (call);                                                                   \
    if (dpt_st_ != CUBLAS_STATUS_SUCCESS)                                                              \
      ::dptrain::cuda::fail_call(#call, ::dptrain::cuda::cublas_message(dpt_st_), __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: reports a bad launch configuration at once (execution errors surface at
// the next synchronizing call, which checks too).
#define DPT_CUDA_LAUNCHED() DPT_CUDA_CHECK(cudaPeekAtLastError())

namespace dptrain::cuda {

constexpr int threads = 256;

// Blocks for a grid-stride loop over n items: enough to fill the GPU, a function of n only.
inline unsigned blocks_for(int64_t n, int per_block = threads) {
  int64_t b = (n + per_block - 1) / per_block;
  if (b < 1) b = 1;
  if (b > 8192) b = 8192;
  return static_cast<unsigned>(b);
}

#define DPT_GRID_STRIDE(i, n)                                                            \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

// Sum over the block in a fixed order: every thread's value, then a tree over `Threads` slots.
// All threads get the result. `shared` holds Threads values.
template <int Threads, typename T>
__device__ __forceinline__ T block_sum(T v, T* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
#pragma unroll
  for (int s = Threads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) shared[threadIdx.x] += shared[threadIdx.x + s];
    __syncthreads();
  }
  T r = shared[0];
  __syncthreads();
  return r;
}

// Largest value over the block and its smallest index (the CPU's first maximum in scan order).
template <int Threads>
__device__ __forceinline__ void block_argmax(float& v, int64_t& index, float* sv, int64_t* si) {
  sv[threadIdx.x] = v;
  si[threadIdx.x] = index;
  __syncthreads();
#pragma unroll
  for (int s = Threads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      float a = sv[threadIdx.x], b = sv[threadIdx.x + s];
      int64_t ia = si[threadIdx.x], ib = si[threadIdx.x + s];
      if (ib >= 0 && (ia < 0 || b > a || (b == a && ib < ia))) {
        sv[threadIdx.x] = b;
        si[threadIdx.x] = ib;
      }
    }
    __syncthreads();
  }
  v = sv[0];
  index = si[0];
  __syncthreads();
}

// Codes of bad input found inside kernels (labels, embedding ids); reported at the next
// synchronization as dptrain's bad-input error, as the CPU backend reports them at once.
enum DeviceErrorCode : int { no_error = 0, bad_class_label = 1, bad_binary_label = 2, bad_embedding_id = 3 };

__device__ __forceinline__ void report_error(int* errors, int code, int a, int b) {
  if (atomicCAS(errors, 0, code) == 0) {
    errors[1] = a;
    errors[2] = b;
  }
}

// Device memory cache: freed blocks are kept by size and handed out again, so a training step
// never calls cudaMalloc/cudaFree (cudaFree synchronizes the device) after the first. Every
// operation runs on the one compute stream, so a block freed by the host may be reused by later
// work in stream order, as PyTorch's caching allocator does.
class CachingAllocator {
 public:
  explicit CachingAllocator(int device) : device_(device) {}
  void* allocate(size_t bytes);
  void release(void* p);
  // Frees every cached block (after an out-of-memory, before retrying).
  void trim();

 private:
  int device_;
  std::mutex mutex_;
  std::multimap<size_t, void*> free_;
  std::unordered_map<void*, size_t> sizes_;
};

class CudaKernels final : public KernelBackend {
 public:
  explicit CudaKernels(int device);
  ~CudaKernels() override;
  Device device() const override { return Device::cuda; }
  int index() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  cudaStream_t copy_stream() const { return copy_stream_; }
  int* errors() const { return errors_; }
  // Reads and clears the device error flag (synchronizes); throws the bad-input error it names.
  void check_device_errors();
  // Device scratch of at least n values, owned by the backend. Outgrown buffers are kept, never
  // freed, so a captured CUDA graph that still points at one stays valid.
  double* scratch_doubles(int64_t n) { return static_cast<double*>(scratch(doubles_, n * sizeof(double))); }

  void* allocate(size_t bytes) override { return allocator_.allocate(bytes); }
  void release(void* p) override { allocator_.release(p); }
  void synchronize() override;

  // Batch transfers on the copy stream (CudaBackend.h).
  void copy_async_to_device(void* dst, const void* src, size_t bytes);
  void wait_copies();
  void sync_copies();
  // Copies device memory to the host and waits; reports device errors.
  void copy_to_host(void* dst, const void* src, size_t bytes);

  void fill(int64_t n, float value, float* x) override;
  void copy(int64_t n, const float* x, float* y) override;
  void axpy(int64_t n, float a, const float* x, float* y) override;
  void scale(int64_t n, float a, float* x) override;
  void add(int64_t n, const float* a, const float* b, float* y) override;
  void multiply(int64_t n, const float* a, const float* b, float* y) override;
  double sum_squares(int64_t n, const float* x) override;
  double sum(int64_t n, const float* x) override;

  void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
            const float* b, int64_t ldb, float beta, float* c, int64_t ldc) override;
  void row_bias_grad(int64_t rows, int64_t cols, const float* dy, float* dbias) override;
  void channel_bias_grad(int64_t n, int64_t c, int64_t hw, const float* dy, float* dbias) override;
  void bias_activation(Activation act, float slope, int64_t rows, int64_t cols, int64_t hw, const float* bias,
                       float* y) override;
  void activation(Activation act, float slope, int64_t n, const float* x, float* y) override;
  void activation_backward(Activation act, float slope, int64_t n, const float* y, const float* dy, float* dx) override;
  void maxout(int64_t rows, int64_t out_cols, int64_t pieces, const float* x, float* y) override;
  void maxout_backward(int64_t rows, int64_t out_cols, int64_t pieces, const float* x, const float* y, const float* dy,
                       float* dx) override;
  void dropout(int64_t rows, int64_t row_size, float p, const SampleKeys& keys, const float* x, float* y) override;
  void dropout_backward(int64_t rows, int64_t row_size, float p, const SampleKeys& keys, const float* dy,
                        float* dx) override;

  // CudaConv.cu
  void im2col(const Conv2dGeometry& g, const float* x, float* col) override;
  void col2im(const Conv2dGeometry& g, const float* col, float* dx) override;
  void max_pool(int64_t n, const Conv2dGeometry& g, const float* x, float* y, int32_t* argmax) override;
  void max_pool_backward(int64_t n, const Conv2dGeometry& g, const float* dy, const int32_t* argmax,
                         float* dx) override;
  void avg_pool(int64_t n, const Conv2dGeometry& g, const float* x, float* y) override;
  void avg_pool_backward(int64_t n, const Conv2dGeometry& g, const float* dy, float* dx) override;
  void conv2d_forward(const Conv2dSpec& c, int64_t n, const float* x, const float* w, const float* bias, Activation act,
                      float slope, float* y, LayerScratch& scratch) override;
  void conv2d_backward(const Conv2dSpec& c, int64_t n, const float* x, const float* w, const float* y,
                       const float* dout, Activation act, float slope, float* dx, float* dw, float* dbias,
                       LayerScratch& scratch) override;

  // CudaLosses.cu
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
  // Adds the fixed-order sums of a[0..n) (times a_factor) and b[0..n) to *out_a and *out_b (b may
  // be null) and, when out_count is not null, `count` to *out_count, or the fixed-order sum of
  // counts[0..n) when counts is not null (rows a loss skips count 0); and that of c[0..n) to *out_c
  // when c is not null.
  void finish_sums(int64_t n, const double* a, double a_factor, const double* b, float* out_a, float* out_b,
                   float* out_count, float count, const double* counts = nullptr, const double* c = nullptr,
                   float* out_c = nullptr);

  // CudaOptim.cu
  bool optimizer_update_checked(const OptimizerStep& step, int64_t n, float* w, const float* g, float* state1,
                                float* state2) override;
  void optimizer_update(const OptimizerStep& step, int64_t n, float* w, const float* g, float* state1,
                        float* state2) override;
  void clamp(int64_t n, float lo, float hi, float* x) override;

  // CudaModelBreadth.cu
  void copy_2d(int64_t rows, int64_t cols, const float* src, int64_t src_ld, float* dst, int64_t dst_ld) override;
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
  void upsample_nearest(int64_t planes, int64_t h, int64_t w, int64_t sh, int64_t sw, const float* x,
                        float* y) override;
  void upsample_nearest_backward(int64_t planes, int64_t h, int64_t w, int64_t sh, int64_t sw, const float* dy,
                                 float* dx) override;
  void minibatch_stddev(int64_t rows, int64_t group, int64_t features, int64_t extra, const float* x,
                        float* y) override;
  void minibatch_stddev_backward(int64_t rows, int64_t group, int64_t features, int64_t extra, const float* x,
                                 const float* dy, float* dx) override;
  void max_unpool(int64_t planes, int64_t pooled, int64_t hw, const float* x, const int32_t* argmax, float* y) override;
  void max_unpool_backward(int64_t planes, int64_t pooled, int64_t hw, const float* dy, const int32_t* argmax,
                           float* dx) override;
  void embedding(int64_t count, int64_t dim, int64_t vocab, const float* ids, const float* weight, float* y) override;
  void embedding_backward(int64_t count, int64_t dim, const float* ids, const float* dy, float* dweight) override;
  void lstm_cell(int64_t n, int64_t hidden, float* gates, const float* c_prev, float* c, float* h) override;
  void lstm_cell_backward(int64_t n, int64_t hidden, const float* gates, const float* c_prev, const float* c,
                          const float* dh, float* dc, float* dgates) override;
  void gru_cell(int64_t n, int64_t hidden, float* gx, const float* gh, const float* h_prev, float* h) override;
  void gru_cell_backward(int64_t n, int64_t hidden, const float* gx, const float* gh, const float* h_prev,
                         const float* dh, float* dgx, float* dgh, float* dh_prev) override;
  void gaussian_sample(int64_t rows, int64_t k, bool sample, const SampleKeys& keys, const float* x, float* z,
                       float* kl) override;
  void gaussian_sample_backward(int64_t rows, int64_t k, bool sample, const SampleKeys& keys, const float* x,
                                const float* dz, float kl_scale, float* dx) override;
  void adversarial_start(int64_t rows, int64_t row_size, float epsilon, float fraction, bool random_start,
                         const SampleKeys& keys, const float* x0, float* x) override;
  void adversarial_step(int64_t rows, int64_t row_size, float step_size, float epsilon, float fraction,
                        const SampleKeys& keys, const float* x0, const float* grad, float* x) override;

  // CudaSequence.cu
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

 private:
  struct Scratch {
    void* data = nullptr;
    size_t bytes = 0;
  };
  void* scratch(Scratch& s, size_t bytes);
  double reduce_to_host(int64_t n, const float* x, bool squares);

  int device_;
  cudaStream_t stream_ = nullptr, copy_stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  void* cublas_workspace_ = nullptr;
  cudaEvent_t compute_mark_ = nullptr, copies_done_ = nullptr;
  int* errors_ = nullptr;        // device: code and two values
  void* host_pinned_ = nullptr;  // a reduction's result (double) and a copy of errors_ (ints)
  CachingAllocator allocator_;
  Scratch doubles_, reduce_;
  std::vector<void*> retired_;
};

}  // namespace dptrain::cuda
