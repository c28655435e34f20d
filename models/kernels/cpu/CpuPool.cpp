// The CPU backend's pooling, max-unpooling and nearest upsampling over NCHW planes, threaded over
// planes. Max pooling has fast paths for windows that never reach padding: no bounds tests, and
// 2x2/2 windows in AVX-512, 16 outputs at a time. Values and argmax equal the general path's bit
// for bit: taps are compared in scan order with a strict, NaN-false `>`.
#include <algorithm>
#include <cstring>
#include <limits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "models/kernels/cpu/CpuInternal.h"

namespace dptrain {

namespace {

bool is_two_by_two(const Conv2dGeometry& g) {
  return g.kernel_h == 2 && g.kernel_w == 2 && g.stride_h == 2 && g.stride_w == 2;
}

// One output row of a 2x2/2 pooling: input rows r0 and r1 (plane row iy and iy + 1).
void max_pool_row_2x2(const float* r0, const float* r1, int64_t iy, int64_t w, int64_t ow, float* y, int32_t* argmax) {
  int64_t ox = 0;
#if defined(__AVX512F__)
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512i lane2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i right = _mm512_set1_epi32(1), down = _mm512_set1_epi32(static_cast<int32_t>(w));
  for (; ox < ow; ox += 16) {
    const int64_t n = std::min<int64_t>(16, ow - ox), span = 2 * n;
    const __mmask16 m_out = static_cast<__mmask16>((1u << n) - 1u);
    const __mmask16 m_lo = static_cast<__mmask16>((1u << std::min<int64_t>(16, span)) - 1u);
    const __mmask16 m_hi = static_cast<__mmask16>((1u << std::max<int64_t>(0, span - 16)) - 1u);
    const float* a = r0 + 2 * ox;
    const float* b = r1 + 2 * ox;
    const __m512 a_lo = _mm512_maskz_loadu_ps(m_lo, a), a_hi = _mm512_maskz_loadu_ps(m_hi, a + 16);
    const __m512 b_lo = _mm512_maskz_loadu_ps(m_lo, b), b_hi = _mm512_maskz_loadu_ps(m_hi, b + 16);
    const __m512 t00 = _mm512_permutex2var_ps(a_lo, even, a_hi), t01 = _mm512_permutex2var_ps(a_lo, odd, a_hi);
    const __m512 t10 = _mm512_permutex2var_ps(b_lo, even, b_hi), t11 = _mm512_permutex2var_ps(b_lo, odd, b_hi);
    const __m512i i00 = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(iy * w + 2 * ox)), lane2);
    const __m512i i10 = _mm512_add_epi32(i00, down);
    __m512 best = t00;
    __m512i index = i00;
    __mmask16 gt = _mm512_cmp_ps_mask(t01, best, _CMP_GT_OQ);
    best = _mm512_mask_blend_ps(gt, best, t01);
    index = _mm512_mask_blend_epi32(gt, index, _mm512_add_epi32(i00, right));
    gt = _mm512_cmp_ps_mask(t10, best, _CMP_GT_OQ);
    best = _mm512_mask_blend_ps(gt, best, t10);
    index = _mm512_mask_blend_epi32(gt, index, i10);
    gt = _mm512_cmp_ps_mask(t11, best, _CMP_GT_OQ);
    best = _mm512_mask_blend_ps(gt, best, t11);
    index = _mm512_mask_blend_epi32(gt, index, _mm512_add_epi32(i10, right));
    _mm512_mask_storeu_ps(y + ox, m_out, best);
    _mm512_mask_storeu_epi32(argmax + ox, m_out, index);
  }
#endif
  for (; ox < ow; ++ox) {
    const int64_t ix = 2 * ox;
    float best = r0[ix];
    int32_t where = static_cast<int32_t>(iy * w + ix);
    if (r0[ix + 1] > best) {
      best = r0[ix + 1];
      where = static_cast<int32_t>(iy * w + ix + 1);
    }
    if (r1[ix] > best) {
      best = r1[ix];
      where = static_cast<int32_t>((iy + 1) * w + ix);
    }
    if (r1[ix + 1] > best) {
      best = r1[ix + 1];
      where = static_cast<int32_t>((iy + 1) * w + ix + 1);
    }
    y[ox] = best;
    argmax[ox] = where;
  }
}

