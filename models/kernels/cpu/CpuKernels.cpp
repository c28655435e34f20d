#include "models/kernels/cpu/CpuKernels.h"

#include <cblas.h>
#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "models/core/Error.h"
#include "models/kernels/cpu/CpuInternal.h"

namespace dptrain {

namespace {

// Loops shorter than this stay on one thread: forking costs more than they do.
constexpr int64_t parallel_threshold = 1 << 15;

// The group statistics of minibatch_stddev for n consecutive features of m rows `ld` apart:
// mean[j] and s[j] = sqrt(var[j] + 1e-8), var over the rows (the CUDA kernel computes the same).
constexpr int64_t stddev_chunk = 64;
inline void group_stddev(const float* x, int64_t m, int64_t ld, int64_t n, float* mean, float* s) {
  for (int64_t j = 0; j < n; ++j) mean[j] = 0.0f;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) mean[j] += x[i * ld + j];
  const float inv_m = 1.0f / static_cast<float>(m);
  for (int64_t j = 0; j < n; ++j) mean[j] *= inv_m;
  for (int64_t j = 0; j < n; ++j) s[j] = 0.0f;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const float d = x[i * ld + j] - mean[j];
      s[j] += d * d;
    }
  for (int64_t j = 0; j < n; ++j) s[j] = std::sqrt(s[j] * inv_m + 1e-8f);
}

inline float activate(Activation act, float slope, float v) {
  switch (act) {
    case Activation::identity:
      return v;
    case Activation::relu:
      return v > 0.0f ? v : 0.0f;
    case Activation::leaky_relu:
      return v > 0.0f ? v : slope * v;
    case Activation::sigmoid:
      return 1.0f / (1.0f + std::exp(-v));
    case Activation::tanh:
      return std::tanh(v);
  }
  return v;
}

// e^x for the LSTM cell's gates, in plain float arithmetic so that their loops vectorize (libm's
// expf and tanhf are scalar calls: 40 % of an LSTM step went to them). Cody-Waite reduction
// x = k ln2 + r, |r| <= ln2 / 2, Cephes' degree-6 polynomial for e^r, 2^k from exponent bits;
// within 2 ulp of expf, x clamped to [-87.3, 88.3] (no infinities, no denormals). The loops need
// -fno-trapping-math to if-convert the clamps (models/CMakeLists.txt).
inline float gate_exp(float x) {
  // Clamped in the order that keeps a NaN (both comparisons false); the exponent is taken from 0
  // instead, so a NaN reaches the result through r rather than an undefined integer conversion.
  x = x < -87.33654f ? -87.33654f : x;
  x = x > 88.37626f ? 88.37626f : x;
  const float t = (x == x ? x : 0.0f) * 1.44269504088896341f;
  const int32_t k = static_cast<int32_t>(t + std::copysign(0.5f, t));  // nearest integer
  const float kf = static_cast<float>(k);
  const float r = x - kf * 0.693359375f + kf * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * std::bit_cast<float>((k + 127) << 23);
}
inline float gate_sigmoid(float x) { return 1.0f / (1.0f + gate_exp(-x)); }
// tanh x = (1 - e^-2|x|) / (1 + e^-2|x|) with the sign of x: absolute error ~1e-7 near 0.
inline float gate_tanh(float x) {
  const float e = gate_exp(-2.0f * std::fabs(x));
  return std::copysign((1.0f - e) / (1.0f + e), x);
}

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

template <Activation A>
inline void activate_range(float slope, int64_t n, const float* x, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = activate(A, slope, x[i]);
}

template <Activation A>
inline void bias_act_range(float slope, int64_t n, float b, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = activate(A, slope, y[i] + b);
}

template <Activation A>
void bias_activation_t(float slope, int64_t rows, int64_t cols, int64_t hw, const float* bias, float* y) {
  const int64_t total = rows * cols * hw;
#pragma omp parallel for schedule(static) if (total > parallel_threshold)
  for (int64_t r = 0; r < rows; ++r) {
    float* yr = y + r * cols * hw;
    if (hw == 1) {
      if (bias) {
        for (int64_t c = 0; c < cols; ++c) yr[c] = activate(A, slope, yr[c] + bias[c]);
      } else {
        activate_range<A>(slope, cols, yr, yr);
      }
    } else {
      for (int64_t c = 0; c < cols; ++c) bias_act_range<A>(slope, hw, bias ? bias[c] : 0.0f, yr + c * hw);
    }
  }
}

