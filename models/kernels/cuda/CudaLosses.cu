// Losses, softmax and the GAN objectives of the CUDA backend: one block per row writes that row's
// loss (and correct and top-5 counts, and for the losses that skip rows labelled -1 whether the row
// counts) in double and its gradient; a one-block pass then adds the rows' sums, in row order, to
// stats[] on the device, so a step never waits to read them. A label out of range is recorded on the device
// and reported as bad input at the next synchronization.
#include "models/kernels/cuda/CudaInternal.cuh"

namespace dptrain::cuda {

namespace {

constexpr int row_threads = 128;

struct RowShared {
  float v[row_threads];
  int64_t i[row_threads];
  float f[row_threads];
  double d[row_threads];
};

// The row's first maximum (value and index).
__device__ __forceinline__ void row_argmax(const float* z, int64_t cols, RowShared& sh, float& best, int64_t& index) {
  best = -INFINITY;
  index = -1;
  for (int64_t j = threadIdx.x; j < cols; j += row_threads)
    if (index < 0 || z[j] > best) {
      best = z[j];
      index = j;
    }
  block_argmax<row_threads>(best, index, sh.v, sh.i);
}

// log(sum(exp(z))) computed as the CPU does: max, then the sum of exp(z - max) in float.
__device__ __forceinline__ float row_log_sum_exp(const float* z, int64_t cols, RowShared& sh, int64_t& argmax) {
  float m;
  row_argmax(z, cols, sh, m, argmax);
  float s = 0.0f;
  for (int64_t j = threadIdx.x; j < cols; j += row_threads) s += expf(z[j] - m);
  s = block_sum<row_threads>(s, sh.f);
  return m + logf(s);
}

// log(sum(exp(k z))) for k > 0, as the CPU computes it (the largest k z_j is k times the largest z_j).
__device__ __forceinline__ float row_scaled_log_sum_exp(const float* z, int64_t cols, float k, RowShared& sh) {
  float m;
  int64_t argmax;
  row_argmax(z, cols, sh, m, argmax);
  m *= k;
  float s = 0.0f;
  for (int64_t j = threadIdx.x; j < cols; j += row_threads) s += expf(z[j] * k - m);
  s = block_sum<row_threads>(s, sh.f);
  return m + logf(s);
}

// 1 when fewer than 5 of the row's values are strictly above z[label] (ties count in), else 0.
__device__ __forceinline__ double row_in_top5(const float* z, int64_t cols, int64_t label, RowShared& sh) {
  float above = 0.0f;  // a count: exact in float
  for (int64_t j = threadIdx.x; j < cols; j += row_threads) above += z[j] > z[label] ? 1.0f : 0.0f;
  above = block_sum<row_threads>(above, sh.f);
  return above < 5.0f ? 1.0 : 0.0;
}

// With labels, row_count[r] is 1, or 0 for a row labelled -1 (padding of per-step targets: no
// loss, a zero gradient); the whole block takes that branch, so it skips the reductions together.
__global__ void softmax_cross_entropy_kernel(int64_t cols, const float* logits, const int32_t* labels,
                                             const float* targets, float scale, float* dlogits, double* row_loss,
                                             double* row_correct, double* row_top5, double* row_count, int* errors) {
  __shared__ RowShared sh;
  const int64_t r = blockIdx.x;
  const float* z = logits + r * cols;
  float* d = dlogits ? dlogits + r * cols : nullptr;
  if (labels && labels[r] == -1) {
    if (d)
      for (int64_t j = threadIdx.x; j < cols; j += row_threads) d[j] = 0.0f;
    if (threadIdx.x == 0) {
      row_loss[r] = 0.0;
      row_correct[r] = 0.0;
      row_top5[r] = 0.0;
      row_count[r] = 0.0;
    }
    return;
  }
  if (labels && threadIdx.x == 0) row_count[r] = 1.0;
  int64_t pred;
  const float lse = row_log_sum_exp(z, cols, sh, pred);
  if (labels) {
    const int32_t y = labels[r];
    if (y < 0 || y >= cols) {
      if (threadIdx.x == 0) {
        report_error(errors, bad_class_label, y, static_cast<int>(cols));
        row_loss[r] = 0.0;
        row_correct[r] = 0.0;
        row_top5[r] = 0.0;
      }
      return;
    }
    const double top5 = row_in_top5(z, cols, y, sh);
    if (d)
      for (int64_t j = threadIdx.x; j < cols; j += row_threads) {
        const float v = scale * expf(z[j] - lse);
        d[j] = j == y ? v - scale : v;
      }
    if (threadIdx.x == 0) {
      row_loss[r] = static_cast<double>(lse - z[y]);
      row_correct[r] = pred == y ? 1.0 : 0.0;
      row_top5[r] = top5;
    }
  } else {
    const float* t = targets + r * cols;
    double l = 0.0;
    float tsum = 0.0f;
    for (int64_t j = threadIdx.x; j < cols; j += row_threads) {
      l += static_cast<double>(t[j]) * (lse - z[j]);
      tsum += t[j];
    }
    l = block_sum<row_threads>(l, sh.d);
    tsum = block_sum<row_threads>(tsum, sh.f);
    float tbest;
    int64_t target_class;
    row_argmax(t, cols, sh, tbest, target_class);
    const double top5 = row_in_top5(z, cols, target_class, sh);
    if (d)
      for (int64_t j = threadIdx.x; j < cols; j += row_threads) d[j] = scale * (expf(z[j] - lse) * tsum - t[j]);
    if (threadIdx.x == 0) {
      row_loss[r] = l;
      row_correct[r] = pred == target_class ? 1.0 : 0.0;
      row_top5[r] = top5;
    }
  }
}

// KL(p_t || p_s) over the softened distributions as the CPU computes it, terms of p_t = 0 left out.
__global__ void distillation_kernel(int64_t cols, float temperature, float alpha, float inv_t, float soft_weight,
                                    const float* logits, const float* teacher_logits, const int32_t* labels,
                                    float scale, float* dlogits, double* row_loss, double* row_correct,
                                    double* row_top5, double* row_count, int* errors) {
  __shared__ RowShared sh;
  const int64_t r = blockIdx.x;
  const float* s = logits + r * cols;
  const float* t = teacher_logits + r * cols;
  float* d = dlogits ? dlogits + r * cols : nullptr;
  const int32_t y = labels[r];
  if (y < 0 || y >= cols) {  // -1 is padding (skipped), anything else a bad label
    if (y == -1 && d)
      for (int64_t j = threadIdx.x; j < cols; j += row_threads) d[j] = 0.0f;
    if (threadIdx.x == 0) {
      if (y != -1) report_error(errors, bad_class_label, y, static_cast<int>(cols));
      row_loss[r] = 0.0;
      row_correct[r] = 0.0;
      row_top5[r] = 0.0;
      row_count[r] = y == -1 ? 0.0 : 1.0;
    }
    return;
  }
  int64_t pred;
  const float lse = row_log_sum_exp(s, cols, sh, pred);
  const float lse_s = row_scaled_log_sum_exp(s, cols, inv_t, sh);
  const float lse_t = row_scaled_log_sum_exp(t, cols, inv_t, sh);
  double kl = 0.0;
  for (int64_t j = threadIdx.x; j < cols; j += row_threads) {
    const float log_pt = t[j] * inv_t - lse_t, pt = expf(log_pt);
    if (pt > 0.0f) kl += static_cast<double>(pt) * (log_pt - (s[j] * inv_t - lse_s));
  }
  kl = block_sum<row_threads>(kl, sh.d);
  const double top5 = row_in_top5(s, cols, y, sh);
  if (d)
    for (int64_t j = threadIdx.x; j < cols; j += row_threads) {
      const float hard = expf(s[j] - lse) - (j == y ? 1.0f : 0.0f);
      const float soft = expf(s[j] * inv_t - lse_s) - expf(t[j] * inv_t - lse_t);
      d[j] = scale * (alpha * hard + (1.0f - alpha) * temperature * soft);
    }
  if (threadIdx.x == 0) {
    row_loss[r] = static_cast<double>(alpha) * (lse - s[y]) + static_cast<double>(soft_weight) * kl;
    row_correct[r] = pred == y ? 1.0 : 0.0;
    row_top5[r] = top5;
    row_count[r] = 1.0;
  }
}

__global__ void sigmoid_cross_entropy_kernel(int64_t cols, float inv_cols, const float* logits, const int32_t* labels,
                                             const float* targets, float scale, float* dlogits, double* row_loss,
                                             double* row_correct, int* errors) {
  __shared__ RowShared sh;
  const int64_t r = blockIdx.x;
  float label = 0.0f;
  if (labels) {
    const int32_t y = labels[r];
    if (y != 0 && y != 1) {
      if (threadIdx.x == 0) {
        report_error(errors, bad_binary_label, y, 0);
        row_loss[r] = 0.0;
        row_correct[r] = 0.0;
      }
      return;
    }
    label = static_cast<float>(y);
  }
  double loss = 0.0, correct = 0.0;
  for (int64_t j = threadIdx.x; j < cols; j += row_threads) {
    const int64_t i = r * cols + j;
    const float t = labels ? label : targets[i];
    const float z = logits[i];
    loss += fmaxf(z, 0.0f) - z * t + log1pf(expf(-fabsf(z)));
    correct += (z > 0.0f) == (t > 0.5f);
    if (dlogits) dlogits[i] = scale * inv_cols * (1.0f / (1.0f + expf(-z)) - t);
  }
  loss = block_sum<row_threads>(loss, sh.d);
  correct = block_sum<row_threads>(correct, sh.d);
  if (threadIdx.x == 0) {
    row_loss[r] = loss * inv_cols;
    row_correct[r] = correct * inv_cols;
  }
}

__global__ void mean_squared_error_kernel(int64_t cols, float inv_cols, const float* pred, const float* targets,
                                          float scale, float* dpred, double* row_loss) {
  __shared__ RowShared sh;
  const int64_t r = blockIdx.x;
  double loss = 0.0;
  for (int64_t j = threadIdx.x; j < cols; j += row_threads) {
    const int64_t i = r * cols + j;
    const float e = pred[i] - targets[i];
    loss += static_cast<double>(e) * e;
    if (dpred) dpred[i] = scale * 2.0f * inv_cols * e;
  }
  loss = block_sum<row_threads>(loss, sh.d);
  if (threadIdx.x == 0) row_loss[r] = loss;
}

__global__ void multiclass_hinge_kernel(int64_t cols, const float* scores, const int32_t* labels, float margin,
                                        float scale, float* dscores, double* row_loss, double* row_correct,
                                        int* errors) {
  __shared__ RowShared sh;
  const int64_t r = blockIdx.x;
  const float* s = scores + r * cols;
  float* d = dscores ? dscores + r * cols : nullptr;
  const int32_t y = labels[r];
  if (y < 0 || y >= cols) {
    if (threadIdx.x == 0) {
      report_error(errors, bad_class_label, y, static_cast<int>(cols));
      row_loss[r] = 0.0;
      row_correct[r] = 0.0;
    }
    return;
  }
  double loss = 0.0;
  float violated = 0.0f;  // a count: exact in float
  for (int64_t j = threadIdx.x; j < cols; j += row_threads) {
    if (j == y) continue;
    const float m = margin + s[j] - s[y];
    const bool active = m > 0.0f;
    if (active) {
      loss += m;
      violated += 1.0f;
    }
    if (d) d[j] = active ? scale : 0.0f;
  }
  loss = block_sum<row_threads>(loss, sh.d);
  violated = block_sum<row_threads>(violated, sh.f);
  float best;
  int64_t pred;
  row_argmax(s, cols, sh, best, pred);
  if (threadIdx.x == 0) {
    if (d) d[y] = -scale * violated;
    row_loss[r] = loss;
    row_correct[r] = pred == y ? 1.0 : 0.0;
  }
}

__global__ void prediction_entropy_kernel(int64_t cols, const float* logits, float scale, float* dlogits,
                                          double* row_loss) {
  __shared__ RowShared sh;
  const int64_t r = blockIdx.x;
  const float* z = logits + r * cols;
  int64_t argmax;
  const float lse = row_log_sum_exp(z, cols, sh, argmax);
  float expected_z = 0.0f;
  for (int64_t j = threadIdx.x; j < cols; j += row_threads) expected_z += expf(z[j] - lse) * z[j];
  expected_z = block_sum<row_threads>(expected_z, sh.f);
  if (dlogits)
    for (int64_t j = threadIdx.x; j < cols; j += row_threads)
      dlogits[r * cols + j] = scale * expf(z[j] - lse) * (expected_z - z[j]);
  if (threadIdx.x == 0) row_loss[r] = static_cast<double>(lse - expected_z);  // H = lse - E_p[z]
}

__global__ void softmax_kernel(int64_t cols, const float* logits, float* probs) {
  __shared__ RowShared sh;
  const int64_t r = blockIdx.x;
  const float* z = logits + r * cols;
  int64_t argmax;
  const float lse = row_log_sum_exp(z, cols, sh, argmax);
  for (int64_t j = threadIdx.x; j < cols; j += row_threads) probs[r * cols + j] = expf(z[j] - lse);
}

__global__ void gan_loss_kernel(KernelBackend::GanTerm t, int64_t rows, const float* scores, float scale,
                                float* dscores, double* row_loss) {
  DPT_GRID_STRIDE(r, rows) {
    const float u = t.a * scores[r] + t.b;
    float f = 0.0f, df = 0.0f;  // g(u) and g'(u)
    switch (t.shape) {
      case KernelBackend::GanTerm::softplus:  // log(1 + e^u) without overflow; its derivative is sigmoid(u)
        f = fmaxf(u, 0.0f) + log1pf(expf(-fabsf(u)));
        df = u >= 0.0f ? 1.0f / (1.0f + expf(-u)) : expf(u) / (1.0f + expf(u));
        break;
      case KernelBackend::GanTerm::linear:
        f = u;
        df = 1.0f;
        break;
      case KernelBackend::GanTerm::relu:
        f = u > 0.0f ? u : 0.0f;
        df = u > 0.0f ? 1.0f : 0.0f;
        break;
      case KernelBackend::GanTerm::half_square:
        f = 0.5f * u * u;
        df = u;
        break;
    }
    row_loss[r] = static_cast<double>(t.c) * f;
    if (dscores) dscores[r] = scale * t.c * t.a * df;
  }
}

__global__ void finish_sums_kernel(int64_t n, const double* a, double a_factor, const double* b, float* out_a,
                                   float* out_b, float* out_count, float count, const double* counts, const double* c,
                                   float* out_c) {
  __shared__ double shared[threads];
  double sa = 0.0, sb = 0.0, sn = 0.0, sc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += threads) {
    sa += a[i];
    if (b) sb += b[i];
    if (counts) sn += counts[i];
    if (c) sc += c[i];
  }
  sa = block_sum<threads>(sa, shared);
  if (b) sb = block_sum<threads>(sb, shared);
  if (counts) sn = block_sum<threads>(sn, shared);
  if (c) sc = block_sum<threads>(sc, shared);
  if (threadIdx.x == 0) {
    *out_a += static_cast<float>(sa * a_factor);
    if (b) *out_b += static_cast<float>(sb);
    if (out_count) *out_count += counts ? static_cast<float>(sn) : count;
    if (c) *out_c += static_cast<float>(sc);
  }
}

}  // namespace

