// The CPU backend's normalization and batch statistics: batch norm, layer norm and the minibatch
// standard deviation. Every sum runs in a fixed order on one thread (channels, rows or groups are
// split over the threads, never one sum), so results repeat bitwise (docs/design.md rule 4).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "models/kernels/cpu/CpuInternal.h"

namespace dptrain {

namespace {

// The group statistics of minibatch_stddev for n consecutive features of m rows `ld` apart:
// mean[j] and s[j] = sqrt(var[j] + 1e-8), var over the rows (the CUDA kernel computes the same).
constexpr int64_t stddev_chunk = 64;
inline void group_stddev(const float* x, int64_t m, int64_t ld, int64_t n, float* mean, float* s) {
  for (int64_t j = 0; j < n; ++j) mean[j] = 0.0f;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) mean[j] += x[i * ld + j];
  const float inv_m = 1.0f / static_cast<float>(m);
  for (int64_t j = 0; j < n; ++j) mean[j] *= inv_m;
  for (int64_t j = 0; j < n; ++j) s[j] = 0.0f;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const float d = x[i * ld + j] - mean[j];
      s[j] += d * d;
    }
  for (int64_t j = 0; j < n; ++j) s[j] = std::sqrt(s[j] * inv_m + 1e-8f);
}

}  // namespace

// Channels are independent; each is reduced by one thread in a fixed order (deterministic).
void CpuKernels::batch_norm_stats(int64_t n, int64_t c, int64_t hw, const float* x, const float* shift, double* sum,
                                  double* sumsq) {
#pragma omp parallel for schedule(static) if (n * c * hw > cpu_parallel_threshold)
  for (int64_t ch = 0; ch < c; ++ch) {
    const float k = shift ? shift[ch] : 0.0f;
    double s = 0.0, q = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const float* p = x + (i * c + ch) * hw;
      double bs = 0.0, bq = 0.0;
#pragma omp simd reduction(+ : bs, bq)
      for (int64_t j = 0; j < hw; ++j) {
        const double d = static_cast<double>(p[j]) - k;
        bs += d;
        bq += d * d;
      }
      s += bs;
      q += bq;
    }
    sum[ch] = s;
    sumsq[ch] = q;
  }
}

void CpuKernels::batch_norm_finalize(int64_t c, double count, float momentum, const float* shift, const double* sum,
                                     const double* sumsq, float* mean, float* var, float* running_mean,
                                     float* running_var) {
  for (int64_t ch = 0; ch < c; ++ch) {
    const double d = sum[ch] / count;
    const double m = (shift ? shift[ch] : 0.0) + d;
    const double v = std::max(0.0, sumsq[ch] / count - d * d);
    mean[ch] = static_cast<float>(m);
    var[ch] = static_cast<float>(v);
    if (running_mean) {
      const double unbiased = count > 1.0 ? v * count / (count - 1.0) : v;
      running_mean[ch] = static_cast<float>((1.0 - momentum) * running_mean[ch] + momentum * m);
      running_var[ch] = static_cast<float>((1.0 - momentum) * running_var[ch] + momentum * unbiased);
    }
  }
}

void CpuKernels::batch_norm_forward(int64_t n, int64_t c, int64_t hw, float eps, const float* x, const float* mean,
                                    const float* var, const float* gamma, const float* beta, float* y) {
#pragma omp parallel for schedule(static) if (n * c * hw > cpu_parallel_threshold)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch) {
      const float a = gamma[ch] / std::sqrt(var[ch] + eps), b = beta[ch] - a * mean[ch];
      const float* p = x + (i * c + ch) * hw;
      float* q = y + (i * c + ch) * hw;
#pragma omp simd
      for (int64_t j = 0; j < hw; ++j) q[j] = a * p[j] + b;
    }
}

void CpuKernels::batch_norm_backward_reduce(int64_t n, int64_t c, int64_t hw, float eps, const float* dy,
                                            const float* x, const float* mean, const float* var, double* sum_dy,
                                            double* sum_dy_xhat, float* dgamma, float* dbeta) {
#pragma omp parallel for schedule(static) if (n * c * hw > cpu_parallel_threshold)
  for (int64_t ch = 0; ch < c; ++ch) {
    const float m = mean[ch];
    double s = 0.0, sx = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const float* d = dy + (i * c + ch) * hw;
      const float* p = x + (i * c + ch) * hw;
      double bs = 0.0, bx = 0.0;
#pragma omp simd reduction(+ : bs, bx)
      for (int64_t j = 0; j < hw; ++j) {
        bs += d[j];
        bx += static_cast<double>(d[j]) * (p[j] - m);
      }
      s += bs;
      sx += bx;
    }
    sum_dy[ch] = s;
    sum_dy_xhat[ch] = sx / std::sqrt(static_cast<double>(var[ch]) + eps);
    if (dgamma) dgamma[ch] += static_cast<float>(sum_dy_xhat[ch]);
    if (dbeta) dbeta[ch] += static_cast<float>(s);
  }
}

