// The CPU backend's losses. Each walks its rows in order and sums in double on one thread, so the
// sums repeat bitwise; bad labels are reported as bad input at once.
#include <algorithm>
#include <cmath>
#include <string>

#include "models/core/Error.h"
#include "models/kernels/cpu/CpuInternal.h"

namespace dptrain {

namespace {

// Row-wise log-sum-exp and the index of the largest value.
inline float log_sum_exp(int64_t cols, const float* z, int64_t* argmax) {
  int64_t best = 0;
  for (int64_t j = 1; j < cols; ++j)
    if (z[j] > z[best]) best = j;
  float m = z[best];
  float s = 0.0f;
  for (int64_t j = 0; j < cols; ++j) s += std::exp(z[j] - m);
  if (argmax) *argmax = best;
  return m + std::log(s);
}

inline int64_t argmax_of(int64_t cols, const float* v) {
  int64_t best = 0;
  for (int64_t j = 1; j < cols; ++j)
    if (v[j] > v[best]) best = j;
  return best;
}

// Whether `label` is among the top 5: fewer than 5 values strictly above its own (ties count in).
inline bool in_top5(int64_t cols, const float* z, int64_t label) {
  int64_t above = 0;
  for (int64_t j = 0; j < cols; ++j) above += z[j] > z[label];
  return above < 5;
}

// log-sum-exp of k z (k > 0, so the largest k z_j is k times the largest z_j).
inline float scaled_log_sum_exp(int64_t cols, const float* z, float k) {
  float m = z[0] * k;
  for (int64_t j = 1; j < cols; ++j) m = std::max(m, z[j] * k);
  float s = 0.0f;
  for (int64_t j = 0; j < cols; ++j) s += std::exp(z[j] * k - m);
  return m + std::log(s);
}

void check_label(int32_t label, int64_t cols) {
  if (label < 0 || label >= cols)
    fail_input("label " + std::to_string(label) + " out of range for " + std::to_string(cols) + " outputs");
}

}  // namespace

void CpuKernels::softmax_cross_entropy(int64_t rows, int64_t cols, const float* logits, const int32_t* labels,
                                       const float* targets, float scale, float* dlogits, float* stats) {
  double loss = 0.0, correct = 0.0, counted = 0.0, top5 = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* z = logits + r * cols;
    float* d = dlogits ? dlogits + r * cols : nullptr;
    if (labels && labels[r] == -1) {  // a padding position of per-step targets
      if (d)
        for (int64_t j = 0; j < cols; ++j) d[j] = 0.0f;
      continue;
    }
    counted += 1.0;
    int64_t pred;
    float lse = log_sum_exp(cols, z, &pred);
    if (labels) {
      int32_t y = labels[r];
      check_label(y, cols);
      loss += lse - z[y];
      correct += pred == y;
      top5 += in_top5(cols, z, y);
      if (d) {
        for (int64_t j = 0; j < cols; ++j) d[j] = scale * std::exp(z[j] - lse);
        d[y] -= scale;
      }
    } else {
      const float* t = targets + r * cols;
      float tsum = 0.0f;
      double l = 0.0;
      for (int64_t j = 0; j < cols; ++j) {
        l += static_cast<double>(t[j]) * (lse - z[j]);
        tsum += t[j];
      }
      loss += l;
      const int64_t target_class = argmax_of(cols, t);
      correct += pred == target_class;
      top5 += in_top5(cols, z, target_class);
      if (d)
        for (int64_t j = 0; j < cols; ++j) d[j] = scale * (std::exp(z[j] - lse) * tsum - t[j]);
    }
  }
  stats[stat_loss] += static_cast<float>(loss);
  stats[stat_correct] += static_cast<float>(correct);
  stats[stat_count] += static_cast<float>(counted);
  stats[stat_top5] += static_cast<float>(top5);
}

