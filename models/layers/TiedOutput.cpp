#include "models/layers/TiedOutput.h"

#include "models/core/Error.h"
#include "models/kernels/KernelBackend.h"

namespace dptrain {

TiedOutput::TiedOutput(Embedding& embedding, bool bias) : embedding_(embedding), has_bias_(bias) {}

std::string TiedOutput::describe() const {
  return "tied_output " + std::to_string(embedding_.dim()) + "->" + std::to_string(embedding_.vocab()) +
         " (the embedding's table)";
}

Shape TiedOutput::setup(const Shape& in, ParamRegistry& registry) {
  if (in.rank() < 1 || in[in.rank() - 1] != embedding_.dim())
    fail_input("tied_output: input " + in.str() + " must end in the embedding's width " +
               std::to_string(embedding_.dim()));
  if (has_bias_) registry.declare("bias", {embedding_.vocab()}, {ParamInit::zeros}, &bias_, &dbias_);
  out_shape_ = in;
  out_shape_[in.rank() - 1] = embedding_.vocab();
  return out_shape_;
}

void TiedOutput::forward(const Tensor& in, Tensor& out, const StepContext&) {
  KernelBackend& k = kernels(in.device());
  const int64_t V = embedding_.vocab(), D = embedding_.dim(), rows = in.numel() / D;
  out.resize(out_shape_.with_batch(in.rows()), in.device());
  k.gemm(false, true, rows, V, D, 1.0f, in.data(), D, embedding_.weight().data(), D, 0.0f, out.data(), V);
  if (has_bias_) k.bias_activation(Activation::identity, 0.0f, rows, V, 1, bias_.data(), out.data());
}

void TiedOutput::backward(const Tensor& in, const Tensor&, const Tensor& dout, Tensor* din, const StepContext& ctx) {
  KernelBackend& k = kernels(in.device());
  const int64_t V = embedding_.vocab(), D = embedding_.dim(), rows = in.numel() / D;
  if (ctx.parameter_gradients) {
    k.gemm(true, false, V, D, rows, 1.0f, dout.data(), V, in.data(), D, 1.0f, embedding_.weight_grad().data(), D);
    if (has_bias_) k.row_bias_grad(rows, V, dout.data(), dbias_.data());
  }
  if (din) {
    din->resize(in.shape(), in.device());
    k.gemm(false, false, rows, D, V, 1.0f, dout.data(), V, embedding_.weight().data(), D, 0.0f, din->data(), D);
  }
}

}  // namespace dptrain
