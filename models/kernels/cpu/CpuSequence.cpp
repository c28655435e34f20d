// The CPU backend's operations for sequences and attention. Every product of a batched GEMM is one
// single-threaded call, threaded over the batch, so its result does not depend on the thread count;
// softmax rows are independent and run in parallel.
#include <cmath>
#include <limits>

#include "models/kernels/cpu/CpuInternal.h"
#include "models/kernels/cpu/CpuMath.h"

namespace dptrain {

// GELU with CpuMath.h's erf, which vectorizes (libm's erff took a fifth of a Transformer step); it
// agrees with KernelMath.h's gelu_value (erff, the CUDA side) to ~2e-7 absolute.
void CpuKernels::gelu(int64_t n, const float* x, float* y) {
#pragma omp parallel for simd schedule(static) if (n > cpu_parallel_threshold)
  for (int64_t i = 0; i < n; ++i) {
    float cdf, pdf;
    gelu_parts(x[i], cdf, pdf);
    y[i] = x[i] * cdf;
  }
}

void CpuKernels::gelu_backward(int64_t n, const float* x, const float* dy, float* dx) {
#pragma omp parallel for simd schedule(static) if (n > cpu_parallel_threshold)
  for (int64_t i = 0; i < n; ++i) {
    float cdf, pdf;
    gelu_parts(x[i], cdf, pdf);
    dx[i] = dy[i] * (cdf + x[i] * pdf);
  }
}

void CpuKernels::gemm_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                              int64_t lda, int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float beta,
                              float* c, int64_t ldc, int64_t stride_c, int64_t batch) {
#pragma omp parallel for schedule(static) if (batch > 1 && batch * m * n * k > cpu_parallel_threshold)
  for (int64_t i = 0; i < batch; ++i)
    cpu_gemm_serial(trans_a, trans_b, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta,
                    c + i * stride_c, ldc);
}

void CpuKernels::attention_softmax(int64_t n, int64_t heads, int64_t steps, float scale, bool causal,
                                   const float* key_mask, float* scores) {
  const int64_t rows = n * heads * steps;
  constexpr float masked = -std::numeric_limits<float>::infinity();
#pragma omp parallel for schedule(static) if (rows * steps > cpu_parallel_threshold)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t sample = r / (heads * steps), query = r % steps;
    const float* keep = key_mask ? key_mask + sample * steps : nullptr;
    const int64_t keys = causal ? query + 1 : steps;  // keys j < keys may be attended to
    float* s = scores + r * steps;
    float m = masked;
    for (int64_t j = 0; j < keys; ++j) {
      s[j] = (!keep || keep[j] != 0.0f) ? s[j] * scale : masked;
      m = s[j] > m ? s[j] : m;
    }
    for (int64_t j = keys; j < steps; ++j) s[j] = 0.0f;
    if (m == masked) {  // every key masked: no weight at all
      for (int64_t j = 0; j < keys; ++j) s[j] = 0.0f;
      continue;
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < keys; ++j) {
      s[j] = std::exp(s[j] - m);  // exp(-inf) = 0 for masked keys
      sum += s[j];
    }
    const float inv = 1.0f / sum;
    for (int64_t j = 0; j < keys; ++j) s[j] *= inv;
  }
}

void CpuKernels::softmax_backward(int64_t rows, int64_t cols, float scale, const float* p, const float* dp, float* ds) {
#pragma omp parallel for schedule(static) if (rows * cols > cpu_parallel_threshold)
  for (int64_t r = 0; r < rows; ++r) {
    const float *pr = p + r * cols, *dr = dp + r * cols;
    float dot = 0.0f;
    for (int64_t j = 0; j < cols; ++j) dot += pr[j] * dr[j];
    float* o = ds + r * cols;
    for (int64_t j = 0; j < cols; ++j) o[j] = scale * pr[j] * (dr[j] - dot);
  }
}

void CpuKernels::token_mask(int64_t count, const float* ids, float pad_id, float* mask) {
  for (int64_t i = 0; i < count; ++i) mask[i] = ids[i] != pad_id ? 1.0f : 0.0f;
}

void CpuKernels::sequence_mean(int64_t n, int64_t steps, int64_t dim, const float* x, const float* mask, float* y) {
#pragma omp parallel for schedule(static) if (n * steps * dim > cpu_parallel_threshold)
  for (int64_t s = 0; s < n; ++s) {
    float* ys = y + s * dim;
    for (int64_t j = 0; j < dim; ++j) ys[j] = 0.0f;
    float count = 0.0f;
    for (int64_t t = 0; t < steps; ++t) {
      const float w = mask ? mask[s * steps + t] : 1.0f;
      if (w == 0.0f) continue;
      count += w;
      const float* xt = x + (s * steps + t) * dim;
      for (int64_t j = 0; j < dim; ++j) ys[j] += w * xt[j];
    }
    const float inv = count > 0.0f ? 1.0f / count : 0.0f;
    for (int64_t j = 0; j < dim; ++j) ys[j] *= inv;
  }
}

void CpuKernels::sequence_mean_backward(int64_t n, int64_t steps, int64_t dim, const float* dy, const float* mask,
                                        float* dx) {
#pragma omp parallel for schedule(static) if (n * steps * dim > cpu_parallel_threshold)
  for (int64_t s = 0; s < n; ++s) {
    float count = 0.0f;
    for (int64_t t = 0; t < steps; ++t) count += mask ? mask[s * steps + t] : 1.0f;
    const float inv = count > 0.0f ? 1.0f / count : 0.0f;
    const float* ds = dy + s * dim;
    for (int64_t t = 0; t < steps; ++t) {
      const float w = (mask ? mask[s * steps + t] : 1.0f) * inv;
      float* o = dx + (s * steps + t) * dim;
      for (int64_t j = 0; j < dim; ++j) o[j] = w * ds[j];
    }
  }
}

}  // namespace dptrain
