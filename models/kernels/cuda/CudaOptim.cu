// The optimizer step of the CUDA backend: one fused kernel over the flat buffers (docs/design.md rule 1),
// a template instance per optimizer kind with the per-element update the CPU's pass uses too
// (KernelMath.h), so that each element reads w, g and its states once and writes them once.
#include <cmath>

#include "models/kernels/cuda/CudaInternal.cuh"

namespace dptrain::cuda {

namespace {

template <OptimizerKind K, bool Regularized>
__global__ void optimizer_kernel(OptimizerStep s, int64_t n, float* __restrict__ w, const float* __restrict__ g,
                                 float* __restrict__ m, float* __restrict__ v) {
  constexpr bool uses_m = K != OptimizerKind::sgd;
  constexpr bool uses_v = K == OptimizerKind::adam || K == OptimizerKind::adamw;
  const float decay = 1.0f - s.lr * s.weight_decay;
  DPT_GRID_STRIDE(i, n) {
    const float wi = w[i];
    const float gi = regularized_gradient<Regularized>(s, g[i], wi);
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

bool CudaKernels::optimizer_update_checked(const OptimizerStep& s, int64_t n, float* w, const float* g, float* m,
                                           float* v) {
  // The sum of squares is finite exactly when every gradient is (in double, squares of floats
  // cannot overflow it); one reduction and a copy to the host, before the update.
  const bool finite = n <= 0 || std::isfinite(sum_squares(n, g));
  optimizer_update(s, n, w, g, m, v);
  return finite;
}

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