// KL(p_t || p_s) = sum_j p_t (log p_t - log p_s) over the softened distributions, with the terms
// of p_t = 0 (exp underflowed) left out.
void CpuKernels::distillation_loss(int64_t rows, int64_t cols, float temperature, float alpha, const float* logits,
                                   const float* teacher_logits, const int32_t* labels, float scale, float* dlogits,
                                   float* stats) {
  const float inv_t = 1.0f / temperature;
  const float soft_weight = (1.0f - alpha) * temperature * temperature;
  double loss = 0.0, correct = 0.0, counted = 0.0, top5 = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = logits + r * cols;
    const float* t = teacher_logits + r * cols;
    float* d = dlogits ? dlogits + r * cols : nullptr;
    const int32_t y = labels[r];
    if (y == -1) {
      if (d)
        for (int64_t j = 0; j < cols; ++j) d[j] = 0.0f;
      continue;
    }
    check_label(y, cols);
    counted += 1.0;
    int64_t pred;
    const float lse = log_sum_exp(cols, s, &pred);
    const float lse_s = scaled_log_sum_exp(cols, s, inv_t), lse_t = scaled_log_sum_exp(cols, t, inv_t);
    double kl = 0.0;
    for (int64_t j = 0; j < cols; ++j) {
      const float log_pt = t[j] * inv_t - lse_t, pt = std::exp(log_pt);
      if (pt > 0.0f) kl += static_cast<double>(pt) * (log_pt - (s[j] * inv_t - lse_s));
    }
    loss += static_cast<double>(alpha) * (lse - s[y]) + static_cast<double>(soft_weight) * kl;
    correct += pred == y;
    top5 += in_top5(cols, s, y);
    if (d)
      for (int64_t j = 0; j < cols; ++j) {
        const float hard = std::exp(s[j] - lse) - (j == y ? 1.0f : 0.0f);
        const float soft = std::exp(s[j] * inv_t - lse_s) - std::exp(t[j] * inv_t - lse_t);
        d[j] = scale * (alpha * hard + (1.0f - alpha) * temperature * soft);
      }
  }
  stats[stat_loss] += static_cast<float>(loss);
  stats[stat_correct] += static_cast<float>(correct);
  stats[stat_count] += static_cast<float>(counted);
  stats[stat_top5] += static_cast<float>(top5);
}

void CpuKernels::sigmoid_cross_entropy(int64_t rows, int64_t cols, const float* logits, const int32_t* labels,
                                       const float* targets, float scale, float* dlogits, float* stats) {
  double loss = 0.0, correct = 0.0;
  const float inv_cols = 1.0f / static_cast<float>(cols);
  for (int64_t r = 0; r < rows; ++r) {
    double row_loss = 0.0, row_correct = 0.0;
    for (int64_t j = 0; j < cols; ++j) {
      int64_t i = r * cols + j;
      float t;
      if (labels) {
        if (labels[r] != 0 && labels[r] != 1)
          fail_input("label " + std::to_string(labels[r]) + " is not 0 or 1 for binary cross-entropy");
        t = static_cast<float>(labels[r]);
      } else {
        t = targets[i];
      }
      float z = logits[i];
      row_loss += std::max(z, 0.0f) - z * t + std::log1p(std::exp(-std::fabs(z)));
      row_correct += (z > 0.0f) == (t > 0.5f);
      if (dlogits) dlogits[i] = scale * inv_cols * (1.0f / (1.0f + std::exp(-z)) - t);
    }
    loss += row_loss * inv_cols;
    correct += row_correct * inv_cols;
  }
  stats[stat_loss] += static_cast<float>(loss);
  stats[stat_correct] += static_cast<float>(correct);
  stats[stat_count] += static_cast<float>(rows);
}