template <Activation A>
void activation_backward_t(float slope, int64_t n, const float* y, const float* dy, float* dx) {
#pragma omp parallel for simd schedule(static) if (n > parallel_threshold)
  for (int64_t i = 0; i < n; ++i) {
    float d;
    if constexpr (A == Activation::identity)
      d = 1.0f;
    else if constexpr (A == Activation::relu)
      d = y[i] > 0.0f ? 1.0f : 0.0f;
    else if constexpr (A == Activation::leaky_relu)
      d = y[i] > 0.0f ? 1.0f : slope;
    else if constexpr (A == Activation::sigmoid)
      d = y[i] * (1.0f - y[i]);
    else
      d = 1.0f - y[i] * y[i];
    dx[i] = dy[i] * d;
  }
}

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

void check_label(int32_t label, int64_t cols) {
  if (label < 0 || label >= cols)
    fail_input("label " + std::to_string(label) + " out of range for " + std::to_string(cols) + " outputs");
}

constexpr size_t huge_page = size_t{2} << 20;

class CpuKernels final : public KernelBackend {
 public:
  Device device() const override { return Device::cpu; }

  // Buffers of 2 MiB and more (the flat parameters, gradients and optimizer state, large
  // activations) are placed on 2 MiB boundaries and asked for transparent huge pages: the optimizer
  // pass and the GEMM's packing of weights stream through them, and with 4 KiB pages their TLB
  // misses cost 15-35% of the optimizer pass. Where THP is off the advice is ignored.
  void* allocate(size_t bytes) override {
    const size_t align = bytes >= huge_page ? huge_page : 64;
    size_t rounded = (bytes + align - 1) / align * align;
    void* p = std::aligned_alloc(align, rounded ? rounded : align);
    if (!p) throw Error(ErrorKind::internal, "out of host memory allocating " + std::to_string(bytes) + " bytes");
    if (align == huge_page) madvise(p, rounded, MADV_HUGEPAGE);
    return p;
  }
  void release(void* p) override { std::free(p); }
  void synchronize() override {}

  // Large fills and copies (zeroing the gradients each step) are split over the threads in
  // blocks of 64 KiB; one thread alone does not reach the memory bandwidth of the node.
  void fill(int64_t n, float value, float* x) override {
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
  void copy(int64_t n, const float* x, float* y) override {
    if (x == y) return;
    constexpr int64_t block = 1 << 14;
#pragma omp parallel for schedule(static) if (n > 64 * block)
    for (int64_t b = 0; b < n; b += block)
      std::memcpy(y + b, x + b, static_cast<size_t>(std::min(block, n - b)) * sizeof(float));
  }
  void axpy(int64_t n, float a, const float* x, float* y) override {
#pragma omp parallel for simd schedule(static) if (n > parallel_threshold)
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
  }
  void scale(int64_t n, float a, float* x) override {
#pragma omp parallel for simd schedule(static) if (n > parallel_threshold)
    for (int64_t i = 0; i < n; ++i) x[i] *= a;
  }
  void add(int64_t n, const float* a, const float* b, float* y) override {
#pragma omp parallel for simd schedule(static) if (n > parallel_threshold)
    for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
  }
  void multiply(int64_t n, const float* a, const float* b, float* y) override {
#pragma omp parallel for simd schedule(static) if (n > parallel_threshold)
    for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i];
  }
  double sum_squares(int64_t n, const float* x) override {
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
  double sum(int64_t n, const float* x) override {
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

  void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
            const float* b, int64_t ldb, float beta, float* c, int64_t ldc) override {
    cpu_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }

  void conv2d_forward(const Conv2dSpec& c, int64_t n, const float* x, const float* w, const float* bias, Activation act,
                      float slope, float* y, LayerScratch& scratch) override {
    cpu_conv2d_forward(*this, c, n, x, w, bias, act, slope, y, scratch);
  }
  void conv2d_backward(const Conv2dSpec& c, int64_t n, const float* x, const float* w, const float* y,
                       const float* dout, Activation act, float slope, float* dx, float* dw, float* dbias,
                       LayerScratch& scratch) override {
    cpu_conv2d_backward(*this, c, n, x, w, y, dout, act, slope, dx, dw, dbias, scratch);
  }
  void dense_forward(int64_t rows, int64_t in, int64_t out, const float* x, const float* w, const float* bias,
                     Activation act, float slope, float* y, LayerScratch& scratch) override {
    cpu_dense_forward(*this, rows, in, out, x, w, bias, act, slope, y, scratch);
  }
  void dense_backward_input(int64_t rows, int64_t in, int64_t out, const float* dz, const float* w,
                            float* dx) override {
    cpu_dense_input_grad(rows, in, out, dz, w, dx);
  }

  void row_bias_grad(int64_t rows, int64_t cols, const float* dy, float* dbias) override {
    for (int64_t r = 0; r < rows; ++r) {
      const float* d = dy + r * cols;
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c) dbias[c] += d[c];
    }
  }
  void channel_bias_grad(int64_t n, int64_t c, int64_t hw, const float* dy, float* dbias) override {
    for (int64_t s = 0; s < n; ++s)
      for (int64_t ch = 0; ch < c; ++ch) {
        const float* d = dy + (s * c + ch) * hw;
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (int64_t i = 0; i < hw; ++i) acc += d[i];
        dbias[ch] += acc;
      }
  }

