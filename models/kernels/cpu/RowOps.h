// Copies and adds over blocks of short rows (convolution rows are often 7 to 28 floats): with
// AVX-512 a row of up to 16 floats is one masked load and store, where compiled loops finish each
// row one float at a time. Masked-off lanes are never touched, so rows may end anywhere.
#pragma once

#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace dptrain::row_ops {

// dst[r * dst_stride + i] = src[r * src_stride + i] for r < rows, i < n
inline void copy_rows(float* __restrict dst, int64_t dst_stride, const float* __restrict src, int64_t src_stride,
                      int64_t rows, int64_t n) {
  if (n <= 0) return;
#if defined(__AVX512F__)
  if (n <= 16) {
    const __mmask16 m = static_cast<__mmask16>((1u << n) - 1u);
    for (int64_t r = 0; r < rows; ++r, dst += dst_stride, src += src_stride)
      _mm512_mask_storeu_ps(dst, m, _mm512_maskz_loadu_ps(m, src));
    return;
  }
#endif
  for (int64_t r = 0; r < rows; ++r, dst += dst_stride, src += src_stride)
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}

// dst[r * dst_stride + i] += src[r * src_stride + i] for r < rows, i < n
inline void add_rows(float* __restrict dst, int64_t dst_stride, const float* __restrict src, int64_t src_stride,
                     int64_t rows, int64_t n) {
  if (n <= 0) return;
#if defined(__AVX512F__)
  if (n <= 16) {
    const __mmask16 m = static_cast<__mmask16>((1u << n) - 1u);
    for (int64_t r = 0; r < rows; ++r, dst += dst_stride, src += src_stride)
      _mm512_mask_storeu_ps(dst, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst), _mm512_maskz_loadu_ps(m, src)));
    return;
  }
#endif
  for (int64_t r = 0; r < rows; ++r, dst += dst_stride, src += src_stride)
    for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

// dst[r * dst_stride + i] = 0 for r < rows, i < n
inline void zero_rows(float* __restrict dst, int64_t dst_stride, int64_t rows, int64_t n) {
  if (n <= 0) return;
  for (int64_t r = 0; r < rows; ++r, dst += dst_stride)
    for (int64_t i = 0; i < n; ++i) dst[i] = 0.0f;
}

}  // namespace dptrain::row_ops
