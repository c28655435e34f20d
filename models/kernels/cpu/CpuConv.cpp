// The CPU backend's batched convolution: im2col + GEMM per sample as in the reference, samples
// split over the threads with per-thread buffers; per-thread weight and bias gradient sums join in
// thread order, so results repeat bitwise for a thread count (and equal the reference on one).
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "models/core/Tensor.h"
#include "models/kernels/cpu/CpuInternal.h"

namespace dptrain {

namespace {

struct CpuConvState {
  Workspace<float> col, dcol, dz, partial;  // per thread: columns, column gradients, dz, dw and dbias sums
  // The column buffers' padding positions hold zeros from the first im2col and are never written
  // otherwise (the geometry is the layer's), so later calls skip them; reset when col moves.
  const float* zeroed_col = nullptr;
  int64_t zeroed_size = 0;

  float* columns(int64_t size) {
    float* p = col.reserve(size, Device::cpu);
    if (p != zeroed_col || size > zeroed_size) {
      std::memset(p, 0, static_cast<size_t>(size) * sizeof(float));
      zeroed_col = p;
      zeroed_size = size;
    }
    return p;
  }
};
const char cpu_conv_tag = 0;

struct ConvDims {
  int64_t groups, oc_g, out_hw, col_rows, col_size, in_size, out_size, w_size;
  bool direct;  // 1x1, stride 1, unpadded: a sample is its own column matrix
};

ConvDims dims_of(const Conv2dSpec& c) {
  const Conv2dGeometry& g = c.geometry;
  ConvDims d;
  d.groups = c.groups;
  d.oc_g = c.out_channels / c.groups;
  d.out_hw = g.out_h() * g.out_w();
  d.col_rows = g.channels / c.groups * g.kernel_h * g.kernel_w;
  d.col_size = d.col_rows * c.groups * d.out_hw;
  d.in_size = g.channels * g.height * g.width;
  d.out_size = c.out_channels * d.out_hw;
  d.w_size = c.out_channels * d.col_rows;
  d.direct = g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
  return d;
}

// Threads for a batch of n samples: one when already inside a parallel region.
int conv_threads(int64_t n) {
  if (omp_in_parallel()) return 1;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), n)));
}

// Samples [first, last) of thread t of `threads`: contiguous blocks in sample order.
inline int64_t block_start(int64_t n, int t, int threads) { return n * t / threads; }

// dz = dout * act'(y) over one sample on the calling thread. ReLU and leaky ReLU are written out
// here: the backend's activation_backward, entered from inside this parallel region, runs its
// loop unvectorized. Same arithmetic as activation_backward, so the same bits.
void activation_grad(KernelBackend& k, Activation act, float slope, int64_t n, const float* __restrict y,
                     const float* __restrict dout, float* __restrict dz) {
  if (act == Activation::relu) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dz[i] = dout[i] * (y[i] > 0.0f ? 1.0f : 0.0f);
  } else if (act == Activation::leaky_relu) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dz[i] = dout[i] * (y[i] > 0.0f ? 1.0f : slope);
  } else {
    k.activation_backward(act, slope, n, y, dout, dz);
  }
}

}  // namespace

// Bias and activation are applied to each sample right after its GEMM, while it is in cache.
void cpu_conv2d_forward(KernelBackend& k, const Conv2dSpec& c, int64_t n, const float* x, const float* w,
                        const float* bias, Activation act, float slope, float* y, LayerScratch& scratch) {
  const ConvDims d = dims_of(c);
  const int threads = conv_threads(n);
  auto& st = scratch.get<CpuConvState>(&cpu_conv_tag);
  float* cols = d.direct ? nullptr : st.columns(d.col_size * threads);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int t = omp_get_thread_num();
    float* col_buf = d.direct ? nullptr : cols + t * d.col_size;
    for (int64_t s = block_start(n, t, threads); s < block_start(n, t + 1, threads); ++s) {
      const float* col = x + s * d.in_size;
      if (!d.direct) {
        cpu_im2col(c.geometry, col, col_buf, /*padding_zeroed=*/true);
        col = col_buf;
      }
      float* ys = y + s * d.out_size;
      for (int64_t gi = 0; gi < d.groups; ++gi)
        cpu_gemm_serial(false, false, d.oc_g, d.out_hw, d.col_rows, 1.0f, w + gi * d.oc_g * d.col_rows, d.col_rows,
                        col + gi * d.col_rows * d.out_hw, d.out_hw, 0.0f, ys + gi * d.oc_g * d.out_hw, d.out_hw);
      k.bias_activation(act, slope, 1, c.out_channels, d.out_hw, bias, ys);
    }
  }
}