void CpuKernels::batch_norm_backward(int64_t n, int64_t c, int64_t hw, float eps, double count, const float* dy,
                                     const float* x, const float* mean, const float* var, const float* gamma,
                                     const double* sum_dy, const double* sum_dy_xhat, float* dx) {
#pragma omp parallel for schedule(static) if (n * c * hw > cpu_parallel_threshold)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch) {
      const float inv_std = 1.0f / std::sqrt(var[ch] + eps), a = gamma[ch] * inv_std, m = mean[ch];
      const float mean_dy = sum_dy ? static_cast<float>(sum_dy[ch] / count) : 0.0f;
      const float mean_dy_xhat = sum_dy_xhat ? static_cast<float>(sum_dy_xhat[ch] / count) : 0.0f;
      const float* d = dy + (i * c + ch) * hw;
      const float* p = x + (i * c + ch) * hw;
      float* q = dx + (i * c + ch) * hw;
#pragma omp simd
      for (int64_t j = 0; j < hw; ++j) q[j] = a * (d[j] - mean_dy - (p[j] - m) * inv_std * mean_dy_xhat);
    }
}

void CpuKernels::layer_norm_forward(int64_t rows, int64_t cols, float eps, const float* x, const float* gamma,
                                    const float* beta, float* y, float* mean, float* inv_std) {
#pragma omp parallel for schedule(static) if (rows * cols > cpu_parallel_threshold)
  for (int64_t r = 0; r < rows; ++r) {
    const float* p = x + r * cols;
    double s = 0.0;
    for (int64_t j = 0; j < cols; ++j) s += p[j];
    const double m = s / static_cast<double>(cols);
    double q = 0.0;
    for (int64_t j = 0; j < cols; ++j) q += (p[j] - m) * (p[j] - m);
    const float is = static_cast<float>(1.0 / std::sqrt(q / static_cast<double>(cols) + eps));
    mean[r] = static_cast<float>(m);
    inv_std[r] = is;
    float* o = y + r * cols;
    for (int64_t j = 0; j < cols; ++j) o[j] = gamma[j] * (p[j] - mean[r]) * is + beta[j];
  }
}

void CpuKernels::layer_norm_backward(int64_t rows, int64_t cols, const float* x, const float* dy, const float* gamma,
                                     const float* mean, const float* inv_std, float* dx, float* dgamma, float* dbeta) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* p = x + r * cols;
    const float* d = dy + r * cols;
    const float m = mean[r], is = inv_std[r];
    double s = 0.0, sx = 0.0;  // sums of g = dy gamma and of g xhat
    for (int64_t j = 0; j < cols; ++j) {
      const float xhat = (p[j] - m) * is, g = d[j] * gamma[j];
      s += g;
      sx += static_cast<double>(g) * xhat;
      if (dgamma) dgamma[j] += d[j] * xhat;
      if (dbeta) dbeta[j] += d[j];
    }
    const float ms = static_cast<float>(s / static_cast<double>(cols));
    const float msx = static_cast<float>(sx / static_cast<double>(cols));
    float* o = dx + r * cols;
    for (int64_t j = 0; j < cols; ++j) o[j] = is * (d[j] * gamma[j] - ms - (p[j] - m) * is * msx);
  }
}

// Features in chunks of a fixed size with the per-feature sums on the stack: the loops over a
// chunk vectorize, and nothing is allocated.
void CpuKernels::minibatch_stddev(int64_t rows, int64_t group, int64_t features, int64_t extra, const float* x,
                                  float* y) {
  const int64_t groups = (rows + group - 1) / group, width = features + extra;
#pragma omp parallel for schedule(static) if (rows * width > cpu_parallel_threshold)
  for (int64_t k = 0; k < groups; ++k) {
    const int64_t r0 = k * group, m = std::min(group, rows - r0);
    double total = 0.0;
    for (int64_t f0 = 0; f0 < features; f0 += stddev_chunk) {
      const int64_t n = std::min(stddev_chunk, features - f0);
      float mean[stddev_chunk], s[stddev_chunk];
      group_stddev(x + r0 * features + f0, m, features, n, mean, s);
      for (int64_t j = 0; j < n; ++j) total += s[j];
    }
    const float stat = static_cast<float>(total / static_cast<double>(features));
    for (int64_t i = r0; i < r0 + m; ++i) {
      float* out = y + i * width;
      std::memcpy(out, x + i * features, static_cast<size_t>(features) * sizeof(float));
      for (int64_t e = 0; e < extra; ++e) out[features + e] = stat;
    }
  }
}

void CpuKernels::minibatch_stddev_backward(int64_t rows, int64_t group, int64_t features, int64_t extra, const float* x,
                                           const float* dy, float* dx) {
  const int64_t groups = (rows + group - 1) / group, width = features + extra;
#pragma omp parallel for schedule(static) if (rows * width > cpu_parallel_threshold)
  for (int64_t k = 0; k < groups; ++k) {
    const int64_t r0 = k * group, m = std::min(group, rows - r0);
    double dstat = 0.0;
    for (int64_t i = r0; i < r0 + m; ++i)
      for (int64_t e = 0; e < extra; ++e) dstat += dy[i * width + features + e];
    const float scale = static_cast<float>(dstat / static_cast<double>(features * m));
    for (int64_t f0 = 0; f0 < features; f0 += stddev_chunk) {
      const int64_t n = std::min(stddev_chunk, features - f0);
      float mean[stddev_chunk], s[stddev_chunk];
      group_stddev(x + r0 * features + f0, m, features, n, mean, s);
      for (int64_t j = 0; j < n; ++j) s[j] = scale / s[j];
      for (int64_t i = r0; i < r0 + m; ++i) {
        const float* xi = x + i * features + f0;
        const float* d = dy + i * width + f0;
        float* o = dx + i * features + f0;
        for (int64_t j = 0; j < n; ++j) o[j] = d[j] + (xi[j] - mean[j]) * s[j];
      }
    }
  }
}

}  // namespace dptrain
