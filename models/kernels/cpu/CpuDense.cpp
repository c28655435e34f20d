// The CPU backend's dense layer products. The forward has two layouts: y = x w^T followed by the
// bias pass, or y^T = w x^T transposed back in 16x16 AVX-512 tiles that also add the bias and
// apply ReLU, so the transpose takes the place of the bias pass. Which layout and which engine
// (OpenBLAS, oneDNN, or our unpacked product with x transposed into a workspace first) is the
// measured plan's choice per shape (CpuPlan.h); none wins everywhere (on an AMD EPYC the unpacked
// product beat OpenBLAS's Haswell kernels by 10-20 %, on an Intel Xeon it ran at 40 % of them).
#include <omp.h>

#include <algorithm>

#if defined(__AVX512F__)
// GCC 12 warns inside its own unpack intrinsics (their undefined pass-through operand).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

#include "models/core/Tensor.h"
#include "models/kernels/cpu/CpuInternal.h"

namespace dptrain {

namespace {

struct DenseState {
  Workspace<float> transposed;  // y^T [out, rows]
  Workspace<float> input_t;     // x^T [in, rows]
};
const char dense_tag = 0;

inline float bias_act(Activation act, float v, float b) {
  v += b;
  return act == Activation::relu ? (v > 0.0f ? v : 0.0f) : v;
}

#if defined(__AVX512F__)
// Transposes 16 rows of 16 floats held in r[0..15] in place.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
    r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
    r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
}

// xt[i, r] = x[r, i] for input columns [i0, i1) (rows x in -> in x rows).
void transpose_input(int64_t rows, int64_t in, int64_t i0, int64_t i1, const float* x, float* xt) {
  int64_t i = i0;
  for (; i + 16 <= i1; i += 16) {
    int64_t r = 0;
    for (; r + 16 <= rows; r += 16) {
      __m512 v[16];
      for (int j = 0; j < 16; ++j) v[j] = _mm512_loadu_ps(x + (r + j) * in + i);
      transpose16(v);
      for (int j = 0; j < 16; ++j) _mm512_storeu_ps(xt + (i + j) * rows + r, v[j]);
    }
    for (; r < rows; ++r)
      for (int64_t j = i; j < i + 16; ++j) xt[j * rows + r] = x[r * in + j];
  }
  for (; i < i1; ++i)
    for (int64_t r = 0; r < rows; ++r) xt[i * rows + r] = x[r * in + i];
}

#endif

// y[r, o] = act(yt[o, r] + bias[o]) for output columns [o0, o1): identity or ReLU.
void transpose_bias_relu(int64_t rows, int64_t out, int64_t o0, int64_t o1, const float* yt, const float* bias,
                         Activation act, float* y) {
  int64_t o = o0;
#if defined(__AVX512F__)
  const __m512 zero = _mm512_setzero_ps();
  for (; o + 16 <= o1; o += 16) {
    const __m512 b = bias ? _mm512_loadu_ps(bias + o) : zero;
    int64_t r = 0;
    for (; r + 16 <= rows; r += 16) {
      __m512 v[16];
      for (int i = 0; i < 16; ++i) v[i] = _mm512_loadu_ps(yt + (o + i) * rows + r);
      transpose16(v);
      for (int i = 0; i < 16; ++i) {
        __m512 s = _mm512_add_ps(v[i], b);
        if (act == Activation::relu) s = _mm512_max_ps(s, zero);  // NaN and -0 give +0, as v > 0 ? v : 0
        _mm512_storeu_ps(y + (r + i) * out + o, s);
      }
    }
    for (; r < rows; ++r)
      for (int64_t i = o; i < o + 16; ++i) y[r * out + i] = bias_act(act, yt[i * rows + r], bias ? bias[i] : 0.0f);
  }
#endif
  for (; o < o1; ++o)
    for (int64_t r = 0; r < rows; ++r) y[r * out + o] = bias_act(act, yt[o * rows + r], bias ? bias[o] : 0.0f);
}

}  // namespace

