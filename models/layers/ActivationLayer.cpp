#include "models/layers/ActivationLayer.h"

#include "models/layers/ActivationNames.h"

namespace dptrain {

std::string ActivationLayer::kind() const { return activation_name(act_); }

void ActivationLayer::forward(const Tensor& in, Tensor& out, const StepContext&) {
  out.resize(in.shape(), in.device());
  kernels(in.device()).activation(act_, slope_, in.numel(), in.data(), out.data());
}

void ActivationLayer::backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din,
                               const StepContext&) {
  if (!din) return;
  din->resize(in.shape(), in.device());
  kernels(in.device()).activation_backward(act_, slope_, dout.numel(), out.data(), dout.data(), din->data());
}

}  // namespace dptrain
