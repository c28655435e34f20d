// The model-breadth operations of the CUDA backend: batch and layer norm, upsampling,
// max-unpooling, embedding, the LSTM and GRU cells, the VAE's sampling and the adversarial inputs
// (Philox keyed and KernelMath.h's updates as on the CPU: the same bits). Per-channel and per-row
// sums run in double in a fixed order, like the CPU's; the scatters (unpooling, the embedding
// gradient) walk their indices in the CPU's order on one thread per plane or column, so repeated
// ids and overlapping windows add up the same way every run.
#include "models/kernels/cuda/CudaInternal.cuh"

namespace dptrain::cuda {

namespace {

constexpr int row_threads = 128;

__global__ void batch_norm_stats_kernel(int64_t n, int64_t c, int64_t hw, const float* x, const float* shift,
                                        double* sum, double* sumsq) {
  __shared__ double shared[threads];
  const int64_t ch = blockIdx.x;
  const float k = shift ? shift[ch] : 0.0f;
  double s = 0.0, q = 0.0;
  for (int64_t i = threadIdx.x; i < n * hw; i += threads) {
    const int64_t b = i / hw, j = i - b * hw;
    const double d = static_cast<double>(x[(b * c + ch) * hw + j]) - k;
    s += d;
    q += d * d;
  }
  s = block_sum<threads>(s, shared);
  q = block_sum<threads>(q, shared);
  if (threadIdx.x == 0) {
    sum[ch] = s;
    sumsq[ch] = q;
  }
}

__global__ void batch_norm_finalize_kernel(int64_t c, double count, float momentum, const float* shift,
                                           const double* sum, const double* sumsq, float* mean, float* var,
                                           float* running_mean, float* running_var) {
  DPT_GRID_STRIDE(ch, c) {
    const double d = sum[ch] / count;
    const double m = (shift ? shift[ch] : 0.0) + d;
    const double v = fmax(0.0, sumsq[ch] / count - d * d);
    mean[ch] = static_cast<float>(m);
    var[ch] = static_cast<float>(v);
    if (running_mean) {
      const double unbiased = count > 1.0 ? v * count / (count - 1.0) : v;
      running_mean[ch] = static_cast<float>((1.0 - momentum) * running_mean[ch] + momentum * m);
      running_var[ch] = static_cast<float>((1.0 - momentum) * running_var[ch] + momentum * unbiased);
    }
  }
}

__global__ void batch_norm_forward_kernel(int64_t total, int64_t c, int64_t hw, float eps, const float* x,
                                          const float* mean, const float* var, const float* gamma, const float* beta,
                                          float* y) {
  DPT_GRID_STRIDE(i, total) {
    const int64_t ch = (i / hw) % c;
    const float a = gamma[ch] / sqrtf(var[ch] + eps), b = beta[ch] - a * mean[ch];
    y[i] = a * x[i] + b;
  }
}

__global__ void batch_norm_backward_reduce_kernel(int64_t n, int64_t c, int64_t hw, float eps, const float* dy,
                                                  const float* x, const float* mean, const float* var, double* sum_dy,
                                                  double* sum_dy_xhat, float* dgamma, float* dbeta) {
  __shared__ double shared[threads];
  const int64_t ch = blockIdx.x;
  const float m = mean[ch];
  double s = 0.0, sx = 0.0;
  for (int64_t i = threadIdx.x; i < n * hw; i += threads) {
    const int64_t b = i / hw, j = i - b * hw, at = (b * c + ch) * hw + j;
    s += dy[at];
    sx += static_cast<double>(dy[at]) * (x[at] - m);
  }
  s = block_sum<threads>(s, shared);
  sx = block_sum<threads>(sx, shared);
  if (threadIdx.x == 0) {
    sum_dy[ch] = s;
    sum_dy_xhat[ch] = sx / sqrt(static_cast<double>(var[ch]) + eps);
    if (dgamma) dgamma[ch] += static_cast<float>(sum_dy_xhat[ch]);
    if (dbeta) dbeta[ch] += static_cast<float>(s);
  }
}

__global__ void batch_norm_backward_kernel(int64_t total, int64_t c, int64_t hw, float eps, double count,
                                           const float* dy, const float* x, const float* mean, const float* var,
                                           const float* gamma, const double* sum_dy, const double* sum_dy_xhat,
                                           float* dx) {
  DPT_GRID_STRIDE(i, total) {
    const int64_t ch = (i / hw) % c;
    const float inv_std = 1.0f / sqrtf(var[ch] + eps), a = gamma[ch] * inv_std, m = mean[ch];
    const float mean_dy = sum_dy ? static_cast<float>(sum_dy[ch] / count) : 0.0f;
    const float mean_dy_xhat = sum_dy_xhat ? static_cast<float>(sum_dy_xhat[ch] / count) : 0.0f;
    dx[i] = a * (dy[i] - mean_dy - (x[i] - m) * inv_std * mean_dy_xhat);
  }
}

__global__ void layer_norm_forward_kernel(int64_t cols, float eps, const float* x, const float* gamma,
                                          const float* beta, float* y, float* mean, float* inv_std) {
  __shared__ double shared[row_threads];
  const int64_t r = blockIdx.x;
  const float* p = x + r * cols;
  double s = 0.0;
  for (int64_t j = threadIdx.x; j < cols; j += row_threads) s += p[j];
  s = block_sum<row_threads>(s, shared);
  const double m = s / static_cast<double>(cols);
  double q = 0.0;
  for (int64_t j = threadIdx.x; j < cols; j += row_threads) q += (p[j] - m) * (p[j] - m);
  q = block_sum<row_threads>(q, shared);
  const float is = static_cast<float>(1.0 / sqrt(q / static_cast<double>(cols) + eps));
  const float mf = static_cast<float>(m);
  if (threadIdx.x == 0) {
    mean[r] = mf;
    inv_std[r] = is;
  }
  float* o = y + r * cols;
  for (int64_t j = threadIdx.x; j < cols; j += row_threads) o[j] = gamma[j] * (p[j] - mf) * is + beta[j];
}

__global__ void layer_norm_backward_dx_kernel(int64_t cols, const float* x, const float* dy, const float* gamma,
                                              const float* mean, const float* inv_std, float* dx) {
  __shared__ double shared[row_threads];
  const int64_t r = blockIdx.x;
  const float* p = x + r * cols;
  const float* d = dy + r * cols;
  const float m = mean[r], is = inv_std[r];
  double s = 0.0, sx = 0.0;  // sums of g = dy gamma and of g xhat
  for (int64_t j = threadIdx.x; j < cols; j += row_threads) {
    const float xhat = (p[j] - m) * is, g = d[j] * gamma[j];
    s += g;
    sx += static_cast<double>(g) * xhat;
  }
  s = block_sum<row_threads>(s, shared);
  sx = block_sum<row_threads>(sx, shared);
  const float ms = static_cast<float>(s / static_cast<double>(cols));
  const float msx = static_cast<float>(sx / static_cast<double>(cols));
  float* o = dx + r * cols;
  for (int64_t j = threadIdx.x; j < cols; j += row_threads) o[j] = is * (d[j] * gamma[j] - ms - (p[j] - m) * is * msx);
}

// dgamma[j] += dy xhat and dbeta[j] += dy over the rows in order (the CPU's order).
__global__ void layer_norm_backward_params_kernel(int64_t rows, int64_t cols, const float* x, const float* dy,
                                                  const float* mean, const float* inv_std, float* dgamma,
                                                  float* dbeta) {
  DPT_GRID_STRIDE(j, cols) {
    float g = dgamma ? dgamma[j] : 0.0f, b = dbeta ? dbeta[j] : 0.0f;
    for (int64_t r = 0; r < rows; ++r) {
      const float d = dy[r * cols + j], xhat = (x[r * cols + j] - mean[r]) * inv_std[r];
      g += d * xhat;
      b += d;
    }
    if (dgamma) dgamma[j] = g;
    if (dbeta) dbeta[j] = b;
  }
}

__global__ void upsample_kernel(int64_t total, int64_t h, int64_t w, int64_t sh, int64_t sw, const float* x, float* y) {
  const int64_t oh = h * sh, ow = w * sw;
  DPT_GRID_STRIDE(i, total) {
    const int64_t ox = i % ow, oy = (i / ow) % oh, p = i / (ow * oh);
    y[i] = x[(p * h + oy / sh) * w + ox / sw];
  }
}

__global__ void upsample_backward_kernel(int64_t total, int64_t h, int64_t w, int64_t sh, int64_t sw, const float* dy,
                                         float* dx) {
  const int64_t ow = w * sw;
  DPT_GRID_STRIDE(i, total) {
    const int64_t j = i % w, row = i / w;  // row = p * h + iy
    const float* block = dy + row * sh * ow;
    float s = 0.0f;
    for (int64_t a = 0; a < sh; ++a)
      for (int64_t b = 0; b < sw; ++b) s += block[a * ow + j * sw + b];
    dx[i] = s;
  }
}

// One thread per plane, the pooled values in order: overlapping windows add up as on the CPU.
__global__ void max_unpool_kernel(int64_t planes, int64_t pooled, int64_t hw, const float* x, const int32_t* argmax,
                                  float* y) {
  DPT_GRID_STRIDE(p, planes) {
    for (int64_t o = 0; o < pooled; ++o) {
      const int32_t where = argmax[p * pooled + o];
      if (where >= 0) y[p * hw + where] += x[p * pooled + o];
    }
  }
}

__global__ void max_unpool_backward_kernel(int64_t total, int64_t pooled, int64_t hw, const float* dy,
                                           const int32_t* argmax, float* dx) {
  DPT_GRID_STRIDE(i, total) {
    const int64_t p = i / pooled;
    const int32_t where = argmax[i];
    dx[i] = where >= 0 ? dy[p * hw + where] : 0.0f;
  }
}

__global__ void embedding_kernel(int64_t count, int64_t dim, int64_t vocab, const float* ids, const float* weight,
                                 float* y, int* errors) {
  DPT_GRID_STRIDE(i, count * dim) {
    const int64_t row = i / dim, j = i - row * dim;
    const float v = nearbyintf(ids[row]);
    if (!(v >= 0.0f && v < static_cast<float>(vocab))) {
      if (j == 0) report_error(errors, bad_embedding_id, static_cast<int>(ids[row]), static_cast<int>(vocab));
      y[i] = 0.0f;
    } else {
      y[i] = weight[static_cast<int64_t>(v) * dim + j];
    }
  }
}

// One thread per column of the table, the ids in index order: repeated ids add up as on the CPU.
__global__ void embedding_backward_kernel(int64_t count, int64_t dim, const float* ids, const float* dy,
                                          float* dweight) {
  DPT_GRID_STRIDE(j, dim) {
    for (int64_t i = 0; i < count; ++i) {
      const float v = nearbyintf(ids[i]);
      if (v < 0.0f) continue;  // forward reported it
      dweight[static_cast<int64_t>(v) * dim + j] += dy[i * dim + j];
    }
  }
}

__device__ __forceinline__ float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

__global__ void lstm_cell_kernel(int64_t n, int64_t hidden, float* gates, const float* c_prev, float* c, float* h) {
  DPT_GRID_STRIDE(k, n * hidden) {
    const int64_t r = k / hidden, j = k - r * hidden;
    float* gi = gates + r * 4 * hidden;
    float *gf = gi + hidden, *gg = gi + 2 * hidden, *go = gi + 3 * hidden;
    const float i = sigmoid(gi[j]), f = sigmoid(gf[j]);
    const float g = tanhf(gg[j]), o = sigmoid(go[j]);
    const float cv = f * (c_prev ? c_prev[k] : 0.0f) + i * g;
    gi[j] = i;
    gf[j] = f;
    gg[j] = g;
    go[j] = o;
    c[k] = cv;
    h[k] = o * tanhf(cv);
  }
}

__global__ void lstm_cell_backward_kernel(int64_t n, int64_t hidden, const float* gates, const float* c_prev,
                                          const float* c, const float* dh, float* dc, float* dgates) {
  DPT_GRID_STRIDE(k, n * hidden) {
    const int64_t r = k / hidden, j = k - r * hidden;
    const float* gi = gates + r * 4 * hidden;
    const float *gf = gi + hidden, *gg = gi + 2 * hidden, *go = gi + 3 * hidden;
    float* di = dgates + r * 4 * hidden;
    float *df = di + hidden, *dg = di + 2 * hidden, *dout = di + 3 * hidden;
    const float tc = tanhf(c[k]), cp = c_prev ? c_prev[k] : 0.0f;
    const float dcv = dc[k] + dh[k] * go[j] * (1.0f - tc * tc);
    dout[j] = dh[k] * tc * go[j] * (1.0f - go[j]);
    di[j] = dcv * gg[j] * gi[j] * (1.0f - gi[j]);
    df[j] = dcv * cp * gf[j] * (1.0f - gf[j]);
    dg[j] = dcv * gi[j] * (1.0f - gg[j] * gg[j]);
    dc[k] = dcv * gf[j];
  }
}

// The GRU cell: gx [n, 3 hidden] holds r, z, n side by side (pre-activations in, activations out).
__global__ void gru_cell_kernel(int64_t n, int64_t hidden, float* gx, const float* gh, const float* h_prev, float* h) {
  DPT_GRID_STRIDE(k, n * hidden) {
    const int64_t r = k / hidden, j = k - r * hidden;
    float* gr = gx + r * 3 * hidden;
    float *gz = gr + hidden, *gn = gr + 2 * hidden;
    const float* hr = gh + r * 3 * hidden;
    const float *hz = hr + hidden, *hn = hr + 2 * hidden;
    const float rv = sigmoid(gr[j] + hr[j]), z = sigmoid(gz[j] + hz[j]);
    const float c = tanhf(gn[j] + rv * hn[j]);
    gr[j] = rv;
    gz[j] = z;
    gn[j] = c;
    h[k] = h_prev ? (1.0f - z) * c + z * h_prev[k] : (1.0f - z) * c;
  }
}

__global__ void gru_cell_backward_kernel(int64_t n, int64_t hidden, const float* gx, const float* gh,
                                         const float* h_prev, const float* dh, float* dgx, float* dgh, float* dh_prev) {
  DPT_GRID_STRIDE(k, n * hidden) {
    const int64_t r = k / hidden, j = k - r * hidden;
    const float* gr = gx + r * 3 * hidden;
    const float rv = gr[j], z = gr[hidden + j], c = gr[2 * hidden + j];
    const float hn = gh[r * 3 * hidden + 2 * hidden + j], prev = h_prev ? h_prev[k] : 0.0f;
    const float dn = dh[k] * (1.0f - z) * (1.0f - c * c);
    const float dz = dh[k] * (prev - c) * z * (1.0f - z);
    const float dr = dn * hn * rv * (1.0f - rv);
    float* dxr = dgx + r * 3 * hidden;
    float* dhr = dgh + r * 3 * hidden;
    dxr[j] = dr;
    dxr[hidden + j] = dz;
    dxr[2 * hidden + j] = dn;
    dhr[j] = dr;
    dhr[hidden + j] = dz;
    dhr[2 * hidden + j] = dn * rv;
    if (h_prev) dh_prev[k] = dh[k] * z;
  }
}

// One block per row: z for the row, and the row's KL in double.
__global__ void gaussian_sample_kernel(int64_t k, bool sample, RandomKey key, uint64_t step, int64_t row0,
                                       const float* x, float* z, double* row_kl) {
  __shared__ double shared[row_threads];
  const int64_t r = blockIdx.x;
  const float* mu = x + r * 2 * k;
  const float* logvar = mu + k;
  const uint64_t s = static_cast<uint64_t>(row0 + r);
  double total = 0.0;
  for (int64_t j = threadIdx.x; j < k; j += row_threads) {
    const float eps = sample ? philox_normal(key, step, s, static_cast<uint64_t>(j)) : 0.0f;
    z[r * k + j] = mu[j] + expf(0.5f * logvar[j]) * eps;
    total += 0.5 * (exp(static_cast<double>(logvar[j])) + static_cast<double>(mu[j]) * mu[j] - 1.0 - logvar[j]);
  }
  total = block_sum<row_threads>(total, shared);
  if (threadIdx.x == 0 && row_kl) row_kl[r] = total;
}

__global__ void gaussian_sample_backward_kernel(int64_t rows, int64_t k, bool sample, RandomKey key, uint64_t step,
                                                int64_t row0, const float* x, const float* dz, float kl_scale,
                                                float* dx) {
  DPT_GRID_STRIDE(i, rows * k) {
    const int64_t r = i / k, j = i - r * k;
    const float* mu = x + r * 2 * k;
    const float* logvar = mu + k;
    float* dmu = dx + r * 2 * k;
    float* dlogvar = dmu + k;
    const float eps =
        sample ? philox_normal(key, step, static_cast<uint64_t>(row0 + r), static_cast<uint64_t>(j)) : 0.0f;
    const float d = dz[r * k + j], sd = expf(0.5f * logvar[j]);
    dmu[j] = d + kl_scale * mu[j];
    dlogvar[j] = 0.5f * d * eps * sd + kl_scale * 0.5f * (sd * sd - 1.0f);
  }
}

// Adversarial inputs: blocks stride over rows, each thread draws the row's selection itself (the
// same draw, no shared memory) and walks the row's elements.
__global__ void adversarial_start_kernel(int64_t rows, int64_t row_size, float epsilon, float fraction,
                                         bool random_start, SampleKeys keys, const float* x0, float* x) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* x0r = x0 + r * row_size;
    float* xr = x + r * row_size;
    const uint64_t sample = static_cast<uint64_t>(keys.row0 + r);
    const bool noisy = random_start && adversarial_row_selected(keys, keys.row0 + r, fraction);
    for (int64_t e = threadIdx.x; e < row_size; e += blockDim.x)
      xr[e] = noisy ? adversarial_start_value(x0r[e], epsilon,
                                              philox_uniform(keys.key, keys.step, sample, static_cast<uint64_t>(e)))
                    : x0r[e];
  }
}

