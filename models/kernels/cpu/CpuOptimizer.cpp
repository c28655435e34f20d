// The optimizer step as one fused pass over the flat buffers (docs/design.md rule 1), one loop per
// optimizer kind: a switch inside the loop kept it from vectorizing, and the pass is memory-bound
// (it reads w, g and the states and writes them back), so it has to run at memory speed. The
// per-element update is KernelMath.h's, shared with the CUDA backend; every call of it below is
// inlined into its own vectorized loop.
#include <algorithm>
#include <bit>
#include <cstdint>

#include "models/kernels/KernelMath.h"
#include "models/kernels/cpu/CpuInternal.h"

namespace dptrain {

namespace {

// Checked: also counts the gradients whose exponent bits are all ones (NaN or infinite), an
// integer reduction that vectorizes with the update and costs nothing in a memory-bound pass.
template <OptimizerKind K, bool Regularized, bool Checked>
int64_t update_all(const OptimizerStep& s, int64_t n, float* __restrict w, const float* __restrict g,
                   float* __restrict m, float* __restrict v) {
  constexpr bool uses_m = K != OptimizerKind::sgd;
  constexpr bool uses_v = K == OptimizerKind::adam || K == OptimizerKind::adamw;
  const float decay = 1.0f - s.lr * s.weight_decay;
  int64_t nonfinite = 0;
#pragma omp parallel for simd schedule(static) reduction(+ : nonfinite) if (n > cpu_parallel_threshold)
  for (int64_t i = 0; i < n; ++i) {
    if constexpr (Checked) nonfinite += (std::bit_cast<uint32_t>(g[i]) & 0x7f800000u) == 0x7f800000u;
    float wi = w[i];
    float gi = regularized_gradient<Regularized>(s, g[i], wi);
    float mi = uses_m ? m[i] : 0.0f, vi = uses_v ? v[i] : 0.0f;
    float step = update_one<K>(s, gi, mi, vi);
    w[i] = wi * decay - step;
    if constexpr (uses_m) m[i] = mi;
    if constexpr (uses_v) v[i] = vi;
  }
  return nonfinite;
}

template <OptimizerKind K, bool Checked>
int64_t update_kind(const OptimizerStep& s, int64_t n, float* w, const float* g, float* m, float* v) {
  if (s.l1 != 0.0f || s.l2 != 0.0f) return update_all<K, true, Checked>(s, n, w, g, m, v);
  return update_all<K, false, Checked>(s, n, w, g, m, v);
}

template <bool Checked>
int64_t update(const OptimizerStep& s, int64_t n, float* w, const float* g, float* m, float* v) {
  switch (s.kind) {
    case OptimizerKind::sgd:
      return update_kind<OptimizerKind::sgd, Checked>(s, n, w, g, m, v);
    case OptimizerKind::momentum:
      return update_kind<OptimizerKind::momentum, Checked>(s, n, w, g, m, v);
    case OptimizerKind::nesterov:
      return update_kind<OptimizerKind::nesterov, Checked>(s, n, w, g, m, v);
    case OptimizerKind::adagrad:
      return update_kind<OptimizerKind::adagrad, Checked>(s, n, w, g, m, v);
    case OptimizerKind::rmsprop:
      return update_kind<OptimizerKind::rmsprop, Checked>(s, n, w, g, m, v);
    case OptimizerKind::adam:
      return update_kind<OptimizerKind::adam, Checked>(s, n, w, g, m, v);
    case OptimizerKind::adamw:
      return update_kind<OptimizerKind::adamw, Checked>(s, n, w, g, m, v);
  }
  return 0;
}

}  // namespace

void cpu_optimizer_update(const OptimizerStep& s, int64_t n, float* w, const float* g, float* m, float* v) {
  update<false>(s, n, w, g, m, v);
}

bool cpu_optimizer_update_checked(const OptimizerStep& s, int64_t n, float* w, const float* g, float* m, float* v) {
  return update<true>(s, n, w, g, m, v) == 0;
}

bool CpuKernels::optimizer_update_checked(const OptimizerStep& s, int64_t n, float* w, const float* g, float* m,
                                          float* v) {
  return cpu_optimizer_update_checked(s, n, w, g, m, v);
}

void CpuKernels::optimizer_update(const OptimizerStep& s, int64_t n, float* w, const float* g, float* m, float* v) {
  cpu_optimizer_update(s, n, w, g, m, v);
}

void CpuKernels::clamp(int64_t n, float lo, float hi, float* x) {
  for (int64_t i = 0; i < n; ++i) x[i] = std::min(std::max(x[i], lo), hi);
}

}  // namespace dptrain