void CudaKernels::finish_sums(int64_t n, const double* a, double a_factor, const double* b, float* out_a, float* out_b,
                              float* out_count, float count, const double* counts, const double* c, float* out_c) {
  finish_sums_kernel<<<1, threads, 0, stream_>>>(n, a, a_factor, b, out_a, out_b, out_count, count, counts, c, out_c);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::softmax_cross_entropy(int64_t rows, int64_t cols, const float* logits, const int32_t* labels,
                                        const float* targets, float scale, float* dlogits, float* stats) {
  if (rows <= 0) return;
  // Per-row loss, correct and top-5 columns and, with labels, a fourth of counts: rows labelled -1
  // count 0 (summed in row order).
  double* loss = scratch_doubles((labels ? 4 : 3) * rows);
  double* counts = labels ? loss + 3 * rows : nullptr;
  softmax_cross_entropy_kernel<<<static_cast<unsigned>(rows), row_threads, 0, stream_>>>(
      cols, logits, labels, targets, scale, dlogits, loss, loss + rows, loss + 2 * rows, counts, errors_);
  DPT_CUDA_LAUNCHED();
  finish_sums(rows, loss, 1.0, loss + rows, stats + stat_loss, stats + stat_correct, stats + stat_count,
              static_cast<float>(rows), counts, loss + 2 * rows, stats + stat_top5);
}

void CudaKernels::distillation_loss(int64_t rows, int64_t cols, float temperature, float alpha, const float* logits,
                                    const float* teacher_logits, const int32_t* labels, float scale, float* dlogits,
                                    float* stats) {
  if (rows <= 0) return;
  double* loss = scratch_doubles(4 * rows);  // loss, correct, top-5 and count per row
  const float inv_t = 1.0f / temperature;    // computed as the CPU computes them
  const float soft_weight = (1.0f - alpha) * temperature * temperature;
  distillation_kernel<<<static_cast<unsigned>(rows), row_threads, 0, stream_>>>(
      cols, temperature, alpha, inv_t, soft_weight, logits, teacher_logits, labels, scale, dlogits, loss, loss + rows,
      loss + 2 * rows, loss + 3 * rows, errors_);
  DPT_CUDA_LAUNCHED();
  finish_sums(rows, loss, 1.0, loss + rows, stats + stat_loss, stats + stat_correct, stats + stat_count,
              static_cast<float>(rows), loss + 3 * rows, loss + 2 * rows, stats + stat_top5);
}

void CudaKernels::sigmoid_cross_entropy(int64_t rows, int64_t cols, const float* logits, const int32_t* labels,
                                        const float* targets, float scale, float* dlogits, float* stats) {
  if (rows <= 0) return;
  double* loss = scratch_doubles(2 * rows);
  const float inv_cols = 1.0f / static_cast<float>(cols);
  sigmoid_cross_entropy_kernel<<<static_cast<unsigned>(rows), row_threads, 0, stream_>>>(
      cols, inv_cols, logits, labels, targets, scale, dlogits, loss, loss + rows, errors_);
  DPT_CUDA_LAUNCHED();
  finish_sums(rows, loss, 1.0, loss + rows, stats + stat_loss, stats + stat_correct, stats + stat_count,
              static_cast<float>(rows));
}

void CudaKernels::mean_squared_error(int64_t rows, int64_t cols, const float* pred, const float* targets, float scale,
                                     float* dpred, float* stats) {
  if (rows <= 0) return;
  double* loss = scratch_doubles(rows);
  const float inv_cols = 1.0f / static_cast<float>(cols);
  mean_squared_error_kernel<<<static_cast<unsigned>(rows), row_threads, 0, stream_>>>(cols, inv_cols, pred, targets,
                                                                                      scale, dpred, loss);
  DPT_CUDA_LAUNCHED();
  finish_sums(rows, loss, static_cast<double>(inv_cols), nullptr, stats + stat_loss, nullptr, stats + stat_count,
              static_cast<float>(rows));
}

void CudaKernels::multiclass_hinge(int64_t rows, int64_t cols, const float* scores, const int32_t* labels, float margin,
                                   float scale, float* dscores, float* stats) {
  if (rows <= 0) return;
  double* loss = scratch_doubles(2 * rows);
  multiclass_hinge_kernel<<<static_cast<unsigned>(rows), row_threads, 0, stream_>>>(
      cols, scores, labels, margin, scale, dscores, loss, loss + rows, errors_);
  DPT_CUDA_LAUNCHED();
  finish_sums(rows, loss, 1.0, loss + rows, stats + stat_loss, stats + stat_correct, stats + stat_count,
              static_cast<float>(rows));
}

void CudaKernels::prediction_entropy(int64_t rows, int64_t cols, const float* logits, float scale, float* dlogits,
                                     float* stats) {
  if (rows <= 0) return;
  double* loss = scratch_doubles(rows);
  prediction_entropy_kernel<<<static_cast<unsigned>(rows), row_threads, 0, stream_>>>(cols, logits, scale, dlogits,
                                                                                      loss);
  DPT_CUDA_LAUNCHED();
  finish_sums(rows, loss, 1.0, nullptr, stats + stat_loss, nullptr, stats + stat_count, static_cast<float>(rows));
}

void CudaKernels::softmax(int64_t rows, int64_t cols, const float* logits, float* probs) {
  if (rows <= 0) return;
  softmax_kernel<<<static_cast<unsigned>(rows), row_threads, 0, stream_>>>(cols, logits, probs);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::gan_loss(const GanTerm& term, int64_t rows, const float* scores, float scale, float* dscores,
                           float* stats) {
  if (rows <= 0) {
    return;
  }
  double* loss = scratch_doubles(rows);
  gan_loss_kernel<<<blocks_for(rows), threads, 0, stream_>>>(term, rows, scores, scale, dscores, loss);
  DPT_CUDA_LAUNCHED();
  finish_sums(rows, loss, 1.0, nullptr, stats + stat_loss, nullptr, stats + stat_count, static_cast<float>(rows));
}

}  // namespace dptrain::cuda
