// Convolution and pooling of the CUDA backend. The whole-batch convolution lays the im2col columns
// of all n samples side by side ([C*kh*kw, n*oh*ow]), so that forward, the weight gradient and the
// input gradient are each one cuBLAS GEMM (strided-batched over groups) instead of n small ones;
// the weight gradient then sums over samples inside the GEMM, in a fixed order. Every backward
// scatter (col2im, pooling) is written as a gather: each input element sums its own taps in a
// fixed order, so no float atomics and the same bits every run.
#include <climits>

#include "models/core/Tensor.h"
#include "models/kernels/cuda/CudaInternal.cuh"

namespace dptrain::cuda {

namespace {

// Geometry as plain values for kernels.
struct Geo {
  int64_t c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow;
};

Geo geo_of(const Conv2dGeometry& g) {
  return {g.channels, g.height, g.width,      g.kernel_h,   g.kernel_w, g.stride_h, g.stride_w,
          g.pad_h,    g.pad_w,  g.dilation_h, g.dilation_w, g.out_h(),  g.out_w()};
}

// col[row, s * oh*ow + p] for n samples (sample stride c*h*w in x), row = (ch * kh + ki) * kw + kj.
__global__ void im2col_kernel(Geo g, int64_t n, const float* x, float* col) {
  const int64_t ohw = g.oh * g.ow, cols = n * ohw, total = g.c * g.kh * g.kw * cols;
  DPT_GRID_STRIDE(i, total) {
    const int64_t row = i / cols, q = i - row * cols;
    const int64_t s = q / ohw, p = q - s * ohw;
    const int64_t ch = row / (g.kh * g.kw), kk = row - ch * g.kh * g.kw, ki = kk / g.kw, kj = kk - ki * g.kw;
    const int64_t oy = p / g.ow, ox = p - oy * g.ow;
    const int64_t iy = oy * g.sh - g.ph + ki * g.dh, ix = ox * g.sw - g.pw + kj * g.dw;
    col[i] = (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) ? x[((s * g.c + ch) * g.h + iy) * g.w + ix] : 0.0f;
  }
}

// dx[s, ch, iy, ix] (+)= the column entries of its taps, added in tap order (the CPU's order).
__global__ void col2im_kernel(Geo g, int64_t n, const float* col, float* dx, bool accumulate) {
  const int64_t ohw = g.oh * g.ow, cols = n * ohw, total = n * g.c * g.h * g.w;
  DPT_GRID_STRIDE(i, total) {
    const int64_t ix = i % g.w, iy = (i / g.w) % g.h, ch = (i / (g.w * g.h)) % g.c, s = i / (g.w * g.h * g.c);
    float acc = accumulate ? dx[i] : 0.0f;
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      const int64_t ty = iy + g.ph - ki * g.dh;
      if (ty < 0 || ty % g.sh) continue;
      const int64_t oy = ty / g.sh;
      if (oy >= g.oh) continue;
      for (int64_t kj = 0; kj < g.kw; ++kj) {
        const int64_t tx = ix + g.pw - kj * g.dw;
        if (tx < 0 || tx % g.sw) continue;
        const int64_t ox = tx / g.sw;
        if (ox >= g.ow) continue;
        const int64_t row = (ch * g.kh + ki) * g.kw + kj;
        acc += col[row * cols + s * ohw + oy * g.ow + ox];
      }
    }
    dx[i] = acc;
  }
}

__global__ void max_pool_kernel(Geo g, int64_t planes, const float* x, float* y, int32_t* argmax) {
  const int64_t total = planes * g.oh * g.ow;
  DPT_GRID_STRIDE(i, total) {
    const int64_t ox = i % g.ow, oy = (i / g.ow) % g.oh, p = i / (g.ow * g.oh);
    const float* in = x + p * g.h * g.w;
    float best = -INFINITY;
    int32_t where = -1;
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      const int64_t iy = oy * g.sh - g.ph + ki * g.dh;
      if (iy < 0 || iy >= g.h) continue;
      for (int64_t kj = 0; kj < g.kw; ++kj) {
        const int64_t ix = ox * g.sw - g.pw + kj * g.dw;
        if (ix < 0 || ix >= g.w) continue;
        const float v = in[iy * g.w + ix];
        if (v > best || where < 0) {  // strict: the first maximum in scan order, as the CPU
          best = v;
          where = static_cast<int32_t>(iy * g.w + ix);
        }
      }
    }
    y[i] = best;
    argmax[i] = where;
  }
}