// One output row of the 2x2/2 backward: writes input rows r0 and r1 (columns [0, 2 ow)) whole.
// `base` is the plane index of r0[0].
void max_pool_backward_row_2x2(const float* dy, const int32_t* argmax, int64_t base, int64_t w, int64_t ow, float* r0,
                               float* r1) {
  int64_t ox = 0;
#if defined(__AVX512F__)
  const __m512i lane2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i lo_pairs = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi_pairs = _mm512_add_epi32(lo_pairs, _mm512_set1_epi32(8));
  for (; ox < ow; ox += 16) {
    const int64_t n = std::min<int64_t>(16, ow - ox), span = 2 * n;
    const __mmask16 m_in = static_cast<__mmask16>((1u << n) - 1u);
    const __mmask16 m_lo = static_cast<__mmask16>((1u << std::min<int64_t>(16, span)) - 1u);
    const __mmask16 m_hi = static_cast<__mmask16>((1u << std::max<int64_t>(0, span - 16)) - 1u);
    const __m512 v = _mm512_add_ps(_mm512_setzero_ps(), _mm512_maskz_loadu_ps(m_in, dy + ox));
    const __m512i i00 = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(base + 2 * ox)), lane2);
    const __m512i at = _mm512_maskz_loadu_epi32(m_in, argmax + ox);
    const __m512i one = _mm512_set1_epi32(1), down = _mm512_set1_epi32(static_cast<int32_t>(w));
    const __m512 v00 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, i00), v);
    const __m512 v01 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, _mm512_add_epi32(i00, one)), v);
    const __m512i i10 = _mm512_add_epi32(i00, down);
    const __m512 v10 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, i10), v);
    const __m512 v11 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, _mm512_add_epi32(i10, one)), v);
    float* a = r0 + 2 * ox;
    float* b = r1 + 2 * ox;
    _mm512_mask_storeu_ps(a, m_lo, _mm512_permutex2var_ps(v00, lo_pairs, v01));
    _mm512_mask_storeu_ps(a + 16, m_hi, _mm512_permutex2var_ps(v00, hi_pairs, v01));
    _mm512_mask_storeu_ps(b, m_lo, _mm512_permutex2var_ps(v10, lo_pairs, v11));
    _mm512_mask_storeu_ps(b + 16, m_hi, _mm512_permutex2var_ps(v10, hi_pairs, v11));
  }
#endif
  for (; ox < ow; ++ox) {
    const float v = 0.0f + dy[ox];
    const int64_t tap = argmax[ox] - (base + 2 * ox);
    r0[2 * ox] = tap == 0 ? v : 0.0f;
    r0[2 * ox + 1] = tap == 1 ? v : 0.0f;
    r1[2 * ox] = tap == w ? v : 0.0f;
    r1[2 * ox + 1] = tap == w + 1 ? v : 0.0f;
  }
}

}  // namespace

void cpu_max_pool_unpadded(int64_t planes, const Conv2dGeometry& g, const float* x, float* y, int32_t* argmax) {
  const int64_t oh = g.out_h(), ow = g.out_w(), w = g.width;
  const bool two_by_two = is_two_by_two(g);
#pragma omp parallel for schedule(static) if (planes * oh * ow * g.kernel_h * g.kernel_w > cpu_parallel_threshold)
  for (int64_t p = 0; p < planes; ++p) {
    const float* in = x + p * g.height * w;
    float* yp = y + p * oh * ow;
    int32_t* ap = argmax + p * oh * ow;
    for (int64_t oy = 0; oy < oh; ++oy) {
      const int64_t iy = oy * g.stride_h;
      if (two_by_two) {
        max_pool_row_2x2(in + iy * w, in + (iy + 1) * w, iy, w, ow, yp + oy * ow, ap + oy * ow);
        continue;
      }
      for (int64_t ox = 0; ox < ow; ++ox) {
        const int64_t ix = ox * g.stride_w;
        float best = in[iy * w + ix];
        int32_t where = static_cast<int32_t>(iy * w + ix);
        for (int64_t ki = 0; ki < g.kernel_h; ++ki)
          for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
            const int64_t at = (iy + ki) * w + ix + kj;
            if (in[at] > best) {
              best = in[at];
              where = static_cast<int32_t>(at);
            }
          }
        yp[oy * ow + ox] = best;
        ap[oy * ow + ox] = where;
      }
    }
  }
}