__global__ void adversarial_step_kernel(int64_t rows, int64_t row_size, float step_size, float epsilon, float fraction,
                                        SampleKeys keys, const float* x0, const float* grad, float* x) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    if (!adversarial_row_selected(keys, keys.row0 + r, fraction)) continue;
    const int64_t o = r * row_size;
    for (int64_t e = threadIdx.x; e < row_size; e += blockDim.x)
      x[o + e] = adversarial_step_value(x[o + e], x0[o + e], grad[o + e], step_size, epsilon);
  }
}

// minibatch_stddev: one block per group of rows. The mean and sqrt(var + 1e-8) of feature f over
// the group's m rows `ld` apart, in the CPU's order.
__device__ __forceinline__ void group_stddev(const float* x, int64_t m, int64_t ld, float& mean, float& s) {
  float mu = 0.0f;
  for (int64_t i = 0; i < m; ++i) mu += x[i * ld];
  const float inv_m = 1.0f / static_cast<float>(m);
  mu *= inv_m;
  float q = 0.0f;
  for (int64_t i = 0; i < m; ++i) {
    const float d = x[i * ld] - mu;
    q += d * d;
  }
  mean = mu;
  s = sqrtf(q * inv_m + 1e-8f);
}

__global__ void minibatch_stddev_kernel(int64_t rows, int64_t group, int64_t features, int64_t extra, const float* x,
                                        float* y) {
  __shared__ double shared[threads];
  const int64_t r0 = blockIdx.x * group, m = rows - r0 < group ? rows - r0 : group, width = features + extra;
  double total = 0.0;
  for (int64_t f = threadIdx.x; f < features; f += threads) {
    float mean, s;
    group_stddev(x + r0 * features + f, m, features, mean, s);
    total += s;
  }
  total = block_sum<threads>(total, shared);
  const float stat = static_cast<float>(total / static_cast<double>(features));
  for (int64_t idx = threadIdx.x; idx < m * width; idx += threads) {
    const int64_t i = idx / width, c = idx - i * width;
    y[(r0 + i) * width + c] = c < features ? x[(r0 + i) * features + c] : stat;
  }
}

