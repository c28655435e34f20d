#include "models/layers/Highway.h"

#include "models/core/Error.h"
#include "models/layers/ActivationNames.h"

namespace dptrain {

Highway::Highway(Activation act, float gate_bias, float slope) : act_(act), gate_bias_(gate_bias), slope_(slope) {}

std::string Highway::describe() const {
  return "highway " + std::to_string(f_) + (act_ == Activation::identity ? "" : " " + activation_name(act_));
}

Shape Highway::setup(const Shape& in, ParamRegistry& registry) {
  f_ = in.numel();
  bool he = act_ == Activation::relu || act_ == Activation::leaky_relu;
  registry.declare("weight_h", {f_, f_}, {he ? ParamInit::he_uniform : ParamInit::xavier_uniform, 0.0f, f_, f_}, &wh_,
                   &dwh_);
  registry.declare("bias_h", {f_}, {ParamInit::zeros}, &bh_, &dbh_);
  registry.declare("weight_t", {f_, f_}, {ParamInit::xavier_uniform, 0.0f, f_, f_}, &wt_, &dwt_);
  registry.declare("bias_t", {f_}, {ParamInit::constant, gate_bias_}, &bt_, &dbt_);
  return in;
}

void Highway::forward(const Tensor& in, Tensor& out, const StepContext&) {
  KernelBackend& k = kernels(in.device());
  const int64_t n = in.rows(), total = n * f_;
  const Shape flat{n, f_};
  h_.resize(flat, in.device());
  t_.resize(flat, in.device());
  diff_.resize(flat, in.device());
  k.gemm(false, true, n, f_, f_, 1.0f, in.data(), f_, wh_.data(), f_, 0.0f, h_.data(), f_);
  k.bias_activation(act_, slope_, n, f_, 1, bh_.data(), h_.data());
  k.gemm(false, true, n, f_, f_, 1.0f, in.data(), f_, wt_.data(), f_, 0.0f, t_.data(), f_);
  k.bias_activation(Activation::sigmoid, 0.0f, n, f_, 1, bt_.data(), t_.data());
  k.copy(total, h_.data(), diff_.data());
  k.axpy(total, -1.0f, in.data(), diff_.data());
  out.resize(in.shape(), in.device());
  k.multiply(total, t_.data(), diff_.data(), out.data());  // y = t (h - x) + x
  k.axpy(total, 1.0f, in.data(), out.data());
}

void Highway::backward(const Tensor& in, const Tensor&, const Tensor& dout, Tensor* din, const StepContext& ctx) {
  KernelBackend& k = kernels(in.device());
  const int64_t n = in.rows(), total = n * f_;
  dh_.resize({n, f_}, in.device());
  dt_.resize({n, f_}, in.device());
  k.multiply(total, dout.data(), t_.data(), dh_.data());     // dL/dh
  k.multiply(total, dout.data(), diff_.data(), dt_.data());  // dL/dt
  if (din) {                                                 // the carry path: dout (1 - t)
    din->resize(in.shape(), in.device());
    k.copy(total, dout.data(), din->data());
    k.axpy(total, -1.0f, dh_.data(), din->data());
  }
  k.activation_backward(act_, slope_, total, h_.data(), dh_.data(), dh_.data());
  k.activation_backward(Activation::sigmoid, 0.0f, total, t_.data(), dt_.data(), dt_.data());
  if (ctx.parameter_gradients) {
    k.gemm(true, false, f_, f_, n, 1.0f, dh_.data(), f_, in.data(), f_, 1.0f, dwh_.data(), f_);
    k.row_bias_grad(n, f_, dh_.data(), dbh_.data());
    k.gemm(true, false, f_, f_, n, 1.0f, dt_.data(), f_, in.data(), f_, 1.0f, dwt_.data(), f_);
    k.row_bias_grad(n, f_, dt_.data(), dbt_.data());
  }
  if (din) {
    k.gemm(false, false, n, f_, f_, 1.0f, dh_.data(), f_, wh_.data(), f_, 1.0f, din->data(), f_);
    k.gemm(false, false, n, f_, f_, 1.0f, dt_.data(), f_, wt_.data(), f_, 1.0f, din->data(), f_);
  }
}

}  // namespace dptrain
