// The CPU backend's activations. Each activation gets its own instance of every loop (a template
// argument), so the per-element function from KernelMath.h, shared with the CUDA backend, inlines
// into a loop without a switch and vectorizes.
#include <algorithm>

#include "models/kernels/KernelMath.h"
#include "models/kernels/cpu/CpuInternal.h"

namespace dptrain {

namespace {

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
#pragma omp parallel for schedule(static) if (total > cpu_parallel_threshold)
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
#pragma omp parallel for simd schedule(static) if (n > cpu_parallel_threshold)
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * activation_derivative(A, slope, y[i]);
}

}  // namespace

void CpuKernels::bias_activation(Activation act, float slope, int64_t rows, int64_t cols, int64_t hw, const float* bias,
                                 float* y) {
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

void CpuKernels::activation(Activation act, float slope, int64_t n, const float* x, float* y) {
#pragma omp parallel for schedule(static) if (n > cpu_parallel_threshold)
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

void CpuKernels::activation_backward(Activation act, float slope, int64_t n, const float* y, const float* dy,
                                     float* dx) {
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

void CpuKernels::maxout(int64_t rows, int64_t out_cols, int64_t pieces, const float* x, float* y) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < out_cols; ++j) {
      const float* xi = x + (r * out_cols + j) * pieces;
      float m = xi[0];
      for (int64_t i = 1; i < pieces; ++i) m = std::max(m, xi[i]);
      y[r * out_cols + j] = m;
    }
}

void CpuKernels::maxout_backward(int64_t rows, int64_t out_cols, int64_t pieces, const float* x, const float* y,
                                 const float* dy, float* dx) {
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

}  // namespace dptrain
