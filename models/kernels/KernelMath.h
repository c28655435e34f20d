// Per-element math that the CPU backend (cpu/) and the CUDA backend (cuda/) both compute, written
// once for host and device: the activations and their derivatives, the optimizers' updates and the
// adversarial inputs' selection and updates.
// The CPU inlines these into loops that must vectorize, so they stay small, branch-free where the
// kind is a template argument or a constant, and use only functions both sides have (expf, tanhf,
// sqrtf, erff; nothing from std::).
#pragma once

#include <math.h>

#include "models/kernels/KernelBackend.h"

#if defined(__CUDACC__)
#define DPT_HOST_DEVICE_INLINE __host__ __device__ __forceinline__
#else
#define DPT_HOST_DEVICE_INLINE inline
#endif

namespace dptrain {

// act(v); `slope` is leaky ReLU's slope for negative v.
DPT_HOST_DEVICE_INLINE float activate(Activation act, float slope, float v) {
  switch (act) {
    case Activation::identity:
      return v;
    case Activation::relu:
      return v > 0.0f ? v : 0.0f;
    case Activation::leaky_relu:
      return v > 0.0f ? v : slope * v;
    case Activation::sigmoid:
      return 1.0f / (1.0f + expf(-v));
    case Activation::tanh:
      return tanhf(v);
  }
  return v;
}

// act'(.) from the activation's output y (every activation here allows it).
DPT_HOST_DEVICE_INLINE float activation_derivative(Activation act, float slope, float y) {
  switch (act) {
    case Activation::identity:
      return 1.0f;
    case Activation::relu:
      return y > 0.0f ? 1.0f : 0.0f;
    case Activation::leaky_relu:
      return y > 0.0f ? 1.0f : slope;
    case Activation::sigmoid:
      return y * (1.0f - y);
    case Activation::tanh:
      return 1.0f - y * y;
  }
  return 1.0f;
}

// GELU in its exact form, x Phi(x) = x (1 + erf(x / sqrt 2)) / 2, and its derivative
// Phi(x) + x phi(x) (a function of the input: GELU's output does not determine it).
DPT_HOST_DEVICE_INLINE float gelu_value(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
DPT_HOST_DEVICE_INLINE float gelu_derivative(float x) {
  const float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
  return cdf + x * 0.39894228040143268f * expf(-0.5f * x * x);
}

// Adversarial inputs (KernelBackend::adversarial_start/step). A row is attacked when its draw at
// (key, step, global sample) is below `fraction`; the draw sits in a counter block no element's
// noise draw reaches (element j uses draw j), so selection and noise are independent. Both backends
// (and the tests) select with this one function.
constexpr uint64_t adversarial_selection_draw = uint64_t{1} << 62;
DPT_HOST_DEVICE_INLINE bool adversarial_row_selected(const SampleKeys& keys, int64_t global_row, float fraction) {
  return fraction >= 1.0f ||
         philox_uniform(keys.key, keys.step, static_cast<uint64_t>(global_row), adversarial_selection_draw) < fraction;
}
// x0 + U(-epsilon, epsilon] from the uniform (0, 1] draw u: 2u - 1 is exact and the fused
// multiply-add rounds once, so both backends give the same bits.
DPT_HOST_DEVICE_INLINE float adversarial_start_value(float x0, float epsilon, float u) {
  return fmaf(epsilon, 2.0f * u - 1.0f, x0);
}
// x + step_size sign(g), clamped to [x0 - epsilon, x0 + epsilon].
DPT_HOST_DEVICE_INLINE float adversarial_step_value(float x, float x0, float g, float step_size, float epsilon) {
  const float lo = x0 - epsilon, hi = x0 + epsilon;
  const float v = x + step_size * static_cast<float>((g > 0.0f) - (g < 0.0f));
  return v < lo ? lo : (v > hi ? hi : v);
}

// The gradient an optimizer step uses: scaled (gradient-norm clipping), plus the L2 and L1 terms.
template <bool Regularized>
DPT_HOST_DEVICE_INLINE float regularized_gradient(const OptimizerStep& s, float g, float w) {
  g *= s.grad_scale;
  if constexpr (Regularized) g += s.l2 * w + s.l1 * static_cast<float>((w > 0.0f) - (w < 0.0f));
  return g;
}

// The step of one parameter for one optimizer kind (subtracted from the parameter); updates its
// states m and v as the kind needs them. Adam and AdamW differ only in the decoupled decay, which
// the caller applies as w (1 - lr weight_decay).
template <OptimizerKind K>
DPT_HOST_DEVICE_INLINE float update_one(const OptimizerStep& s, float gi, float& m, float& v) {
  if constexpr (K == OptimizerKind::sgd) {
    return s.lr * gi;
  } else if constexpr (K == OptimizerKind::momentum) {
    m = s.momentum * m + gi;
    return s.lr * m;
  } else if constexpr (K == OptimizerKind::nesterov) {
    m = s.momentum * m + gi;
    return s.lr * (gi + s.momentum * m);
  } else if constexpr (K == OptimizerKind::adagrad) {
    m += gi * gi;
    return s.lr * gi / (sqrtf(m) + s.eps);
  } else if constexpr (K == OptimizerKind::rmsprop) {
    m = s.rho * m + (1.0f - s.rho) * gi * gi;
    return s.lr * gi / (sqrtf(m) + s.eps);
  } else {  // adam, adamw
    m = s.beta1 * m + (1.0f - s.beta1) * gi;
    v = s.beta2 * v + (1.0f - s.beta2) * gi * gi;
    return s.lr * (m / s.bias_correction1) / (sqrtf(v / s.bias_correction2) + s.eps);
  }
}

}  // namespace dptrain
