// The sequence and attention operations of the CUDA backend: GELU (KernelMath.h's per-element
// math, as the CPU computes it), the batched GEMM of attention's heads through cuBLAS's strided
// batched call (row-major as C^T = B^T A^T, as gemm), attention's masked softmax and the softmax
// backward, the padding mask and the masked mean over steps.
//
// The softmax rows run one warp per row; a row's max and sum are butterfly shuffles over the
// warp's lanes (lane i adds lane i^s's value, and a + b == b + a, so every lane ends with the same
// bits, in the same order every run). The means run one thread per output over the steps in the
// CPU's order. No atomics.
#include <climits>

#include "models/kernels/cuda/CudaInternal.cuh"

namespace dptrain::cuda {

namespace {

constexpr int warp_lanes = 32;
constexpr int warps_per_block = threads / warp_lanes;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int s = warp_lanes / 2; s > 0; s >>= 1) v += __shfl_xor_sync(0xffffffffu, v, s);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int s = warp_lanes / 2; s > 0; s >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, s));
  return v;
}

// A grid-stride loop over rows, one warp per row (the row index is the same on every lane of a
// warp, so a warp enters and leaves the loop as a whole, as the shuffles need).
#define DPT_WARP_PER_ROW(r, rows)                                                                             \
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * warps_per_block + threadIdx.x / warp_lanes; r < (rows); \
       r += static_cast<int64_t>(gridDim.x) * warps_per_block)

__global__ void gelu_kernel(int64_t n, const float* x, float* y) { DPT_GRID_STRIDE(i, n) y[i] = gelu_value(x[i]); }

__global__ void gelu_backward_kernel(int64_t n, const float* x, const float* dy, float* dx) {
  DPT_GRID_STRIDE(i, n) dx[i] = dy[i] * gelu_derivative(x[i]);
}

// Scores [n, heads, T, T] in place. As on the CPU: a kept key's score is s * scale (rounded before
// the max is subtracted), a masked one weighs 0, a row with no key left is all zeros, and the
// exponentials are multiplied by 1 / sum.
__global__ void attention_softmax_kernel(int64_t rows, int64_t heads, int64_t steps, float scale, bool causal,
                                         const float* key_mask, float* scores) {
  const int lane = static_cast<int>(threadIdx.x % warp_lanes);
  DPT_WARP_PER_ROW(r, rows) {
    const int64_t sample = r / (heads * steps), query = r % steps;
    const float* keep = key_mask ? key_mask + sample * steps : nullptr;
    const int64_t keys = causal ? query + 1 : steps;  // keys j < keys may be attended to
    float* s = scores + r * steps;
    float m = -INFINITY;
    for (int64_t j = lane; j < keys; j += warp_lanes)
      if (!keep || keep[j] != 0.0f) m = fmaxf(m, __fmul_rn(s[j], scale));
    m = warp_max(m);
    for (int64_t j = keys + lane; j < steps; j += warp_lanes) s[j] = 0.0f;
    if (m == -INFINITY) {  // every key masked: no weight at all
      for (int64_t j = lane; j < keys; j += warp_lanes) s[j] = 0.0f;
      continue;
    }
    float sum = 0.0f;
    for (int64_t j = lane; j < keys; j += warp_lanes) {
      const float e = (!keep || keep[j] != 0.0f) ? expf(__fmul_rn(s[j], scale) - m) : 0.0f;
      s[j] = e;
      sum += e;
    }
    const float inv = 1.0f / warp_sum(sum);
    for (int64_t j = lane; j < keys; j += warp_lanes) s[j] *= inv;
  }
}

// ds = scale p (dp - sum_j p dp). Each lane reads and writes only its own columns after the dot, so
// ds may be p or dp.
__global__ void softmax_backward_kernel(int64_t rows, int64_t cols, float scale, const float* p, const float* dp,
                                        float* ds) {
  const int lane = static_cast<int>(threadIdx.x % warp_lanes);
  DPT_WARP_PER_ROW(r, rows) {
    const float *pr = p + r * cols, *dr = dp + r * cols;
    float dot = 0.0f;
    for (int64_t j = lane; j < cols; j += warp_lanes) dot += pr[j] * dr[j];
    dot = warp_sum(dot);
    float* o = ds + r * cols;
    for (int64_t j = lane; j < cols; j += warp_lanes) o[j] = scale * pr[j] * (dr[j] - dot);
  }
}

__global__ void token_mask_kernel(int64_t count, const float* ids, float pad_id, float* mask) {
  DPT_GRID_STRIDE(i, count) mask[i] = ids[i] != pad_id ? 1.0f : 0.0f;
}

