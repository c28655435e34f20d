// The CPU backend's vector operations: plain loops for the compiler to vectorize, threaded over
// fixed blocks only where they are long; sums are float blocks added in double in a fixed order.
#include <algorithm>
#include <cstring>

#include "models/kernels/cpu/CpuInternal.h"

namespace dptrain {

// Large fills and copies (zeroing the gradients each step) are split over the threads in
// blocks of 64 KiB; one thread alone does not reach the memory bandwidth of the node.
void CpuKernels::fill(int64_t n, float value, float* x) {
  constexpr int64_t block = 1 << 14;
#pragma omp parallel for schedule(static) if (n > 64 * block)
  for (int64_t b = 0; b < n; b += block) {
    const int64_t len = std::min(block, n - b);
    if (value == 0.0f)
      std::memset(x + b, 0, static_cast<size_t>(len) * sizeof(float));
    else
      std::fill(x + b, x + b + len, value);
  }
}

void CpuKernels::copy(int64_t n, const float* x, float* y) {
  if (x == y) return;
  constexpr int64_t block = 1 << 14;
#pragma omp parallel for schedule(static) if (n > 64 * block)
  for (int64_t b = 0; b < n; b += block)
    std::memcpy(y + b, x + b, static_cast<size_t>(std::min(block, n - b)) * sizeof(float));
}

void CpuKernels::copy_2d(int64_t rows, int64_t cols, const float* src, int64_t src_ld, float* dst, int64_t dst_ld) {
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + r * dst_ld, src + r * src_ld, static_cast<size_t>(cols) * sizeof(float));
}

void CpuKernels::axpy(int64_t n, float a, const float* x, float* y) {
#pragma omp parallel for simd schedule(static) if (n > cpu_parallel_threshold)
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void CpuKernels::scale(int64_t n, float a, float* x) {
#pragma omp parallel for simd schedule(static) if (n > cpu_parallel_threshold)
  for (int64_t i = 0; i < n; ++i) x[i] *= a;
}

void CpuKernels::add(int64_t n, const float* a, const float* b, float* y) {
#pragma omp parallel for simd schedule(static) if (n > cpu_parallel_threshold)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

void CpuKernels::multiply(int64_t n, const float* a, const float* b, float* y) {
#pragma omp parallel for simd schedule(static) if (n > cpu_parallel_threshold)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i];
}

double CpuKernels::sum_squares(int64_t n, const float* x) {
  // Blocks of float sums added in double: vectorizes, stays accurate, same order every run.
  double total = 0.0;
  for (int64_t b = 0; b < n; b += 1024) {
    int64_t e = std::min(n, b + 1024);
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = b; i < e; ++i) s += x[i] * x[i];
    total += s;
  }
  return total;
}

double CpuKernels::sum(int64_t n, const float* x) {
  double total = 0.0;
  for (int64_t b = 0; b < n; b += 1024) {
    int64_t e = std::min(n, b + 1024);
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = b; i < e; ++i) s += x[i];
    total += s;
  }
  return total;
}

}  // namespace dptrain