bool cpu_max_pool_backward_2x2(int64_t planes, const Conv2dGeometry& g, const float* dy, const int32_t* argmax,
                               float* dx) {
  if (!is_two_by_two(g) || g.pad_h || g.pad_w || g.dilation_h != 1 || g.dilation_w != 1) return false;
  const int64_t oh = g.out_h(), ow = g.out_w(), w = g.width, hw = g.height * w;
  // Windows tile the plane without overlap, so each input gets at most one gradient: write every
  // window whole (0 + dy at the argmax, as the general path's zero fill and add give, else 0)
  // instead of zeroing the plane and scattering. Rows and columns no window covers are zeroed.
#pragma omp parallel for schedule(static) if (planes * hw > cpu_parallel_threshold)
  for (int64_t p = 0; p < planes; ++p) {
    float* d = dx + p * hw;
    const float* dyp = dy + p * oh * ow;
    const int32_t* ap = argmax + p * oh * ow;
    for (int64_t oy = 0; oy < oh; ++oy) {
      float* r0 = d + 2 * oy * w;
      max_pool_backward_row_2x2(dyp + oy * ow, ap + oy * ow, 2 * oy * w, w, ow, r0, r0 + w);
      if (2 * ow < w) {
        r0[w - 1] = 0.0f;
        r0[2 * w - 1] = 0.0f;
      }
    }
    if (2 * oh < g.height) std::memset(d + 2 * oh * w, 0, static_cast<size_t>((g.height - 2 * oh) * w) * sizeof(float));
  }
  return true;
}

void CpuKernels::max_pool(int64_t n, const Conv2dGeometry& g, const float* x, float* y, int32_t* argmax) {
  const int64_t oh = g.out_h(), ow = g.out_w(), planes = n * g.channels;
  if (g.pad_h == 0 && g.pad_w == 0 && g.dilation_h == 1 && g.dilation_w == 1)
    return cpu_max_pool_unpadded(planes, g, x, y, argmax);
#pragma omp parallel for schedule(static) if (planes * oh * ow * g.kernel_h * g.kernel_w > cpu_parallel_threshold)
  for (int64_t p = 0; p < planes; ++p) {
    const float* in = x + p * g.height * g.width;
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) {
        float best = -std::numeric_limits<float>::infinity();
        int32_t where = -1;
        for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
          int64_t iy = oy * g.stride_h - g.pad_h + ki * g.dilation_h;
          if (iy < 0 || iy >= g.height) continue;
          for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
            int64_t ix = ox * g.stride_w - g.pad_w + kj * g.dilation_w;
            if (ix < 0 || ix >= g.width) continue;
            float v = in[iy * g.width + ix];
            if (v > best || where < 0) {
              best = v;
              where = static_cast<int32_t>(iy * g.width + ix);
            }
          }
        }
        y[(p * oh + oy) * ow + ox] = best;
        argmax[(p * oh + oy) * ow + ox] = where;
      }
  }
}

void CpuKernels::max_pool_backward(int64_t n, const Conv2dGeometry& g, const float* dy, const int32_t* argmax,
                                   float* dx) {
  const int64_t oh = g.out_h(), ow = g.out_w(), planes = n * g.channels, hw = g.height * g.width;
  if (cpu_max_pool_backward_2x2(planes, g, dy, argmax, dx)) return;
  std::memset(dx, 0, static_cast<size_t>(planes * hw) * sizeof(float));
#pragma omp parallel for schedule(static) if (planes * oh * ow > cpu_parallel_threshold)
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t o = 0; o < oh * ow; ++o) {
      int32_t where = argmax[p * oh * ow + o];
      if (where >= 0) dx[p * hw + where] += dy[p * oh * ow + o];
    }
}

