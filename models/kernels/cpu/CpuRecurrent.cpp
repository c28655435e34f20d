// The CPU backend's embedding and LSTM and GRU cells. A cell runs one vectorized loop per row, with its
// own float e^x for the gates (gate_exp, CpuMath.h); this file is compiled with -fno-trapping-math for
// those loops (models/CMakeLists.txt).
#include <bit>
#include <cmath>
#include <cstring>
#include <string>

#include "models/core/Error.h"
#include "models/kernels/cpu/CpuInternal.h"
#include "models/kernels/cpu/CpuMath.h"

namespace dptrain {

namespace {

// One row of the LSTM cell (gates i, f, g, o side by side), a loop the compiler vectorizes.
template <bool HasPrev>
void lstm_row(int64_t hidden, float* gi, const float* cp, float* c, float* h) {
  float *gf = gi + hidden, *gg = gi + 2 * hidden, *go = gi + 3 * hidden;
#pragma omp simd
  for (int64_t j = 0; j < hidden; ++j) {
    const float i = gate_sigmoid(gi[j]), f = gate_sigmoid(gf[j]);
    const float g = gate_tanh(gg[j]), o = gate_sigmoid(go[j]);
    const float cv = HasPrev ? f * cp[j] + i * g : i * g;
    gi[j] = i;
    gf[j] = f;
    gg[j] = g;
    go[j] = o;
    c[j] = cv;
    h[j] = o * gate_tanh(cv);
  }
}

template <bool HasPrev>
void lstm_row_backward(int64_t hidden, const float* gi, const float* cp, const float* c, const float* dh, float* dc,
                       float* di) {
  const float *gf = gi + hidden, *gg = gi + 2 * hidden, *go = gi + 3 * hidden;
  float *df = di + hidden, *dg = di + 2 * hidden, *dout = di + 3 * hidden;
#pragma omp simd
  for (int64_t j = 0; j < hidden; ++j) {
    const float tc = gate_tanh(c[j]), prev = HasPrev ? cp[j] : 0.0f;
    const float dcv = dc[j] + dh[j] * go[j] * (1.0f - tc * tc);
    dout[j] = dh[j] * tc * go[j] * (1.0f - go[j]);
    di[j] = dcv * gg[j] * gi[j] * (1.0f - gi[j]);
    df[j] = dcv * prev * gf[j] * (1.0f - gf[j]);
    dg[j] = dcv * gi[j] * (1.0f - gg[j] * gg[j]);
    dc[j] = dcv * gf[j];
  }
}

}  // namespace

void CpuKernels::embedding(int64_t count, int64_t dim, int64_t vocab, const float* ids, const float* weight, float* y) {
  for (int64_t i = 0; i < count; ++i) {
    const float v = std::nearbyint(ids[i]);
    if (!(v >= 0.0f && v < static_cast<float>(vocab)))
      fail_input("embedding: id " + std::to_string(ids[i]) + " is outside [0, " + std::to_string(vocab) + ")");
    std::memcpy(y + i * dim, weight + static_cast<int64_t>(v) * dim, static_cast<size_t>(dim) * sizeof(float));
  }
}

void CpuKernels::embedding_backward(int64_t count, int64_t dim, const float* ids, const float* dy, float* dweight) {
  for (int64_t i = 0; i < count; ++i) {
    float* w = dweight + static_cast<int64_t>(std::nearbyint(ids[i])) * dim;
    const float* d = dy + i * dim;
#pragma omp simd
    for (int64_t j = 0; j < dim; ++j) w[j] += d[j];
  }
}

void CpuKernels::lstm_cell(int64_t n, int64_t hidden, float* gates, const float* c_prev, float* c, float* h) {
#pragma omp parallel for schedule(static) if (n * hidden * 8 > cpu_parallel_threshold)
  for (int64_t r = 0; r < n; ++r) {
    const int64_t at = r * hidden;
    if (c_prev)
      lstm_row<true>(hidden, gates + 4 * at, c_prev + at, c + at, h + at);
    else
      lstm_row<false>(hidden, gates + 4 * at, nullptr, c + at, h + at);
  }
}

void CpuKernels::lstm_cell_backward(int64_t n, int64_t hidden, const float* gates, const float* c_prev, const float* c,
                                    const float* dh, float* dc, float* dgates) {
#pragma omp parallel for schedule(static) if (n * hidden * 8 > cpu_parallel_threshold)
  for (int64_t r = 0; r < n; ++r) {
    const int64_t at = r * hidden;
    if (c_prev)
      lstm_row_backward<true>(hidden, gates + 4 * at, c_prev + at, c + at, dh + at, dc + at, dgates + 4 * at);
    else
      lstm_row_backward<false>(hidden, gates + 4 * at, nullptr, c + at, dh + at, dc + at, dgates + 4 * at);
  }
}

}  // namespace dptrain