  void bias_activation(Activation act, float slope, int64_t rows, int64_t cols, int64_t hw, const float* bias,
                       float* y) override {
    if (act == Activation::identity && !bias) return;
    switch (act) {
      case Activation::identity:
        return bias_activation_t<Activation::identity>(slope, rows, cols, hw, bias, y);
      case Activation::relu:
        return bias_activation_t<Activation::relu>(slope, rows, cols, hw, bias, y);
      case Activation::leaky_relu:
        return bias_activation_t<Activation::leaky_relu>(slope, rows, cols, hw, bias, y);
      case Activation::sigmoid:
        return bias_activation_t<Activation::sigmoid>(slope, rows, cols, hw, bias, y);
      case Activation::tanh:
        return bias_activation_t<Activation::tanh>(slope, rows, cols, hw, bias, y);
    }
  }
  void activation(Activation act, float slope, int64_t n, const float* x, float* y) override {
#pragma omp parallel for schedule(static) if (n > parallel_threshold)
    for (int64_t b = 0; b < n; b += 4096) {
      int64_t len = std::min<int64_t>(4096, n - b);
      switch (act) {
        case Activation::identity:
          activate_range<Activation::identity>(slope, len, x + b, y + b);
          break;
        case Activation::relu:
          activate_range<Activation::relu>(slope, len, x + b, y + b);
          break;
        case Activation::leaky_relu:
          activate_range<Activation::leaky_relu>(slope, len, x + b, y + b);
          break;
        case Activation::sigmoid:
          activate_range<Activation::sigmoid>(slope, len, x + b, y + b);
          break;
        case Activation::tanh:
          activate_range<Activation::tanh>(slope, len, x + b, y + b);
          break;
      }
    }
  }
  void activation_backward(Activation act, float slope, int64_t n, const float* y, const float* dy,
                           float* dx) override {
    switch (act) {
      case Activation::identity:
        return activation_backward_t<Activation::identity>(slope, n, y, dy, dx);
      case Activation::relu:
        return activation_backward_t<Activation::relu>(slope, n, y, dy, dx);
      case Activation::leaky_relu:
        return activation_backward_t<Activation::leaky_relu>(slope, n, y, dy, dx);
      case Activation::sigmoid:
        return activation_backward_t<Activation::sigmoid>(slope, n, y, dy, dx);
      case Activation::tanh:
        return activation_backward_t<Activation::tanh>(slope, n, y, dy, dx);
    }
  }

