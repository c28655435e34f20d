#include "models/layers/Gelu.h"

#include "models/kernels/KernelBackend.h"

namespace dptrain {

void Gelu::forward(const Tensor& in, Tensor& out, const StepContext&) {
  out.resize(in.shape(), in.device());
  kernels(in.device()).gelu(in.numel(), in.data(), out.data());
}

void Gelu::backward(const Tensor& in, const Tensor&, const Tensor& dout, Tensor* din, const StepContext&) {
  if (!din) return;
  din->resize(in.shape(), in.device());
  kernels(in.device()).gelu_backward(in.numel(), in.data(), dout.data(), din->data());
}

}  // namespace dptrain
