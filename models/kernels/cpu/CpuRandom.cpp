// The CPU backend's per-sample random draws: dropout masks and the VAE's gaussian sample, each
// value drawn from Philox at (key, step, global sample, element), so a row gets the same draws on
// any number of ranks (docs/design.md rule 3).
#include <cmath>

#include "models/kernels/cpu/CpuInternal.h"

namespace dptrain {

void CpuKernels::dropout(int64_t rows, int64_t row_size, float p, const SampleKeys& keys, const float* x, float* y) {
  const float keep_scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (rows * row_size > cpu_parallel_threshold / 4)
  for (int64_t r = 0; r < rows; ++r) {
    const uint64_t sample = static_cast<uint64_t>(keys.row0 + r);
    const float* xr = x + r * row_size;
    float* yr = y + r * row_size;
    // Draws i .. i + 3 share one Philox block (philox_uniform's layout): one block per 4 values.
    for (int64_t i = 0; i < row_size; i += 4) {
      const Philox4x32 b = philox_block(keys.key, keys.step, sample, static_cast<uint64_t>(i) >> 2);
      const int64_t n = row_size - i < 4 ? row_size - i : 4;
      for (int64_t j = 0; j < n; ++j)
        yr[i + j] = uniform_from_bits(b.v[j]) > p ? xr[i + j] * keep_scale : 0.0f;
    }
  }
}

void CpuKernels::dropout_backward(int64_t rows, int64_t row_size, float p, const SampleKeys& keys, const float* dy,
                                  float* dx) {
  dropout(rows, row_size, p, keys, dy, dx);  // the same mask and scale apply to the gradient
}

void CpuKernels::gaussian_sample(int64_t rows, int64_t k, bool sample, const SampleKeys& keys, const float* x, float* z,
                                 float* kl) {
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* mu = x + r * 2 * k;
    const float* logvar = mu + k;
    const uint64_t s = static_cast<uint64_t>(keys.row0 + r);
    for (int64_t j = 0; j < k; ++j) {
      const float eps = sample ? philox_normal(keys.key, keys.step, s, static_cast<uint64_t>(j)) : 0.0f;
      z[r * k + j] = mu[j] + std::exp(0.5f * logvar[j]) * eps;
      total += 0.5 * (std::exp(static_cast<double>(logvar[j])) + static_cast<double>(mu[j]) * mu[j] - 1.0 - logvar[j]);
    }
  }
  if (kl) *kl += static_cast<float>(total);
}

void CpuKernels::gaussian_sample_backward(int64_t rows, int64_t k, bool sample, const SampleKeys& keys, const float* x,
                                          const float* dz, float kl_scale, float* dx) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* mu = x + r * 2 * k;
    const float* logvar = mu + k;
    float* dmu = dx + r * 2 * k;
    float* dlogvar = dmu + k;
    const uint64_t s = static_cast<uint64_t>(keys.row0 + r);
    for (int64_t j = 0; j < k; ++j) {
      const float eps = sample ? philox_normal(keys.key, keys.step, s, static_cast<uint64_t>(j)) : 0.0f;
      const float d = dz[r * k + j], sd = std::exp(0.5f * logvar[j]);
      dmu[j] = d + kl_scale * mu[j];
      dlogvar[j] = 0.5f * d * eps * sd + kl_scale * 0.5f * (sd * sd - 1.0f);
    }
  }
}

}  // namespace dptrain
