#include "models/layers/Reshape.h"

#include "models/core/Error.h"

namespace dptrain {

Shape Reshape::setup(const Shape& in, ParamRegistry&) {
  if (flatten_) {
    target_ = Shape{in.numel()};
  } else if (target_.numel() != in.numel()) {
    fail_input("reshape: cannot reshape a sample of " + in.str() + " to " + target_.str());
  }
  return target_;
}

void Reshape::forward(const Tensor& in, Tensor& out, const StepContext&) {
  out = in.reshaped(target_.with_batch(in.rows()));
}

void Reshape::backward(const Tensor& in, const Tensor&, const Tensor& dout, Tensor* din, const StepContext&) {
  if (!din) return;
  // A copy, not an alias: the container ping-pongs two gradient buffers, and an alias of one
  // would be overwritten by the next layer's backward.
  din->resize(in.shape(), in.device());
  din->copy_from(dout);
}

}  // namespace dptrain