void cpu_conv2d_backward(KernelBackend& k, const Conv2dSpec& c, int64_t n, const float* x, const float* w,
                         const float* y, const float* dout, Activation act, float slope, float* dx, float* dw,
                         float* dbias, LayerScratch& scratch) {
  const ConvDims d = dims_of(c);
  const int threads = conv_threads(n);
  auto& st = scratch.get<CpuConvState>(&cpu_conv_tag);
  float* cols = d.direct || !dw ? nullptr : st.columns(d.col_size * threads);
  float* dcols = d.direct || !dx ? nullptr : st.dcol.reserve(d.col_size * threads, Device::cpu);
  // dz = dout * act'(y), one sample at a time into a per-thread buffer that stays in cache.
  float* dzs_buf = act == Activation::identity ? nullptr : st.dz.reserve(d.out_size * threads, Device::cpu);
  // Threads after the first sum their samples' dw and dbias here; the first adds to dw directly.
  const int64_t partial_size = (dw ? d.w_size : 0) + (dbias ? c.out_channels : 0);
  float* partials =
      threads > 1 && partial_size ? st.partial.reserve(partial_size * (threads - 1), Device::cpu) : nullptr;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int t = omp_get_thread_num();
    float* my_dw = dw;
    float* my_dbias = dbias;
    if (t > 0 && partials) {
      float* p = partials + (t - 1) * partial_size;
      std::memset(p, 0, static_cast<size_t>(partial_size) * sizeof(float));
      if (dw) my_dw = p;
      if (dbias) my_dbias = p + (dw ? d.w_size : 0);
    }
    float* col_buf = cols ? cols + t * d.col_size : nullptr;
    float* dcol_buf = dcols ? dcols + t * d.col_size : nullptr;
    for (int64_t s = block_start(n, t, threads); s < block_start(n, t + 1, threads); ++s) {
      const float* dzs = dout + s * d.out_size;
      if (dzs_buf) {
        float* buf = dzs_buf + t * d.out_size;
        activation_grad(k, act, slope, d.out_size, y + s * d.out_size, dzs, buf);
        dzs = buf;
      }
      if (my_dbias) k.channel_bias_grad(1, c.out_channels, d.out_hw, dzs, my_dbias);
      if (my_dw) {
        const float* col = x + s * d.in_size;
        if (!d.direct) {
          cpu_im2col(c.geometry, col, col_buf, /*padding_zeroed=*/true);
          col = col_buf;
        }
        for (int64_t gi = 0; gi < d.groups; ++gi)
          cpu_gemm_serial(false, true, d.oc_g, d.col_rows, d.out_hw, 1.0f, dzs + gi * d.oc_g * d.out_hw, d.out_hw,
                          col + gi * d.col_rows * d.out_hw, d.out_hw, 1.0f, my_dw + gi * d.oc_g * d.col_rows,
                          d.col_rows);
      }
      if (dx) {
        float* dxs = dx + s * d.in_size;
        float* dcol = d.direct ? dxs : dcol_buf;
        for (int64_t gi = 0; gi < d.groups; ++gi)
          cpu_gemm_serial(true, false, d.col_rows, d.out_hw, d.oc_g, 1.0f, w + gi * d.oc_g * d.col_rows, d.col_rows,
                          dzs + gi * d.oc_g * d.out_hw, d.out_hw, 0.0f, dcol + gi * d.col_rows * d.out_hw, d.out_hw);
        if (!d.direct) cpu_col2im(c.geometry, dcol, dxs, /*overwrite=*/true);
      }
    }
    if (partials) {
      // Partial sums join in thread order; the elements are split over the threads.
#pragma omp barrier
#pragma omp for schedule(static)
      for (int64_t i = 0; i < partial_size; ++i) {
        float sum = 0.0f;
        for (int u = 1; u < threads; ++u) sum += partials[(u - 1) * partial_size + i];
        if (dw && i < d.w_size)
          dw[i] += sum;
        else
          dbias[i - (dw ? d.w_size : 0)] += sum;
      }
    }
  }
}

void CpuKernels::conv2d_forward(const Conv2dSpec& c, int64_t n, const float* x, const float* w, const float* bias,
                                Activation act, float slope, float* y, LayerScratch& scratch) {
  cpu_conv2d_forward(*this, c, n, x, w, bias, act, slope, y, scratch);
}

void CpuKernels::conv2d_backward(const Conv2dSpec& c, int64_t n, const float* x, const float* w, const float* y,
                                 const float* dout, Activation act, float slope, float* dx, float* dw, float* dbias,
                                 LayerScratch& scratch) {
  cpu_conv2d_backward(*this, c, n, x, w, y, dout, act, slope, dx, dw, dbias, scratch);
}

// Kept out of line: the convolution's backward above calls it per sample (n = 1) through `k`, and
// inlined there its vectorized sum rounds differently, so the batched bias gradient would no longer
// equal the reference path's bit for bit.
[[gnu::noinline]] void CpuKernels::channel_bias_grad(int64_t n, int64_t c, int64_t hw, const float* dy, float* dbias) {
  for (int64_t s = 0; s < n; ++s)
    for (int64_t ch = 0; ch < c; ++ch) {
      const float* d = dy + (s * c + ch) * hw;
      float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
      for (int64_t i = 0; i < hw; ++i) acc += d[i];
      dbias[ch] += acc;
    }
}

}  // namespace dptrain
