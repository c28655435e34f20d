// The optimizer step as one fused pass over the flat buffers (docs/design.md rule 1), one loop per
// optimizer kind: a switch inside the loop kept it from vectorizing, and the pass is memory-bound
// (it reads w, g and the states and writes them back), so it has to run at memory speed.
#include <cmath>

#include "models/kernels/cpu/CpuInternal.h"

namespace dptrain {

namespace {

// Loops shorter than this stay on one thread: forking costs more than they do.
constexpr int64_t parallel_threshold = 1 << 15;

// The update of one kind; every call below is inlined into its own vectorized loop.
template <OptimizerKind K>
inline float update_one(const OptimizerStep& s, float gi, float& m, float& v) {
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
    return s.lr * gi / (std::sqrt(m) + s.eps);
  } else if constexpr (K == OptimizerKind::rmsprop) {
    m = s.rho * m + (1.0f - s.rho) * gi * gi;
    return s.lr * gi / (std::sqrt(m) + s.eps);
  } else {  // adam, adamw: the decay (decoupled for adamw) is applied by the caller
    m = s.beta1 * m + (1.0f - s.beta1) * gi;
    v = s.beta2 * v + (1.0f - s.beta2) * gi * gi;
    return s.lr * (m / s.bias_correction1) / (std::sqrt(v / s.bias_correction2) + s.eps);
  }
}

// Regularized gradient: scaled (clipping), plus L2 and L1 terms.
template <bool Regularized>
inline float regularized(const OptimizerStep& s, float g, float w) {
  g *= s.grad_scale;
  if constexpr (Regularized) g += s.l2 * w + s.l1 * static_cast<float>((w > 0.0f) - (w < 0.0f));
  return g;
}

template <OptimizerKind K, bool Regularized>
void update_all(const OptimizerStep& s, int64_t n, float* __restrict w, const float* __restrict g, float* __restrict m,
                float* __restrict v) {
  constexpr bool uses_m = K != OptimizerKind::sgd;
  constexpr bool uses_v = K == OptimizerKind::adam || K == OptimizerKind::adamw;
  const float decay = 1.0f - s.lr * s.weight_decay;
#pragma omp parallel for simd schedule(static) if (n > parallel_threshold)
  for (int64_t i = 0; i < n; ++i) {
    float wi = w[i];
    float gi = regularized<Regularized>(s, g[i], wi);
    float mi = uses_m ? m[i] : 0.0f, vi = uses_v ? v[i] : 0.0f;
    float step = update_one<K>(s, gi, mi, vi);
    w[i] = wi * decay - step;
    if constexpr (uses_m) m[i] = mi;
    if constexpr (uses_v) v[i] = vi;
  }
}

template <OptimizerKind K>
void update_kind(const OptimizerStep& s, int64_t n, float* w, const float* g, float* m, float* v) {
  if (s.l1 != 0.0f || s.l2 != 0.0f)
    update_all<K, true>(s, n, w, g, m, v);
  else
    update_all<K, false>(s, n, w, g, m, v);
}

}  // namespace

void cpu_optimizer_update(const OptimizerStep& s, int64_t n, float* w, const float* g, float* m, float* v) {
  switch (s.kind) {
    case OptimizerKind::sgd:
      return update_kind<OptimizerKind::sgd>(s, n, w, g, m, v);
    case OptimizerKind::momentum:
      return update_kind<OptimizerKind::momentum>(s, n, w, g, m, v);
    case OptimizerKind::nesterov:
      return update_kind<OptimizerKind::nesterov>(s, n, w, g, m, v);
    case OptimizerKind::adagrad:
      return update_kind<OptimizerKind::adagrad>(s, n, w, g, m, v);
    case OptimizerKind::rmsprop:
      return update_kind<OptimizerKind::rmsprop>(s, n, w, g, m, v);
    case OptimizerKind::adam:
      return update_kind<OptimizerKind::adam>(s, n, w, g, m, v);
    case OptimizerKind::adamw:
      return update_kind<OptimizerKind::adamw>(s, n, w, g, m, v);
  }
}

}  // namespace dptrain