namespace dptrain {

namespace {

// One row of the GRU cell: gx holds r, z, n side by side (pre-activations in, activations out).
template <bool HasPrev>
void gru_row(int64_t hidden, float* gr, const float* hr, const float* hp, float* h) {
  float *gz = gr + hidden, *gn = gr + 2 * hidden;
  const float *hz = hr + hidden, *hn = hr + 2 * hidden;
#pragma omp simd
  for (int64_t j = 0; j < hidden; ++j) {
    const float r = gate_sigmoid(gr[j] + hr[j]), z = gate_sigmoid(gz[j] + hz[j]);
    const float c = gate_tanh(gn[j] + r * hn[j]);
    gr[j] = r;
    gz[j] = z;
    gn[j] = c;
    h[j] = HasPrev ? (1.0f - z) * c + z * hp[j] : (1.0f - z) * c;
  }
}

template <bool HasPrev>
void gru_row_backward(int64_t hidden, const float* gr, const float* hr, const float* hp, const float* dh, float* dxr,
                      float* dhr, float* dhp) {
  const float *gz = gr + hidden, *gn = gr + 2 * hidden, *hn = hr + 2 * hidden;
  float *dxz = dxr + hidden, *dxn = dxr + 2 * hidden, *dhz = dhr + hidden, *dhn = dhr + 2 * hidden;
#pragma omp simd
  for (int64_t j = 0; j < hidden; ++j) {
    const float r = gr[j], z = gz[j], c = gn[j], prev = HasPrev ? hp[j] : 0.0f;
    const float dn = dh[j] * (1.0f - z) * (1.0f - c * c);
    const float dz = dh[j] * (prev - c) * z * (1.0f - z);
    const float dr = dn * hn[j] * r * (1.0f - r);
    dxr[j] = dr;
    dxz[j] = dz;
    dxn[j] = dn;
    dhr[j] = dr;
    dhz[j] = dz;
    dhn[j] = dn * r;
    if (HasPrev) dhp[j] = dh[j] * z;
  }
}

}  // namespace

void CpuKernels::gru_cell(int64_t n, int64_t hidden, float* gx, const float* gh, const float* h_prev, float* h) {
#pragma omp parallel for schedule(static) if (n * hidden * 8 > cpu_parallel_threshold)
  for (int64_t r = 0; r < n; ++r) {
    const int64_t at = r * hidden;
    if (h_prev)
      gru_row<true>(hidden, gx + 3 * at, gh + 3 * at, h_prev + at, h + at);
    else
      gru_row<false>(hidden, gx + 3 * at, gh + 3 * at, nullptr, h + at);
  }
}

void CpuKernels::gru_cell_backward(int64_t n, int64_t hidden, const float* gx, const float* gh, const float* h_prev,
                                   const float* dh, float* dgx, float* dgh, float* dh_prev) {
#pragma omp parallel for schedule(static) if (n * hidden * 8 > cpu_parallel_threshold)
  for (int64_t r = 0; r < n; ++r) {
    const int64_t at = r * hidden;
    if (h_prev)
      gru_row_backward<true>(hidden, gx + 3 * at, gh + 3 * at, h_prev + at, dh + at, dgx + 3 * at, dgh + 3 * at,
                             dh_prev + at);
    else
      gru_row_backward<false>(hidden, gx + 3 * at, gh + 3 * at, nullptr, dh + at, dgx + 3 * at, dgh + 3 * at, nullptr);
  }
}

}  // namespace dptrain