// One thread per output y[s, j]: the weighted sum and the weight over the steps in order.
__global__ void sequence_mean_kernel(int64_t n, int64_t steps, int64_t dim, const float* x, const float* mask,
                                     float* y) {
  DPT_GRID_STRIDE(i, n * dim) {
    const int64_t s = i / dim, j = i - s * dim;
    float acc = 0.0f, count = 0.0f;
    for (int64_t t = 0; t < steps; ++t) {
      const float w = mask ? mask[s * steps + t] : 1.0f;
      if (w == 0.0f) continue;
      count += w;
      acc += w * x[(s * steps + t) * dim + j];
    }
    y[i] = acc * (count > 0.0f ? 1.0f / count : 0.0f);
  }
}

// 1 / (sum_t mask[s, t]) per sample (0 for a sample with no step), the steps in order.
__global__ void inverse_counts_kernel(int64_t n, int64_t steps, const float* mask, double* inv) {
  DPT_GRID_STRIDE(s, n) {
    float count = 0.0f;
    for (int64_t t = 0; t < steps; ++t) count += mask ? mask[s * steps + t] : 1.0f;
    inv[s] = count > 0.0f ? 1.0f / count : 0.0f;  // a float, held exactly in the double
  }
}

__global__ void sequence_mean_backward_kernel(int64_t n, int64_t steps, int64_t dim, const float* dy, const float* mask,
                                              const double* inv, float* dx) {
  DPT_GRID_STRIDE(i, n * steps * dim) {
    const int64_t st = i / dim, j = i - st * dim, s = st / steps;
    const float w = (mask ? mask[st] : 1.0f) * static_cast<float>(inv[s]);
    dx[i] = w * dy[s * dim + j];
  }
}

}  // namespace

void CudaKernels::gelu(int64_t n, const float* x, float* y) {
  if (n <= 0) return;
  gelu_kernel<<<blocks_for(n), threads, 0, stream_>>>(n, x, y);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::gelu_backward(int64_t n, const float* x, const float* dy, float* dx) {
  if (n <= 0) return;
  gelu_backward_kernel<<<blocks_for(n), threads, 0, stream_>>>(n, x, dy, dx);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::gemm_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                               int64_t lda, int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float beta,
                               float* c, int64_t ldc, int64_t stride_c, int64_t batch) {
  if (m <= 0 || n <= 0 || batch <= 0) return;
  DPT_ASSERT(m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX &&
                 batch <= INT_MAX,
             "gemm_batched dimensions beyond 32 bits");
  // As gemm: row-major C_i[m, n] is column-major C_i^T[n, m] = op(B_i)^T op(A_i)^T, so the operands
  // (and their strides) swap; the strides are counts of floats either way.
  DPT_CUBLAS_CHECK(cublasSgemmStridedBatched(
      cublas_, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n),
      static_cast<int>(m), static_cast<int>(k), &alpha, b, static_cast<int>(ldb), static_cast<long long>(stride_b), a,
      static_cast<int>(lda), static_cast<long long>(stride_a), &beta, c, static_cast<int>(ldc),
      static_cast<long long>(stride_c), static_cast<int>(batch)));
}

void CudaKernels::attention_softmax(int64_t n, int64_t heads, int64_t steps, float scale, bool causal,
                                    const float* key_mask, float* scores) {
  const int64_t rows = n * heads * steps;
  if (rows <= 0) return;
  attention_softmax_kernel<<<blocks_for(rows, warps_per_block), threads, 0, stream_>>>(rows, heads, steps, scale,
                                                                                       causal, key_mask, scores);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::softmax_backward(int64_t rows, int64_t cols, float scale, const float* p, const float* dp,
                                   float* ds) {
  if (rows <= 0 || cols <= 0) return;
  softmax_backward_kernel<<<blocks_for(rows, warps_per_block), threads, 0, stream_>>>(rows, cols, scale, p, dp, ds);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::token_mask(int64_t count, const float* ids, float pad_id, float* mask) {
  if (count <= 0) return;
  token_mask_kernel<<<blocks_for(count), threads, 0, stream_>>>(count, ids, pad_id, mask);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::sequence_mean(int64_t n, int64_t steps, int64_t dim, const float* x, const float* mask, float* y) {
  if (n * dim <= 0) return;
  sequence_mean_kernel<<<blocks_for(n * dim), threads, 0, stream_>>>(n, steps, dim, x, mask, y);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::sequence_mean_backward(int64_t n, int64_t steps, int64_t dim, const float* dy, const float* mask,
                                         float* dx) {
  if (n * steps * dim <= 0) return;
  double* inv = scratch_doubles(n);
  inverse_counts_kernel<<<blocks_for(n), threads, 0, stream_>>>(n, steps, mask, inv);
  DPT_CUDA_LAUNCHED();
  sequence_mean_backward_kernel<<<blocks_for(n * steps * dim), threads, 0, stream_>>>(n, steps, dim, dy, mask, inv, dx);
  DPT_CUDA_LAUNCHED();
}

}  // namespace dptrain::cuda