void cpu_dense_forward_as(ProductChoice choice, KernelBackend& k, int64_t rows, int64_t in, int64_t out, const float* x,
                          const float* w, const float* bias, Activation act, float slope, float* y,
                          LayerScratch& scratch) {
  const bool unpacked = choice.engine == CpuEngine::unpacked && cpu_unpacked_gemm_available();
  if (!(choice.transposed || unpacked) || !cpu_dense_fuses(act) || rows <= 0) {
    cpu_gemm_as(choice.engine, false, true, rows, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
    k.bias_activation(act, slope, rows, out, 1, bias, y);
    return;
  }
  DenseState& st = scratch.get<DenseState>(&dense_tag);
  float* yt = st.transposed.reserve(out * rows, Device::cpu);
  // The transposes go over the threads in blocks of 64 columns; small layers stay on one.
  const int64_t blocks = (out + 63) / 64;
  const bool threaded = rows * out > (1 << 15);
#if defined(__AVX512F__)
  if (unpacked) {
    float* xt = st.input_t.reserve(in * rows, Device::cpu);
    const int64_t in_blocks = (in + 63) / 64;
#pragma omp parallel for schedule(static) if (threaded)
    for (int64_t blk = 0; blk < in_blocks; ++blk)
      transpose_input(rows, in, blk * 64, std::min(in, blk * 64 + 64), x, xt);
    cpu_unpacked_gemm(out, rows, in, w, in, xt, rows, yt, rows);
  } else
#endif
    cpu_gemm_as(choice.engine, false, true, out, rows, in, 1.0f, w, in, x, in, 0.0f, yt, rows);
#pragma omp parallel for schedule(static) if (threaded)
  for (int64_t blk = 0; blk < blocks; ++blk)
    transpose_bias_relu(rows, out, blk * 64, std::min(out, blk * 64 + 64), yt, bias, act, y);
}

void cpu_dense_forward(KernelBackend& k, int64_t rows, int64_t in, int64_t out, const float* x, const float* w,
                       const float* bias, Activation act, float slope, float* y, LayerScratch& scratch) {
  // An activation the transpose cannot fuse leaves one layout: y = x w^T, a plain product.
  const ProductKey key = cpu_dense_fuses(act)
                             ? ProductKey{ProductKind::dense_forward, false, false, false, rows, in, out}
                             : ProductKey{ProductKind::gemm, false, true, false, rows, out, in};
  cpu_dense_forward_as(cpu_product_choice(key), k, rows, in, out, x, w, bias, act, slope, y, scratch);
}

void cpu_dense_input_grad_as(CpuEngine engine, int64_t rows, int64_t in, int64_t out, const float* dz, const float* w,
                             float* dx) {
  cpu_gemm_as(engine, false, false, rows, in, out, 1.0f, dz, out, w, in, 0.0f, dx, in);
}

void cpu_dense_input_grad(int64_t rows, int64_t in, int64_t out, const float* dz, const float* w, float* dx) {
  const ProductKey key{ProductKind::dense_input_grad, false, false, false, rows, in, out};
  cpu_dense_input_grad_as(cpu_product_choice(key).engine, rows, in, out, dz, w, dx);
}

void CpuKernels::dense_forward(int64_t rows, int64_t in, int64_t out, const float* x, const float* w, const float* bias,
                               Activation act, float slope, float* y, LayerScratch& scratch) {
  cpu_dense_forward(*this, rows, in, out, x, w, bias, act, slope, y, scratch);
}

void CpuKernels::dense_backward_input(int64_t rows, int64_t in, int64_t out, const float* dz, const float* w,
                                      float* dx) {
  cpu_dense_input_grad(rows, in, out, dz, w, dx);
}

void CpuKernels::row_bias_grad(int64_t rows, int64_t cols, const float* dy, float* dbias) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* d = dy + r * cols;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) dbias[c] += d[c];
  }
}

}  // namespace dptrain