// Calls f(output index within the plane) for every window that covers input (iy, ix), in
// increasing output order (the order the CPU's scatter adds them).
template <typename F>
__device__ __forceinline__ void for_covering_windows(const Geo& g, int64_t iy, int64_t ix, F f) {
  for (int64_t ki = g.kh - 1; ki >= 0; --ki) {
    const int64_t ty = iy + g.ph - ki * g.dh;
    if (ty < 0 || ty % g.sh) continue;
    const int64_t oy = ty / g.sh;
    if (oy >= g.oh) continue;
    for (int64_t kj = g.kw - 1; kj >= 0; --kj) {
      const int64_t tx = ix + g.pw - kj * g.dw;
      if (tx < 0 || tx % g.sw) continue;
      const int64_t ox = tx / g.sw;
      if (ox >= g.ow) continue;
      f(oy * g.ow + ox);
    }
  }
}

__global__ void max_pool_backward_kernel(Geo g, int64_t planes, const float* dy, const int32_t* argmax, float* dx) {
  const int64_t total = planes * g.h * g.w, ohw = g.oh * g.ow;
  DPT_GRID_STRIDE(i, total) {
    const int64_t pos = i % (g.h * g.w), p = i / (g.h * g.w), iy = pos / g.w, ix = pos - iy * g.w;
    const float* d = dy + p * ohw;
    const int32_t* a = argmax + p * ohw;
    float acc = 0.0f;
    for_covering_windows(g, iy, ix, [&](int64_t o) {
      if (a[o] == pos) acc += d[o];
    });
    dx[i] = acc;
  }
}

__global__ void avg_pool_kernel(Geo g, int64_t planes, float inv, const float* x, float* y) {
  const int64_t total = planes * g.oh * g.ow;
  DPT_GRID_STRIDE(i, total) {
    const int64_t ox = i % g.ow, oy = (i / g.ow) % g.oh, p = i / (g.ow * g.oh);
    const float* in = x + p * g.h * g.w;
    float s = 0.0f;
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      const int64_t iy = oy * g.sh - g.ph + ki * g.dh;
      if (iy < 0 || iy >= g.h) continue;
      for (int64_t kj = 0; kj < g.kw; ++kj) {
        const int64_t ix = ox * g.sw - g.pw + kj * g.dw;
        if (ix >= 0 && ix < g.w) s += in[iy * g.w + ix];
      }
    }
    y[i] = s * inv;
  }
}

__global__ void avg_pool_backward_kernel(Geo g, int64_t planes, float inv, const float* dy, float* dx) {
  const int64_t total = planes * g.h * g.w, ohw = g.oh * g.ow;
  DPT_GRID_STRIDE(i, total) {
    const int64_t pos = i % (g.h * g.w), p = i / (g.h * g.w), iy = pos / g.w, ix = pos - iy * g.w;
    const float* d = dy + p * ohw;
    float acc = 0.0f;
    for_covering_windows(g, iy, ix, [&](int64_t o) { acc += d[o] * inv; });
    dx[i] = acc;
  }
}

// y[s, o, p] = act(yt[o, s * ohw + p] + bias[o]): the GEMM's [oc, n*ohw] result back to NCHW.
__global__ void untranspose_bias_act_kernel(int64_t n, int64_t oc, int64_t ohw, const float* yt, const float* bias,
                                            Activation act, float slope, float* y) {
  const int64_t total = n * oc * ohw;
  DPT_GRID_STRIDE(i, total) {
    const int64_t p = i % ohw, o = (i / ohw) % oc, s = i / (ohw * oc);
    y[i] = activate(act, slope, yt[o * n * ohw + s * ohw + p] + (bias ? bias[o] : 0.0f));
  }
}

