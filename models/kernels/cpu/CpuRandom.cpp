// The CPU backend's per-sample random draws: dropout masks, the VAE's gaussian sample and the
// adversarial inputs' selection and start noise, each value drawn from Philox at (key, step, global
// sample, element), so a row gets the same draws on any number of ranks (docs/design.md rule 3).
#include <cmath>

#include "models/kernels/KernelMath.h"
#include "models/kernels/cpu/CpuInternal.h"

namespace dptrain {

namespace {

constexpr int lanes = 16;

// Philox blocks b0 .. b0 + 15 of one sample's stream (philox_block's counters), lane by lane so
// that the ten rounds vectorize; out[j][l] is draw j of block b0 + l.
void philox_blocks(const SampleKeys& keys, uint64_t sample, uint64_t b0, uint32_t (&out)[4][lanes]) {
  uint32_t c0[lanes], c1[lanes], c2[lanes], c3[lanes];
  const uint32_t s3 = static_cast<uint32_t>(keys.step >> 32) ^ (static_cast<uint32_t>(sample >> 32) * 0x9E3779B9u);
  for (int l = 0; l < lanes; ++l) {
    const uint64_t b = b0 + static_cast<uint64_t>(l);
    c0[l] = static_cast<uint32_t>(b);
    c1[l] = static_cast<uint32_t>(sample);
    c2[l] = static_cast<uint32_t>(keys.step);
    c3[l] = s3 ^ static_cast<uint32_t>(b >> 32);
  }
  uint32_t k0 = keys.key.k0, k1 = keys.key.k1;
  for (int round = 0; round < 10; ++round) {
#pragma omp simd
    for (int l = 0; l < lanes; ++l) {
      const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0[l], p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2[l];
      const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1[l] ^ k0,
                     n2 = static_cast<uint32_t>(p0 >> 32) ^ c3[l] ^ k1;
      c1[l] = static_cast<uint32_t>(p1);
      c3[l] = static_cast<uint32_t>(p0);
      c0[l] = n0;
      c2[l] = n2;
    }
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  for (int l = 0; l < lanes; ++l) {
    out[0][l] = c0[l];
    out[1][l] = c1[l];
    out[2][l] = c2[l];
    out[3][l] = c3[l];
  }
}

}  // namespace

void CpuKernels::dropout(int64_t rows, int64_t row_size, float p, const SampleKeys& keys, const float* x, float* y) {
  const float keep_scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (rows * row_size > cpu_parallel_threshold / 4)
  for (int64_t r = 0; r < rows; ++r) {
    const uint64_t sample = static_cast<uint64_t>(keys.row0 + r);
    const float* xr = x + r * row_size;
    float* yr = y + r * row_size;
    // Draw i is word i % 4 of block i / 4 (philox_uniform's layout): 16 blocks per 64 values.
    uint32_t bits[4][lanes];
    bool keep[4 * lanes];
    for (int64_t i = 0; i < row_size; i += 4 * lanes) {
      philox_blocks(keys, sample, static_cast<uint64_t>(i) / 4, bits);
      for (int l = 0; l < lanes; ++l)
        for (int j = 0; j < 4; ++j) keep[4 * l + j] = uniform_from_bits(bits[j][l]) > p;
      const int64_t n = row_size - i < 4 * lanes ? row_size - i : 4 * lanes;
#pragma omp simd
      for (int64_t e = 0; e < n; ++e) yr[i + e] = keep[e] ? xr[i + e] * keep_scale : 0.0f;  // a select, no branch
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

void CpuKernels::adversarial_start(int64_t rows, int64_t row_size, float epsilon, float fraction, bool random_start,
                                   const SampleKeys& keys, const float* x0, float* x) {
#pragma omp parallel for schedule(static) if (rows * row_size > cpu_parallel_threshold / 4)
  for (int64_t r = 0; r < rows; ++r) {
    const float* x0r = x0 + r * row_size;
    float* xr = x + r * row_size;
    if (!random_start || !adversarial_row_selected(keys, keys.row0 + r, fraction)) {
      for (int64_t e = 0; e < row_size; ++e) xr[e] = x0r[e];
      continue;
    }
    // Draw e is word e % 4 of block e / 4, as in dropout.
    uint32_t bits[4][lanes];
    float u[4 * lanes];
    for (int64_t i = 0; i < row_size; i += 4 * lanes) {
      philox_blocks(keys, static_cast<uint64_t>(keys.row0 + r), static_cast<uint64_t>(i) / 4, bits);
      for (int l = 0; l < lanes; ++l)
        for (int j = 0; j < 4; ++j) u[4 * l + j] = uniform_from_bits(bits[j][l]);
      const int64_t n = row_size - i < 4 * lanes ? row_size - i : 4 * lanes;
#pragma omp simd
      for (int64_t e = 0; e < n; ++e) xr[i + e] = adversarial_start_value(x0r[i + e], epsilon, u[e]);
    }
  }
}

void CpuKernels::adversarial_step(int64_t rows, int64_t row_size, float step_size, float epsilon, float fraction,
                                  const SampleKeys& keys, const float* x0, const float* grad, float* x) {
#pragma omp parallel for schedule(static) if (rows * row_size > cpu_parallel_threshold)
  for (int64_t r = 0; r < rows; ++r) {
    if (!adversarial_row_selected(keys, keys.row0 + r, fraction)) continue;
    const float* x0r = x0 + r * row_size;
    const float* gr = grad + r * row_size;
    float* xr = x + r * row_size;
#pragma omp simd
    for (int64_t e = 0; e < row_size; ++e) xr[e] = adversarial_step_value(xr[e], x0r[e], gr[e], step_size, epsilon);
  }
}

}  // namespace dptrain