void CpuKernels::avg_pool(int64_t n, const Conv2dGeometry& g, const float* x, float* y) {
  const int64_t oh = g.out_h(), ow = g.out_w(), planes = n * g.channels;
  const float inv = 1.0f / static_cast<float>(g.kernel_h * g.kernel_w);  // padding counts (PyTorch default)
#pragma omp parallel for schedule(static) if (planes * oh * ow * g.kernel_h * g.kernel_w > cpu_parallel_threshold)
  for (int64_t p = 0; p < planes; ++p) {
    const float* in = x + p * g.height * g.width;
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) {
        float s = 0.0f;
        for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
          int64_t iy = oy * g.stride_h - g.pad_h + ki * g.dilation_h;
          if (iy < 0 || iy >= g.height) continue;
          for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
            int64_t ix = ox * g.stride_w - g.pad_w + kj * g.dilation_w;
            if (ix >= 0 && ix < g.width) s += in[iy * g.width + ix];
          }
        }
        y[(p * oh + oy) * ow + ox] = s * inv;
      }
  }
}

void CpuKernels::avg_pool_backward(int64_t n, const Conv2dGeometry& g, const float* dy, float* dx) {
  const int64_t oh = g.out_h(), ow = g.out_w(), planes = n * g.channels, hw = g.height * g.width;
  const float inv = 1.0f / static_cast<float>(g.kernel_h * g.kernel_w);
  std::memset(dx, 0, static_cast<size_t>(planes * hw) * sizeof(float));
#pragma omp parallel for schedule(static) if (planes * oh * ow > cpu_parallel_threshold)
  for (int64_t p = 0; p < planes; ++p) {
    float* d = dx + p * hw;
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) {
        float v = dy[(p * oh + oy) * ow + ox] * inv;
        for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
          int64_t iy = oy * g.stride_h - g.pad_h + ki * g.dilation_h;
          if (iy < 0 || iy >= g.height) continue;
          for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
            int64_t ix = ox * g.stride_w - g.pad_w + kj * g.dilation_w;
            if (ix >= 0 && ix < g.width) d[iy * g.width + ix] += v;
          }
        }
      }
  }
}

void CpuKernels::max_unpool(int64_t planes, int64_t pooled, int64_t hw, const float* x, const int32_t* argmax,
                            float* y) {
  std::memset(y, 0, static_cast<size_t>(planes * hw) * sizeof(float));
#pragma omp parallel for schedule(static) if (planes * pooled > cpu_parallel_threshold)
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t o = 0; o < pooled; ++o) {
      int32_t where = argmax[p * pooled + o];
      if (where >= 0) y[p * hw + where] += x[p * pooled + o];
    }
}

void CpuKernels::max_unpool_backward(int64_t planes, int64_t pooled, int64_t hw, const float* dy, const int32_t* argmax,
                                     float* dx) {
#pragma omp parallel for schedule(static) if (planes * pooled > cpu_parallel_threshold)
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t o = 0; o < pooled; ++o) {
      int32_t where = argmax[p * pooled + o];
      dx[p * pooled + o] = where >= 0 ? dy[p * hw + where] : 0.0f;
    }
}

void CpuKernels::upsample_nearest(int64_t planes, int64_t h, int64_t w, int64_t sh, int64_t sw, const float* x,
                                  float* y) {
  const int64_t ow = w * sw;
#pragma omp parallel for schedule(static) if (planes * h * w * sh * sw > cpu_parallel_threshold)
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t i = 0; i < h; ++i) {
      const float* in = x + (p * h + i) * w;
      float* row = y + (p * h + i) * sh * ow;
      for (int64_t j = 0; j < w; ++j)
        for (int64_t b = 0; b < sw; ++b) row[j * sw + b] = in[j];
      for (int64_t a = 1; a < sh; ++a) std::memcpy(row + a * ow, row, static_cast<size_t>(ow) * sizeof(float));
    }
}

void CpuKernels::upsample_nearest_backward(int64_t planes, int64_t h, int64_t w, int64_t sh, int64_t sw,
                                           const float* dy, float* dx) {
  const int64_t ow = w * sw;
#pragma omp parallel for schedule(static) if (planes * h * w * sh * sw > cpu_parallel_threshold)
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t i = 0; i < h; ++i) {
      const float* block = dy + (p * h + i) * sh * ow;
      float* out = dx + (p * h + i) * w;
      for (int64_t j = 0; j < w; ++j) {
        float s = 0.0f;
        for (int64_t a = 0; a < sh; ++a)
          for (int64_t b = 0; b < sw; ++b) s += block[a * ow + j * sw + b];
        out[j] = s;
      }
    }
}

}  // namespace dptrain