// dzt[o, s * ohw + p] = dout[s, o, p] * act'(y[s, o, p]): the gradient before the activation, in
// the GEMMs' layout.
__global__ void transpose_act_backward_kernel(int64_t n, int64_t oc, int64_t ohw, const float* dout, const float* y,
                                              Activation act, float slope, float* dzt) {
  const int64_t total = n * oc * ohw;
  DPT_GRID_STRIDE(i, total) {
    const int64_t q = i % (n * ohw), o = i / (n * ohw), s = q / ohw, p = q - s * ohw;
    const int64_t src = (s * oc + o) * ohw + p;
    const float d = dout[src];
    dzt[i] = act == Activation::identity ? d : d * activation_derivative(act, slope, y[src]);
  }
}

// out[r] += sum of row r (length len): one block per row.
__global__ void row_sum_add_kernel(int64_t len, const float* x, float* out) {
  __shared__ float shared[threads];
  const float* row = x + blockIdx.x * len;
  float acc = 0.0f;
  for (int64_t i = threadIdx.x; i < len; i += threads) acc += row[i];
  const float total = block_sum<threads>(acc, shared);
  if (threadIdx.x == 0) out[blockIdx.x] += total;
}

struct CudaConvState {
  Workspace<float> col, yt, dzt, dcol;
};
const char cuda_conv_tag = 0;

}  // namespace

