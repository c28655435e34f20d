#include "models/layers/SequencePool.h"

#include "models/core/Error.h"
#include "models/kernels/KernelBackend.h"

namespace dptrain {

Shape SequencePool::setup(const Shape& in, ParamRegistry&) {
  if (in.rank() != 2) fail_input("mean_pool: input must be a sequence [steps, features] per sample, got " + in.str());
  steps_ = in[0];
  dim_ = in[1];
  return {dim_};
}

void SequencePool::forward(const Tensor& in, Tensor& out, const StepContext&) {
  out.resize({in.rows(), dim_}, in.device());
  kernels(in.device()).sequence_mean(in.rows(), steps_, dim_, in.data(), mask_ ? mask_->data() : nullptr, out.data());
}

void SequencePool::backward(const Tensor& in, const Tensor&, const Tensor& dout, Tensor* din, const StepContext&) {
  if (!din) return;
  din->resize(in.shape(), in.device());
  kernels(in.device())
      .sequence_mean_backward(in.rows(), steps_, dim_, dout.data(), mask_ ? mask_->data() : nullptr, din->data());
}

}  // namespace dptrain