__global__ void minibatch_stddev_backward_kernel(int64_t rows, int64_t group, int64_t features, int64_t extra,
                                                 const float* x, const float* dy, float* dx) {
  __shared__ double shared[threads];
  const int64_t r0 = blockIdx.x * group, m = rows - r0 < group ? rows - r0 : group, width = features + extra;
  double dstat = 0.0;
  for (int64_t idx = threadIdx.x; idx < m * extra; idx += threads) {
    const int64_t i = idx / extra, e = idx - i * extra;
    dstat += dy[(r0 + i) * width + features + e];
  }
  dstat = block_sum<threads>(dstat, shared);
  const float scale = static_cast<float>(dstat / static_cast<double>(features * m));
  for (int64_t f = threadIdx.x; f < features; f += threads) {
    float mean, s;
    group_stddev(x + r0 * features + f, m, features, mean, s);
    const float c = scale / s;
    for (int64_t i = r0; i < r0 + m; ++i) dx[i * features + f] = dy[i * width + f] + (x[i * features + f] - mean) * c;
  }
}

}  // namespace

void CudaKernels::copy_2d(int64_t rows, int64_t cols, const float* src, int64_t src_ld, float* dst, int64_t dst_ld) {
  if (rows <= 0 || cols <= 0) return;
  DPT_CUDA_CHECK(cudaMemcpy2DAsync(
      dst, static_cast<size_t>(dst_ld) * sizeof(float), src, static_cast<size_t>(src_ld) * sizeof(float),
      static_cast<size_t>(cols) * sizeof(float), static_cast<size_t>(rows), cudaMemcpyDeviceToDevice, stream_));
}

