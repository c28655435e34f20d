#include "models/layers/Dense.h"

#include "models/core/Error.h"
#include "models/layers/ActivationNames.h"

namespace dptrain {

Dense::Dense(int64_t out_features, bool bias, Activation act, float slope)
    : out_(out_features), has_bias_(bias), act_(act), slope_(slope) {
  if (out_features <= 0) fail_input("dense: units must be positive, got " + std::to_string(out_features));
}

std::string Dense::describe() const {
  return "dense " + std::to_string(in_) + "->" + std::to_string(out_) +
         (act_ == Activation::identity ? "" : " " + activation_name(act_));
}

Shape Dense::setup(const Shape& in, ParamRegistry& registry) {
  in_ = in.numel();
  bool he = act_ == Activation::relu || act_ == Activation::leaky_relu;
  ParamInit w{he ? ParamInit::he_uniform : ParamInit::xavier_uniform, 0.0f, in_, out_};
  registry.declare("weight", {out_, in_}, w, &weight_, &dweight_);
  if (has_bias_) registry.declare("bias", {out_}, {ParamInit::zeros}, &bias_, &dbias_);
  return {out_};
}

void Dense::forward(const Tensor& in, Tensor& out, const StepContext&) {
  KernelBackend& k = kernels(in.device());
  const int64_t rows = in.rows();
  out.resize({rows, out_}, in.device());
  k.dense_forward(rows, in_, out_, in.data(), weight_.data(), has_bias_ ? bias_.data() : nullptr, act_, slope_,
                  out.data(), scratch_);
}

void Dense::backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) {
  KernelBackend& k = kernels(in.device());
  const int64_t rows = in.rows();
  const float* dz = dout.data();
  if (act_ != Activation::identity) {
    dz_.resize(dout.shape(), dout.device());
    k.activation_backward(act_, slope_, dout.numel(), out.data(), dout.data(), dz_.data());
    dz = dz_.data();
  }
  if (ctx.parameter_gradients) {
    k.gemm(true, false, out_, in_, rows, 1.0f, dz, out_, in.data(), in_, 1.0f, dweight_.data(), in_);
    if (has_bias_) k.row_bias_grad(rows, out_, dz, dbias_.data());
  }
  if (din) {
    din->resize(in.shape(), in.device());
    k.dense_backward_input(rows, in_, out_, dz, weight_.data(), din->data());
  }
}

}  // namespace dptrain