void CpuKernels::mean_squared_error(int64_t rows, int64_t cols, const float* pred, const float* targets, float scale,
                                    float* dpred, float* stats) {
  double loss = 0.0;
  const float inv_cols = 1.0f / static_cast<float>(cols);
  for (int64_t i = 0; i < rows * cols; ++i) {
    float e = pred[i] - targets[i];
    loss += static_cast<double>(e) * e;
    if (dpred) dpred[i] = scale * 2.0f * inv_cols * e;
  }
  stats[stat_loss] += static_cast<float>(loss * inv_cols);
  stats[stat_count] += static_cast<float>(rows);
}

void CpuKernels::multiclass_hinge(int64_t rows, int64_t cols, const float* scores, const int32_t* labels, float margin,
                                  float scale, float* dscores, float* stats) {
  double loss = 0.0, correct = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = scores + r * cols;
    int32_t y = labels[r];
    check_label(y, cols);
    float* d = dscores ? dscores + r * cols : nullptr;
    int64_t violated = 0;
    for (int64_t j = 0; j < cols; ++j) {
      if (j == y) continue;
      float m = margin + s[j] - s[y];
      bool active = m > 0.0f;
      if (active) {
        loss += m;
        ++violated;
      }
      if (d) d[j] = active ? scale : 0.0f;
    }
    if (d) d[y] = -scale * static_cast<float>(violated);
    correct += argmax_of(cols, s) == y;
  }
  stats[stat_loss] += static_cast<float>(loss);
  stats[stat_correct] += static_cast<float>(correct);
  stats[stat_count] += static_cast<float>(rows);
}

void CpuKernels::prediction_entropy(int64_t rows, int64_t cols, const float* logits, float scale, float* dlogits,
                                    float* stats) {
  double loss = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* z = logits + r * cols;
    float lse = log_sum_exp(cols, z, nullptr);
    float expected_z = 0.0f;
    for (int64_t j = 0; j < cols; ++j) expected_z += std::exp(z[j] - lse) * z[j];
    loss += lse - expected_z;  // H = lse - E_p[z]
    if (dlogits)
      for (int64_t j = 0; j < cols; ++j) dlogits[r * cols + j] = scale * std::exp(z[j] - lse) * (expected_z - z[j]);
  }
  stats[stat_loss] += static_cast<float>(loss);
  stats[stat_count] += static_cast<float>(rows);
}

void CpuKernels::softmax(int64_t rows, int64_t cols, const float* logits, float* probs) {
  for (int64_t r = 0; r < rows; ++r) {
    float lse = log_sum_exp(cols, logits + r * cols, nullptr);
    for (int64_t j = 0; j < cols; ++j) probs[r * cols + j] = std::exp(logits[r * cols + j] - lse);
  }
}

// The GAN objectives: one score per row; the sum runs in row order, in double.
void CpuKernels::gan_loss(const GanTerm& t, int64_t rows, const float* scores, float scale, float* dscores,
                          float* stats) {
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    const float u = t.a * scores[r] + t.b;
    float f = 0.0f, df = 0.0f;  // g(u) and g'(u)
    switch (t.shape) {
      case GanTerm::softplus:  // log(1 + e^u) without overflow; its derivative is sigmoid(u)
        f = std::max(u, 0.0f) + std::log1p(std::exp(-std::fabs(u)));
        df = u >= 0.0f ? 1.0f / (1.0f + std::exp(-u)) : std::exp(u) / (1.0f + std::exp(u));
        break;
      case GanTerm::linear:
        f = u;
        df = 1.0f;
        break;
      case GanTerm::relu:
        f = u > 0.0f ? u : 0.0f;
        df = u > 0.0f ? 1.0f : 0.0f;
        break;
      case GanTerm::half_square:
        f = 0.5f * u * u;
        df = u;
        break;
    }
    total += static_cast<double>(t.c) * f;
    if (dscores) dscores[r] = scale * t.c * t.a * df;
  }
  stats[stat_loss] += static_cast<float>(total);
  stats[stat_count] += static_cast<float>(rows);
}

}  // namespace dptrain