void CudaKernels::batch_norm_stats(int64_t n, int64_t c, int64_t hw, const float* x, const float* shift, double* sum,
                                   double* sumsq) {
  if (c <= 0) return;
  batch_norm_stats_kernel<<<static_cast<unsigned>(c), threads, 0, stream_>>>(n, c, hw, x, shift, sum, sumsq);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::batch_norm_finalize(int64_t c, double count, float momentum, const float* shift, const double* sum,
                                      const double* sumsq, float* mean, float* var, float* running_mean,
                                      float* running_var) {
  if (c <= 0) return;
  batch_norm_finalize_kernel<<<blocks_for(c), threads, 0, stream_>>>(c, count, momentum, shift, sum, sumsq, mean, var,
                                                                     running_mean, running_var);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::batch_norm_forward(int64_t n, int64_t c, int64_t hw, float eps, const float* x, const float* mean,
                                     const float* var, const float* gamma, const float* beta, float* y) {
  const int64_t total = n * c * hw;
  if (total <= 0) return;
  batch_norm_forward_kernel<<<blocks_for(total), threads, 0, stream_>>>(total, c, hw, eps, x, mean, var, gamma, beta,
                                                                        y);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::batch_norm_backward_reduce(int64_t n, int64_t c, int64_t hw, float eps, const float* dy,
                                             const float* x, const float* mean, const float* var, double* sum_dy,
                                             double* sum_dy_xhat, float* dgamma, float* dbeta) {
  if (c <= 0) return;
  batch_norm_backward_reduce_kernel<<<static_cast<unsigned>(c), threads, 0, stream_>>>(
      n, c, hw, eps, dy, x, mean, var, sum_dy, sum_dy_xhat, dgamma, dbeta);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::batch_norm_backward(int64_t n, int64_t c, int64_t hw, float eps, double count, const float* dy,
                                      const float* x, const float* mean, const float* var, const float* gamma,
                                      const double* sum_dy, const double* sum_dy_xhat, float* dx) {
  const int64_t total = n * c * hw;
  if (total <= 0) return;
  batch_norm_backward_kernel<<<blocks_for(total), threads, 0, stream_>>>(total, c, hw, eps, count, dy, x, mean, var,
                                                                         gamma, sum_dy, sum_dy_xhat, dx);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::layer_norm_forward(int64_t rows, int64_t cols, float eps, const float* x, const float* gamma,
                                     const float* beta, float* y, float* mean, float* inv_std) {
  if (rows <= 0) return;
  layer_norm_forward_kernel<<<static_cast<unsigned>(rows), row_threads, 0, stream_>>>(cols, eps, x, gamma, beta, y,
                                                                                      mean, inv_std);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::layer_norm_backward(int64_t rows, int64_t cols, const float* x, const float* dy, const float* gamma,
                                      const float* mean, const float* inv_std, float* dx, float* dgamma, float* dbeta) {
  if (rows <= 0) return;
  layer_norm_backward_dx_kernel<<<static_cast<unsigned>(rows), row_threads, 0, stream_>>>(cols, x, dy, gamma, mean,
                                                                                          inv_std, dx);
  DPT_CUDA_LAUNCHED();
  if (dgamma || dbeta) {
    layer_norm_backward_params_kernel<<<blocks_for(cols), threads, 0, stream_>>>(rows, cols, x, dy, mean, inv_std,
                                                                                 dgamma, dbeta);
    DPT_CUDA_LAUNCHED();
  }
}

void CudaKernels::upsample_nearest(int64_t planes, int64_t h, int64_t w, int64_t sh, int64_t sw, const float* x,
                                   float* y) {
  const int64_t total = planes * h * sh * w * sw;
  if (total <= 0) return;
  upsample_kernel<<<blocks_for(total), threads, 0, stream_>>>(total, h, w, sh, sw, x, y);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::upsample_nearest_backward(int64_t planes, int64_t h, int64_t w, int64_t sh, int64_t sw,
                                            const float* dy, float* dx) {
  const int64_t total = planes * h * w;
  if (total <= 0) return;
  upsample_backward_kernel<<<blocks_for(total), threads, 0, stream_>>>(total, h, w, sh, sw, dy, dx);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::minibatch_stddev(int64_t rows, int64_t group, int64_t features, int64_t extra, const float* x,
                                   float* y) {
  if (rows <= 0) return;
  const int64_t groups = (rows + group - 1) / group;
  minibatch_stddev_kernel<<<static_cast<unsigned>(groups), threads, 0, stream_>>>(rows, group, features, extra, x, y);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::minibatch_stddev_backward(int64_t rows, int64_t group, int64_t features, int64_t extra,
                                            const float* x, const float* dy, float* dx) {
  if (rows <= 0) return;
  const int64_t groups = (rows + group - 1) / group;
  minibatch_stddev_backward_kernel<<<static_cast<unsigned>(groups), threads, 0, stream_>>>(rows, group, features, extra,
                                                                                           x, dy, dx);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::max_unpool(int64_t planes, int64_t pooled, int64_t hw, const float* x, const int32_t* argmax,
                             float* y) {
  if (planes <= 0 || hw <= 0) return;
  DPT_CUDA_CHECK(cudaMemsetAsync(y, 0, static_cast<size_t>(planes * hw) * sizeof(float), stream_));
  max_unpool_kernel<<<blocks_for(planes, 64), 64, 0, stream_>>>(planes, pooled, hw, x, argmax, y);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::max_unpool_backward(int64_t planes, int64_t pooled, int64_t hw, const float* dy,
                                      const int32_t* argmax, float* dx) {
  const int64_t total = planes * pooled;
  if (total <= 0) return;
  max_unpool_backward_kernel<<<blocks_for(total), threads, 0, stream_>>>(total, pooled, hw, dy, argmax, dx);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::embedding(int64_t count, int64_t dim, int64_t vocab, const float* ids, const float* weight,
                            float* y) {
  if (count <= 0 || dim <= 0) return;
  embedding_kernel<<<blocks_for(count * dim), threads, 0, stream_>>>(count, dim, vocab, ids, weight, y, errors_);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::embedding_backward(int64_t count, int64_t dim, const float* ids, const float* dy, float* dweight) {
  if (count <= 0 || dim <= 0) return;
  embedding_backward_kernel<<<blocks_for(dim, 64), 64, 0, stream_>>>(count, dim, ids, dy, dweight);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::lstm_cell(int64_t n, int64_t hidden, float* gates, const float* c_prev, float* c, float* h) {
  if (n * hidden <= 0) return;
  lstm_cell_kernel<<<blocks_for(n * hidden), threads, 0, stream_>>>(n, hidden, gates, c_prev, c, h);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::lstm_cell_backward(int64_t n, int64_t hidden, const float* gates, const float* c_prev, const float* c,
                                     const float* dh, float* dc, float* dgates) {
  if (n * hidden <= 0) return;
  lstm_cell_backward_kernel<<<blocks_for(n * hidden), threads, 0, stream_>>>(n, hidden, gates, c_prev, c, dh, dc,
                                                                             dgates);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::gru_cell(int64_t n, int64_t hidden, float* gx, const float* gh, const float* h_prev, float* h) {
  if (n * hidden <= 0) return;
  gru_cell_kernel<<<blocks_for(n * hidden), threads, 0, stream_>>>(n, hidden, gx, gh, h_prev, h);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::gru_cell_backward(int64_t n, int64_t hidden, const float* gx, const float* gh, const float* h_prev,
                                    const float* dh, float* dgx, float* dgh, float* dh_prev) {
  if (n * hidden <= 0) return;
  gru_cell_backward_kernel<<<blocks_for(n * hidden), threads, 0, stream_>>>(n, hidden, gx, gh, h_prev, dh, dgx, dgh,
                                                                            dh_prev);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::gaussian_sample(int64_t rows, int64_t k, bool sample, const SampleKeys& keys, const float* x,
                                  float* z, float* kl) {
  if (rows <= 0) return;
  double* row_kl = kl ? scratch_doubles(rows) : nullptr;
  gaussian_sample_kernel<<<static_cast<unsigned>(rows), row_threads, 0, stream_>>>(k, sample, keys.key, keys.step,
                                                                                   keys.row0, x, z, row_kl);
  DPT_CUDA_LAUNCHED();
  if (kl) finish_sums(rows, row_kl, 1.0, nullptr, kl, nullptr, nullptr, 0.0f);
}

void CudaKernels::gaussian_sample_backward(int64_t rows, int64_t k, bool sample, const SampleKeys& keys, const float* x,
                                           const float* dz, float kl_scale, float* dx) {
  if (rows * k <= 0) return;
  gaussian_sample_backward_kernel<<<blocks_for(rows * k), threads, 0, stream_>>>(rows, k, sample, keys.key, keys.step,
                                                                                 keys.row0, x, dz, kl_scale, dx);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::adversarial_start(int64_t rows, int64_t row_size, float epsilon, float fraction, bool random_start,
                                    const SampleKeys& keys, const float* x0, float* x) {
  if (rows * row_size <= 0) return;
  adversarial_start_kernel<<<blocks_for(rows, 1), threads, 0, stream_>>>(rows, row_size, epsilon, fraction,
                                                                         random_start, keys, x0, x);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::adversarial_step(int64_t rows, int64_t row_size, float step_size, float epsilon, float fraction,
                                   const SampleKeys& keys, const float* x0, const float* grad, float* x) {
  if (rows * row_size <= 0) return;
  adversarial_step_kernel<<<blocks_for(rows, 1), threads, 0, stream_>>>(rows, row_size, step_size, epsilon, fraction,
                                                                        keys, x0, grad, x);
  DPT_CUDA_LAUNCHED();
}

}  // namespace dptrain::cuda