void CudaKernels::im2col(const Conv2dGeometry& g, const float* x, float* col) {
  const Geo q = geo_of(g);
  const int64_t total = q.c * q.kh * q.kw * q.oh * q.ow;
  if (total <= 0) return;
  im2col_kernel<<<blocks_for(total), threads, 0, stream_>>>(q, 1, x, col);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::col2im(const Conv2dGeometry& g, const float* col, float* dx) {
  const Geo q = geo_of(g);
  const int64_t total = q.c * q.h * q.w;
  if (total <= 0) return;
  col2im_kernel<<<blocks_for(total), threads, 0, stream_>>>(q, 1, col, dx, true);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::max_pool(int64_t n, const Conv2dGeometry& g, const float* x, float* y, int32_t* argmax) {
  const Geo q = geo_of(g);
  const int64_t planes = n * q.c, total = planes * q.oh * q.ow;
  if (total <= 0) return;
  max_pool_kernel<<<blocks_for(total), threads, 0, stream_>>>(q, planes, x, y, argmax);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::max_pool_backward(int64_t n, const Conv2dGeometry& g, const float* dy, const int32_t* argmax,
                                    float* dx) {
  const Geo q = geo_of(g);
  const int64_t planes = n * q.c, total = planes * q.h * q.w;
  if (total <= 0) return;
  max_pool_backward_kernel<<<blocks_for(total), threads, 0, stream_>>>(q, planes, dy, argmax, dx);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::avg_pool(int64_t n, const Conv2dGeometry& g, const float* x, float* y) {
  const Geo q = geo_of(g);
  const int64_t planes = n * q.c, total = planes * q.oh * q.ow;
  if (total <= 0) return;
  const float inv = 1.0f / static_cast<float>(g.kernel_h * g.kernel_w);  // padding counts (PyTorch default)
  avg_pool_kernel<<<blocks_for(total), threads, 0, stream_>>>(q, planes, inv, x, y);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::avg_pool_backward(int64_t n, const Conv2dGeometry& g, const float* dy, float* dx) {
  const Geo q = geo_of(g);
  const int64_t planes = n * q.c, total = planes * q.h * q.w;
  if (total <= 0) return;
  const float inv = 1.0f / static_cast<float>(g.kernel_h * g.kernel_w);
  avg_pool_backward_kernel<<<blocks_for(total), threads, 0, stream_>>>(q, planes, inv, dy, dx);
  DPT_CUDA_LAUNCHED();
}

namespace {

// Row-major C_i = alpha op(A_i) op(B_i) + beta C_i for `batch` matrices at fixed strides.
void gemm_strided(cublasHandle_t h, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
                  int64_t lda, int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float beta, float* c,
                  int64_t ldc, int64_t stride_c, int64_t batch) {
  DPT_ASSERT(m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && batch <= INT_MAX, "conv GEMM dimensions beyond 32 bits");
  const float alpha = 1.0f;
  DPT_CUBLAS_CHECK(cublasSgemmStridedBatched(
      h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n),
      static_cast<int>(m), static_cast<int>(k), &alpha, b, static_cast<int>(ldb), stride_b, a, static_cast<int>(lda),
      stride_a, &beta, c, static_cast<int>(ldc), stride_c, static_cast<int>(batch)));
}

}  // namespace

void CudaKernels::conv2d_forward(const Conv2dSpec& c, int64_t n, const float* x, const float* w, const float* bias,
                                 Activation act, float slope, float* y, LayerScratch& scratch) {
  const Geo q = geo_of(c.geometry);
  const int64_t groups = c.groups, oc = c.out_channels, oc_g = oc / groups, ohw = q.oh * q.ow, cols = n * ohw;
  const int64_t col_rows = q.c / groups * q.kh * q.kw;
  if (n <= 0 || oc <= 0 || ohw <= 0) return;
  auto& st = scratch.get<CudaConvState>(&cuda_conv_tag);
  float* col = st.col.reserve(groups * col_rows * cols, Device::cuda);
  im2col_kernel<<<blocks_for(groups * col_rows * cols), threads, 0, stream_>>>(q, n, x, col);
  DPT_CUDA_LAUNCHED();
  // One sample: the GEMM's [oc, ohw] result is already NCHW.
  float* yt = n == 1 ? y : st.yt.reserve(oc * cols, Device::cuda);
  gemm_strided(cublas_, false, false, oc_g, cols, col_rows, w, col_rows, oc_g * col_rows, col, cols, col_rows * cols,
               0.0f, yt, cols, oc_g * cols, groups);
  if (n == 1) {
    bias_activation(act, slope, 1, oc, ohw, bias, y);
  } else {
    untranspose_bias_act_kernel<<<blocks_for(n * oc * ohw), threads, 0, stream_>>>(n, oc, ohw, yt, bias, act, slope, y);
    DPT_CUDA_LAUNCHED();
  }
}

void CudaKernels::conv2d_backward(const Conv2dSpec& c, int64_t n, const float* x, const float* w, const float* y,
                                  const float* dout, Activation act, float slope, float* dx, float* dw, float* dbias,
                                  LayerScratch& scratch) {
  const Geo q = geo_of(c.geometry);
  const int64_t groups = c.groups, oc = c.out_channels, oc_g = oc / groups, ohw = q.oh * q.ow, cols = n * ohw;
  const int64_t col_rows = q.c / groups * q.kh * q.kw;
  if (n <= 0 || oc <= 0 || ohw <= 0) return;
  auto& st = scratch.get<CudaConvState>(&cuda_conv_tag);
  float* dzt = st.dzt.reserve(oc * cols, Device::cuda);
  transpose_act_backward_kernel<<<blocks_for(oc * cols), threads, 0, stream_>>>(n, oc, ohw, dout, y, act, slope, dzt);
  DPT_CUDA_LAUNCHED();
  if (dbias) {
    row_sum_add_kernel<<<static_cast<unsigned>(oc), threads, 0, stream_>>>(cols, dzt, dbias);
    DPT_CUDA_LAUNCHED();
  }
  if (dw) {  // dw_g += dz_g [oc_g, n*ohw] col_g^T: the sum over samples is the GEMM's inner dimension
    float* col = st.col.reserve(groups * col_rows * cols, Device::cuda);
    im2col_kernel<<<blocks_for(groups * col_rows * cols), threads, 0, stream_>>>(q, n, x, col);
    DPT_CUDA_LAUNCHED();
    gemm_strided(cublas_, false, true, oc_g, col_rows, cols, dzt, cols, oc_g * cols, col, cols, col_rows * cols, 1.0f,
                 dw, col_rows, oc_g * col_rows, groups);
  }
  if (dx) {  // dcol_g = w_g^T dz_g, then every input element gathers its taps
    float* dcol = st.dcol.reserve(groups * col_rows * cols, Device::cuda);
    gemm_strided(cublas_, true, false, col_rows, cols, oc_g, w, col_rows, oc_g * col_rows, dzt, cols, oc_g * cols, 0.0f,
                 dcol, cols, col_rows * cols, groups);
    const int64_t total = n * q.c * q.h * q.w;
    col2im_kernel<<<blocks_for(total), threads, 0, stream_>>>(q, n, dcol, dx, false);
    DPT_CUDA_LAUNCHED();
  }
}

}  // namespace dptrain::cuda
