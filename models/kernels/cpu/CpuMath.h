// Float math for the CPU backend's loops that must vectorize: libm's expf, tanhf and erff are scalar
// calls, which keep a loop around them scalar. Files that use these are compiled with
// -fno-trapping-math (models/CMakeLists.txt) so the clamps if-convert.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace dptrain {

// e^x in plain float arithmetic, so that loops around it vectorize (40 % of an LSTM step went to
// libm's expf and tanhf). Cody-Waite reduction
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

// GELU's two parts at x: Phi(x), the normal CDF, and phi(x), the density. erf by Abramowitz and
// Stegun 7.1.26 (absolute error <= 1.5e-7): 1 - erf(z) = poly(t) e^(-z^2), t = 1 / (1 + p z) for
// z = |x| / sqrt 2 >= 0, and e^(-z^2) = e^(-x^2 / 2) is phi(x) sqrt(2 pi) too, so one exponential
// serves both. Phi(x) for x < 0 is poly e / 2 itself, without the cancellation of 1 - erf.
inline void gelu_parts(float x, float& cdf, float& pdf) {
  const float z = std::fabs(x) * 0.70710678118654752f;
  const float t = 1.0f / (1.0f + 0.3275911f * z);
  const float poly =
      t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  const float e = gate_exp(-0.5f * x * x);
  const float tail = 0.5f * poly * e;  // Phi(-|x|)
  cdf = x < 0.0f ? tail : 1.0f - tail;
  pdf = 0.39894228040143268f * e;
}

}  // namespace dptrain
