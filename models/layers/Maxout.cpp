#include "models/layers/Maxout.h"

#include "models/core/Error.h"
#include "models/kernels/KernelBackend.h"

namespace dptrain {

Maxout::Maxout(int64_t pieces) : pieces_(pieces) {
  if (pieces < 2) fail_input("maxout: pieces must be at least 2, got " + std::to_string(pieces));
}

Shape Maxout::setup(const Shape& in, ParamRegistry&) {
  if (in.numel() % pieces_)
    fail_input("maxout: " + std::to_string(in.numel()) + " features do not divide into groups of " +
               std::to_string(pieces_));
  out_features_ = in.numel() / pieces_;
  return {out_features_};
}

void Maxout::forward(const Tensor& in, Tensor& out, const StepContext&) {
  out.resize({in.rows(), out_features_}, in.device());
  kernels(in.device()).maxout(in.rows(), out_features_, pieces_, in.data(), out.data());
}

void Maxout::backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext&) {
  if (!din) return;
  din->resize(in.shape(), in.device());
  kernels(in.device())
      .maxout_backward(in.rows(), out_features_, pieces_, in.data(), out.data(), dout.data(), din->data());
}

}  // namespace dptrain
