// The optimizer step of the CUDA backend: one fused kernel over the flat buffers (docs/design.md rule 1),
// a template instance per optimizer kind with the formulas of the CPU's pass (CpuOptimizer.cpp),
// so that each element reads w, g and its states once and writes them once.
#include "models/kernels/cuda/CudaInternal.cuh"

namespace dptrain::cuda {

namespace {

template <OptimizerKind K>
__device__ __forceinline__ float update_one(const OptimizerStep& s, float gi, float& m, float& v) {
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
  } else {  // adam, adamw: the decoupled decay is the `decay` factor below
    m = s.beta1 * m + (1.0f - s.beta1) * gi;
    v = s.beta2 * v + (1.0f - s.beta2) * gi * gi;
    return s.lr * (m / s.bias_correction1) / (sqrtf(v / s.bias_correction2) + s.eps);
  }
}

template <OptimizerKind K, bool Regularized>
__global__ void optimizer_kernel(OptimizerStep s, int64_t n, float* __restrict__ w, const float* __restrict__ g,
                                 float* __restrict__ m, float* __restrict__ v) {
  constexpr bool uses_m = K != OptimizerKind::sgd;
  constexpr bool uses_v = K == OptimizerKind::adam || K == OptimizerKind::adamw;
  const float decay = 1.0f - s.lr * s.weight_decay;
  DPT_GRID_STRIDE(i, n) {
    const float wi = w[i];
    float gi = g[i] * s.grad_scale;
    if constexpr (Regularized) gi += s.l2 * wi + s.l1 * static_cast<float>((wi > 0.0f) - (wi < 0.0f));
    float mi = uses_m ? m[i] : 0.0f, vi = uses_v ? v[i] : 0.0f;
    const float step = update_one<K>(s, gi, mi, vi);
    w[i] = wi * decay - step;
    if constexpr (uses_m) m[i] = mi;
    if constexpr (uses_v) v[i] = vi;
  }
}

template <OptimizerKind K>
void launch_update(cudaStream_t stream, const OptimizerStep& s, int64_t n, float* w, const float* g, float* m,
                   float* v) {
  if (s.l1 != 0.0f || s.l2 != 0.0f)
    optimizer_kernel<K, true><<<blocks_for(n), threads, 0, stream>>>(s, n, w, g, m, v);
  else
    optimizer_kernel<K, false><<<blocks_for(n), threads, 0, stream>>>(s, n, w, g, m, v);
  DPT_CUDA_LAUNCHED();
}

__global__ void clamp_kernel(int64_t n, float lo, float hi, float* x) {
  DPT_GRID_STRIDE(i, n) x[i] = fminf(fmaxf(x[i], lo), hi);
}

}  // namespace

void CudaKernels::optimizer_update(const OptimizerStep& s, int64_t n, float* w, const float* g, float* m, float* v) {
  if (n <= 0) return;
  switch (s.kind) {
    case OptimizerKind::sgd:
      return launch_update<OptimizerKind::sgd>(stream_, s, n, w, g, m, v);
    case OptimizerKind::momentum:
      return launch_update<OptimizerKind::momentum>(stream_, s, n, w, g, m, v);
    case OptimizerKind::nesterov:
      return launch_update<OptimizerKind::nesterov>(stream_, s, n, w, g, m, v);
    case OptimizerKind::adagrad:
      return launch_update<OptimizerKind::adagrad>(stream_, s, n, w, g, m, v);
    case OptimizerKind::rmsprop:
      return launch_update<OptimizerKind::rmsprop>(stream_, s, n, w, g, m, v);
    case OptimizerKind::adam:
      return launch_update<OptimizerKind::adam>(stream_, s, n, w, g, m, v);
    case OptimizerKind::adamw:
      return launch_update<OptimizerKind::adamw>(stream_, s, n, w, g, m, v);
  }
}

void CudaKernels::clamp(int64_t n, float lo, float hi, float* x) {
  if (n <= 0) return;
  clamp_kernel<<<blocks_for(n), threads, 0, stream_>>>(n, lo, hi, x);
  DPT_CUDA_LAUNCHED();
}

}  // namespace dptrain::cuda