  void maxout(int64_t rows, int64_t out_cols, int64_t pieces, const float* x, float* y) override {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < out_cols; ++j) {
        const float* xi = x + (r * out_cols + j) * pieces;
        float m = xi[0];
        for (int64_t i = 1; i < pieces; ++i) m = std::max(m, xi[i]);
        y[r * out_cols + j] = m;
      }
  }
  void maxout_backward(int64_t rows, int64_t out_cols, int64_t pieces, const float* x, const float* y, const float* dy,
                       float* dx) override {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < out_cols; ++j) {
        int64_t o = r * out_cols + j;
        const float* xi = x + o * pieces;
        float* di = dx + o * pieces;
        bool routed = false;  // the first piece equal to the max takes the gradient
        for (int64_t i = 0; i < pieces; ++i) {
          bool take = !routed && xi[i] == y[o];
          di[i] = take ? dy[o] : 0.0f;
          routed = routed || take;
        }
      }
  }

  void dropout(int64_t rows, int64_t row_size, float p, const SampleKeys& keys, const float* x, float* y) override {
    const float keep_scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (rows * row_size > parallel_threshold)
    for (int64_t r = 0; r < rows; ++r) {
      uint64_t sample = static_cast<uint64_t>(keys.row0 + r);
      for (int64_t i = 0; i < row_size; ++i) {
        bool keep = philox_uniform(keys.key, keys.step, sample, static_cast<uint64_t>(i)) > p;
        y[r * row_size + i] = keep ? x[r * row_size + i] * keep_scale : 0.0f;
      }
    }
  }
  void dropout_backward(int64_t rows, int64_t row_size, float p, const SampleKeys& keys, const float* dy,
                        float* dx) override {
    dropout(rows, row_size, p, keys, dy, dx);  // the same mask and scale apply to the gradient
  }

  void im2col(const Conv2dGeometry& g, const float* x, float* col) override { cpu_im2col(g, x, col); }
  void col2im(const Conv2dGeometry& g, const float* col, float* dx) override { cpu_col2im(g, col, dx); }

  void max_pool(int64_t n, const Conv2dGeometry& g, const float* x, float* y, int32_t* argmax) override {
    const int64_t oh = g.out_h(), ow = g.out_w(), planes = n * g.channels;
    if (g.pad_h == 0 && g.pad_w == 0 && g.dilation_h == 1 && g.dilation_w == 1)
      return cpu_max_pool_unpadded(planes, g, x, y, argmax);
#pragma omp parallel for schedule(static) if (planes * oh * ow * g.kernel_h * g.kernel_w > parallel_threshold)
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
  void max_pool_backward(int64_t n, const Conv2dGeometry& g, const float* dy, const int32_t* argmax,
                         float* dx) override {
    const int64_t oh = g.out_h(), ow = g.out_w(), planes = n * g.channels, hw = g.height * g.width;
    if (cpu_max_pool_backward_2x2(planes, g, dy, argmax, dx)) return;
    std::memset(dx, 0, static_cast<size_t>(planes * hw) * sizeof(float));
#pragma omp parallel for schedule(static) if (planes * oh * ow > parallel_threshold)
    for (int64_t p = 0; p < planes; ++p)
      for (int64_t o = 0; o < oh * ow; ++o) {
        int32_t where = argmax[p * oh * ow + o];
        if (where >= 0) dx[p * hw + where] += dy[p * oh * ow + o];
      }
  }
  void avg_pool(int64_t n, const Conv2dGeometry& g, const float* x, float* y) override {
    const int64_t oh = g.out_h(), ow = g.out_w(), planes = n * g.channels;
    const float inv = 1.0f / static_cast<float>(g.kernel_h * g.kernel_w);  // padding counts (PyTorch default)
#pragma omp parallel for schedule(static) if (planes * oh * ow * g.kernel_h * g.kernel_w > parallel_threshold)
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
  void avg_pool_backward(int64_t n, const Conv2dGeometry& g, const float* dy, float* dx) override {
    const int64_t oh = g.out_h(), ow = g.out_w(), planes = n * g.channels, hw = g.height * g.width;
    const float inv = 1.0f / static_cast<float>(g.kernel_h * g.kernel_w);
    std::memset(dx, 0, static_cast<size_t>(planes * hw) * sizeof(float));
#pragma omp parallel for schedule(static) if (planes * oh * ow > parallel_threshold)
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

  void softmax_cross_entropy(int64_t rows, int64_t cols, const float* logits, const int32_t* labels,
                             const float* targets, float scale, float* dlogits, float* stats) override {
    double loss = 0.0, correct = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
      const float* z = logits + r * cols;
      int64_t pred;
      float lse = log_sum_exp(cols, z, &pred);
      float* d = dlogits ? dlogits + r * cols : nullptr;
      if (labels) {
        int32_t y = labels[r];
        check_label(y, cols);
        loss += lse - z[y];
        correct += pred == y;
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
        correct += pred == argmax_of(cols, t);
        if (d)
          for (int64_t j = 0; j < cols; ++j) d[j] = scale * (std::exp(z[j] - lse) * tsum - t[j]);
      }
    }
    stats[stat_loss] += static_cast<float>(loss);
    stats[stat_correct] += static_cast<float>(correct);
    stats[stat_count] += static_cast<float>(rows);
  }

  void sigmoid_cross_entropy(int64_t rows, int64_t cols, const float* logits, const int32_t* labels,
                             const float* targets, float scale, float* dlogits, float* stats) override {
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

  void mean_squared_error(int64_t rows, int64_t cols, const float* pred, const float* targets, float scale,
                          float* dpred, float* stats) override {
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

  void multiclass_hinge(int64_t rows, int64_t cols, const float* scores, const int32_t* labels, float margin,
                        float scale, float* dscores, float* stats) override {
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

  void prediction_entropy(int64_t rows, int64_t cols, const float* logits, float scale, float* dlogits,
                          float* stats) override {
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

  void softmax(int64_t rows, int64_t cols, const float* logits, float* probs) override {
    for (int64_t r = 0; r < rows; ++r) {
      float lse = log_sum_exp(cols, logits + r * cols, nullptr);
      for (int64_t j = 0; j < cols; ++j) probs[r * cols + j] = std::exp(logits[r * cols + j] - lse);
    }
  }

  void optimizer_update(const OptimizerStep& s, int64_t n, float* w, const float* g, float* m, float* v) override {
    cpu_optimizer_update(s, n, w, g, m, v);
  }

  // ==== Model breadth (issue #7): normalization, resampling, embedding, recurrent cells, VAE ====

  void copy_2d(int64_t rows, int64_t cols, const float* src, int64_t src_ld, float* dst, int64_t dst_ld) override {
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(dst + r * dst_ld, src + r * src_ld, static_cast<size_t>(cols) * sizeof(float));
  }

  // Channels are independent; each is reduced by one thread in a fixed order (deterministic).
  void batch_norm_stats(int64_t n, int64_t c, int64_t hw, const float* x, const float* shift, double* sum,
                        double* sumsq) override {
#pragma omp parallel for schedule(static) if (n * c * hw > parallel_threshold)
    for (int64_t ch = 0; ch < c; ++ch) {
      const float k = shift ? shift[ch] : 0.0f;
      double s = 0.0, q = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        const float* p = x + (i * c + ch) * hw;
        double bs = 0.0, bq = 0.0;
#pragma omp simd reduction(+ : bs, bq)
        for (int64_t j = 0; j < hw; ++j) {
          const double d = static_cast<double>(p[j]) - k;
          bs += d;
          bq += d * d;
        }
        s += bs;
        q += bq;
      }
      sum[ch] = s;
      sumsq[ch] = q;
    }
  }
  void batch_norm_finalize(int64_t c, double count, float momentum, const float* shift, const double* sum,
                           const double* sumsq, float* mean, float* var, float* running_mean,
                           float* running_var) override {
    for (int64_t ch = 0; ch < c; ++ch) {
      const double d = sum[ch] / count;
      const double m = (shift ? shift[ch] : 0.0) + d;
      const double v = std::max(0.0, sumsq[ch] / count - d * d);
      mean[ch] = static_cast<float>(m);
      var[ch] = static_cast<float>(v);
      if (running_mean) {
        const double unbiased = count > 1.0 ? v * count / (count - 1.0) : v;
        running_mean[ch] = static_cast<float>((1.0 - momentum) * running_mean[ch] + momentum * m);
        running_var[ch] = static_cast<float>((1.0 - momentum) * running_var[ch] + momentum * unbiased);
      }
    }
  }
  void batch_norm_forward(int64_t n, int64_t c, int64_t hw, float eps, const float* x, const float* mean,
                          const float* var, const float* gamma, const float* beta, float* y) override {
#pragma omp parallel for schedule(static) if (n * c * hw > parallel_threshold)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t ch = 0; ch < c; ++ch) {
        const float a = gamma[ch] / std::sqrt(var[ch] + eps), b = beta[ch] - a * mean[ch];
        const float* p = x + (i * c + ch) * hw;
        float* q = y + (i * c + ch) * hw;
#pragma omp simd
        for (int64_t j = 0; j < hw; ++j) q[j] = a * p[j] + b;
      }
  }
  void batch_norm_backward_reduce(int64_t n, int64_t c, int64_t hw, float eps, const float* dy, const float* x,
                                  const float* mean, const float* var, double* sum_dy, double* sum_dy_xhat,
                                  float* dgamma, float* dbeta) override {
#pragma omp parallel for schedule(static) if (n * c * hw > parallel_threshold)
    for (int64_t ch = 0; ch < c; ++ch) {
      const float m = mean[ch];
      double s = 0.0, sx = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        const float* d = dy + (i * c + ch) * hw;
        const float* p = x + (i * c + ch) * hw;
        double bs = 0.0, bx = 0.0;
#pragma omp simd reduction(+ : bs, bx)
        for (int64_t j = 0; j < hw; ++j) {
          bs += d[j];
          bx += static_cast<double>(d[j]) * (p[j] - m);
        }
        s += bs;
        sx += bx;
      }
      sum_dy[ch] = s;
      sum_dy_xhat[ch] = sx / std::sqrt(static_cast<double>(var[ch]) + eps);
      if (dgamma) dgamma[ch] += static_cast<float>(sum_dy_xhat[ch]);
      if (dbeta) dbeta[ch] += static_cast<float>(s);
    }
  }
  void batch_norm_backward(int64_t n, int64_t c, int64_t hw, float eps, double count, const float* dy, const float* x,
                           const float* mean, const float* var, const float* gamma, const double* sum_dy,
                           const double* sum_dy_xhat, float* dx) override {
#pragma omp parallel for schedule(static) if (n * c * hw > parallel_threshold)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t ch = 0; ch < c; ++ch) {
        const float inv_std = 1.0f / std::sqrt(var[ch] + eps), a = gamma[ch] * inv_std, m = mean[ch];
        const float mean_dy = sum_dy ? static_cast<float>(sum_dy[ch] / count) : 0.0f;
        const float mean_dy_xhat = sum_dy_xhat ? static_cast<float>(sum_dy_xhat[ch] / count) : 0.0f;
        const float* d = dy + (i * c + ch) * hw;
        const float* p = x + (i * c + ch) * hw;
        float* q = dx + (i * c + ch) * hw;
#pragma omp simd
        for (int64_t j = 0; j < hw; ++j) q[j] = a * (d[j] - mean_dy - (p[j] - m) * inv_std * mean_dy_xhat);
      }
  }

  void layer_norm_forward(int64_t rows, int64_t cols, float eps, const float* x, const float* gamma, const float* beta,
                          float* y, float* mean, float* inv_std) override {
#pragma omp parallel for schedule(static) if (rows * cols > parallel_threshold)
    for (int64_t r = 0; r < rows; ++r) {
      const float* p = x + r * cols;
      double s = 0.0;
      for (int64_t j = 0; j < cols; ++j) s += p[j];
      const double m = s / static_cast<double>(cols);
      double q = 0.0;
      for (int64_t j = 0; j < cols; ++j) q += (p[j] - m) * (p[j] - m);
      const float is = static_cast<float>(1.0 / std::sqrt(q / static_cast<double>(cols) + eps));
      mean[r] = static_cast<float>(m);
      inv_std[r] = is;
      float* o = y + r * cols;
      for (int64_t j = 0; j < cols; ++j) o[j] = gamma[j] * (p[j] - mean[r]) * is + beta[j];
    }
  }
  void layer_norm_backward(int64_t rows, int64_t cols, const float* x, const float* dy, const float* gamma,
                           const float* mean, const float* inv_std, float* dx, float* dgamma, float* dbeta) override {
    for (int64_t r = 0; r < rows; ++r) {
      const float* p = x + r * cols;
      const float* d = dy + r * cols;
      const float m = mean[r], is = inv_std[r];
      double s = 0.0, sx = 0.0;  // sums of g = dy gamma and of g xhat
      for (int64_t j = 0; j < cols; ++j) {
        const float xhat = (p[j] - m) * is, g = d[j] * gamma[j];
        s += g;
        sx += static_cast<double>(g) * xhat;
        if (dgamma) dgamma[j] += d[j] * xhat;
        if (dbeta) dbeta[j] += d[j];
      }
      const float ms = static_cast<float>(s / static_cast<double>(cols));
      const float msx = static_cast<float>(sx / static_cast<double>(cols));
      float* o = dx + r * cols;
      for (int64_t j = 0; j < cols; ++j) o[j] = is * (d[j] * gamma[j] - ms - (p[j] - m) * is * msx);
    }
  }

  void upsample_nearest(int64_t planes, int64_t h, int64_t w, int64_t sh, int64_t sw, const float* x,
                        float* y) override {
    const int64_t ow = w * sw;
#pragma omp parallel for schedule(static) if (planes * h * w * sh * sw > parallel_threshold)
    for (int64_t p = 0; p < planes; ++p)
      for (int64_t i = 0; i < h; ++i) {
        const float* in = x + (p * h + i) * w;
        float* row = y + (p * h + i) * sh * ow;
        for (int64_t j = 0; j < w; ++j)
          for (int64_t b = 0; b < sw; ++b) row[j * sw + b] = in[j];
        for (int64_t a = 1; a < sh; ++a) std::memcpy(row + a * ow, row, static_cast<size_t>(ow) * sizeof(float));
      }
  }
  void upsample_nearest_backward(int64_t planes, int64_t h, int64_t w, int64_t sh, int64_t sw, const float* dy,
                                 float* dx) override {
    const int64_t ow = w * sw;
#pragma omp parallel for schedule(static) if (planes * h * w * sh * sw > parallel_threshold)
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

  // Features in chunks of a fixed size with the per-feature sums on the stack: the loops over a
  // chunk vectorize, and nothing is allocated.
  void minibatch_stddev(int64_t rows, int64_t group, int64_t features, int64_t extra, const float* x,
                        float* y) override {
    const int64_t groups = (rows + group - 1) / group, width = features + extra;
#pragma omp parallel for schedule(static) if (rows * width > parallel_threshold)
    for (int64_t k = 0; k < groups; ++k) {
      const int64_t r0 = k * group, m = std::min(group, rows - r0);
      double total = 0.0;
      for (int64_t f0 = 0; f0 < features; f0 += stddev_chunk) {
        const int64_t n = std::min(stddev_chunk, features - f0);
        float mean[stddev_chunk], s[stddev_chunk];
        group_stddev(x + r0 * features + f0, m, features, n, mean, s);
        for (int64_t j = 0; j < n; ++j) total += s[j];
      }
      const float stat = static_cast<float>(total / static_cast<double>(features));
      for (int64_t i = r0; i < r0 + m; ++i) {
        float* out = y + i * width;
        std::memcpy(out, x + i * features, static_cast<size_t>(features) * sizeof(float));
        for (int64_t e = 0; e < extra; ++e) out[features + e] = stat;
      }
    }
  }
  void minibatch_stddev_backward(int64_t rows, int64_t group, int64_t features, int64_t extra, const float* x,
                                 const float* dy, float* dx) override {
    const int64_t groups = (rows + group - 1) / group, width = features + extra;
#pragma omp parallel for schedule(static) if (rows * width > parallel_threshold)
    for (int64_t k = 0; k < groups; ++k) {
      const int64_t r0 = k * group, m = std::min(group, rows - r0);
      double dstat = 0.0;
      for (int64_t i = r0; i < r0 + m; ++i)
        for (int64_t e = 0; e < extra; ++e) dstat += dy[i * width + features + e];
      const float scale = static_cast<float>(dstat / static_cast<double>(features * m));
      for (int64_t f0 = 0; f0 < features; f0 += stddev_chunk) {
        const int64_t n = std::min(stddev_chunk, features - f0);
        float mean[stddev_chunk], s[stddev_chunk];
        group_stddev(x + r0 * features + f0, m, features, n, mean, s);
        for (int64_t j = 0; j < n; ++j) s[j] = scale / s[j];
        for (int64_t i = r0; i < r0 + m; ++i) {
          const float* xi = x + i * features + f0;
          const float* d = dy + i * width + f0;
          float* o = dx + i * features + f0;
          for (int64_t j = 0; j < n; ++j) o[j] = d[j] + (xi[j] - mean[j]) * s[j];
        }
      }
    }
  }

  void max_unpool(int64_t planes, int64_t pooled, int64_t hw, const float* x, const int32_t* argmax,
                  float* y) override {
    std::memset(y, 0, static_cast<size_t>(planes * hw) * sizeof(float));
#pragma omp parallel for schedule(static) if (planes * pooled > parallel_threshold)
    for (int64_t p = 0; p < planes; ++p)
      for (int64_t o = 0; o < pooled; ++o) {
        int32_t where = argmax[p * pooled + o];
        if (where >= 0) y[p * hw + where] += x[p * pooled + o];
      }
  }
  void max_unpool_backward(int64_t planes, int64_t pooled, int64_t hw, const float* dy, const int32_t* argmax,
                           float* dx) override {
#pragma omp parallel for schedule(static) if (planes * pooled > parallel_threshold)
    for (int64_t p = 0; p < planes; ++p)
      for (int64_t o = 0; o < pooled; ++o) {
        int32_t where = argmax[p * pooled + o];
        dx[p * pooled + o] = where >= 0 ? dy[p * hw + where] : 0.0f;
      }
  }

  void embedding(int64_t count, int64_t dim, int64_t vocab, const float* ids, const float* weight, float* y) override {
    for (int64_t i = 0; i < count; ++i) {
      const float v = std::nearbyint(ids[i]);
      if (!(v >= 0.0f && v < static_cast<float>(vocab)))
        fail_input("embedding: id " + std::to_string(ids[i]) + " is outside [0, " + std::to_string(vocab) + ")");
      std::memcpy(y + i * dim, weight + static_cast<int64_t>(v) * dim, static_cast<size_t>(dim) * sizeof(float));
    }
  }
  void embedding_backward(int64_t count, int64_t dim, const float* ids, const float* dy, float* dweight) override {
    for (int64_t i = 0; i < count; ++i) {
      float* w = dweight + static_cast<int64_t>(std::nearbyint(ids[i])) * dim;
      const float* d = dy + i * dim;
#pragma omp simd
      for (int64_t j = 0; j < dim; ++j) w[j] += d[j];
    }
  }

  void lstm_cell(int64_t n, int64_t hidden, float* gates, const float* c_prev, float* c, float* h) override {
#pragma omp parallel for schedule(static) if (n * hidden * 8 > parallel_threshold)
    for (int64_t r = 0; r < n; ++r) {
      const int64_t at = r * hidden;
      if (c_prev)
        lstm_row<true>(hidden, gates + 4 * at, c_prev + at, c + at, h + at);
      else
        lstm_row<false>(hidden, gates + 4 * at, nullptr, c + at, h + at);
    }
  }
  void lstm_cell_backward(int64_t n, int64_t hidden, const float* gates, const float* c_prev, const float* c,
                          const float* dh, float* dc, float* dgates) override {
#pragma omp parallel for schedule(static) if (n * hidden * 8 > parallel_threshold)
    for (int64_t r = 0; r < n; ++r) {
      const int64_t at = r * hidden;
      if (c_prev)
        lstm_row_backward<true>(hidden, gates + 4 * at, c_prev + at, c + at, dh + at, dc + at, dgates + 4 * at);
      else
        lstm_row_backward<false>(hidden, gates + 4 * at, nullptr, c + at, dh + at, dc + at, dgates + 4 * at);
    }
  }

  void gaussian_sample(int64_t rows, int64_t k, bool sample, const SampleKeys& keys, const float* x, float* z,
                       float* kl) override {
    double total = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
      const float* mu = x + r * 2 * k;
      const float* logvar = mu + k;
      const uint64_t s = static_cast<uint64_t>(keys.row0 + r);
      for (int64_t j = 0; j < k; ++j) {
        const float eps = sample ? philox_normal(keys.key, keys.step, s, static_cast<uint64_t>(j)) : 0.0f;
        z[r * k + j] = mu[j] + std::exp(0.5f * logvar[j]) * eps;
        total +=
            0.5 * (std::exp(static_cast<double>(logvar[j])) + static_cast<double>(mu[j]) * mu[j] - 1.0 - logvar[j]);
      }
    }
    if (kl) *kl += static_cast<float>(total);
  }
  void gaussian_sample_backward(int64_t rows, int64_t k, bool sample, const SampleKeys& keys, const float* x,
                                const float* dz, float kl_scale, float* dx) override {
    for (int64_t r = 0; r < rows; ++r) {
      const float* mu = x + r * 2 * k;
      const float* logvar = mu + k;
      float* dmu = dx + r * 2 * k;
      float* dlogvar = dmu + k;
      const uint64_t s = static_cast<uint64_t>(keys.row0 + r);
      for (int64_t j = 0; j < k; ++j) {
        const float eps = sample ? philox_normal(keys.key, keys.step, s, static_cast<uint64_t>(j)) : 0.0f;
        const float d = dz[r * k + j], sd = std::exp(0.5f * logvar[j]);
        dmu[j] = d + kl_scale * mu[j];
        dlogvar[j] = 0.5f * d * eps * sd + kl_scale * 0.5f * (sd * sd - 1.0f);
      }
    }
  }

  // ---- GAN objectives (issue #6): one score per row; the sum runs in row order, in double.
  void gan_loss(const GanTerm& t, int64_t rows, const float* scores, float scale, float* dscores,
                float* stats) override {
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

  void clamp(int64_t n, float lo, float hi, float* x) override {
    for (int64_t i = 0; i < n; ++i) x[i] = std::min(std::max(x[i], lo), hi);
  }
};

}  // namespace

KernelBackend& cpu_kernels() {
  static CpuKernels backend;
  return backend;
}

void set_cpu_threads(int threads) {
  if (threads <= 0) return;
  cpu_gemm_init();  // OpenBLAS stays on one thread; cpu_gemm threads it with OpenMP
  omp_set_num_threads(threads);
}

int cpu_threads() { return omp_get_max_threads(); }

}  // namespace dptrain
