#include "models/layers/Recurrent.h"

#include <cmath>

#include "models/core/Error.h"
#include "models/kernels/KernelBackend.h"

namespace dptrain {

Recurrent::Recurrent(Cell cell, int64_t hidden, bool return_sequences)
    : cell_(cell), hidden_(hidden), return_sequences_(return_sequences) {
  if (hidden <= 0) fail_input(kind() + ": hidden size must be positive");
}

std::string Recurrent::kind() const {
  switch (cell_) {
    case Cell::rnn:
      return "rnn";
    case Cell::lstm:
      return "lstm";
    case Cell::gru:
      return "gru";
  }
  return "?";
}

std::string Recurrent::describe() const {
  return kind() + " " + std::to_string(features_) + "->" + std::to_string(hidden_) + " over " + std::to_string(steps_) +
         " steps" + (return_sequences_ ? " (sequences)" : "");
}

Shape Recurrent::setup(const Shape& in, ParamRegistry& registry) {
  if (in.rank() != 2) fail_input(kind() + ": input must be a sequence [steps, features] per sample, got " + in.str());
  steps_ = in[0];
  features_ = in[1];
  // PyTorch's initialization: every weight and bias uniform in +-1/sqrt(hidden).
  const float bound = 1.0f / std::sqrt(static_cast<float>(hidden_));
  registry.declare("weight_ih", {gates(), features_}, {ParamInit::uniform, bound}, &w_ih_, &dw_ih_);
  registry.declare("weight_hh", {gates(), hidden_}, {ParamInit::uniform, bound}, &w_hh_, &dw_hh_);
  registry.declare("bias", {gates()}, {ParamInit::uniform, bound}, &bias_, &dbias_);
  if (cell_ == Cell::gru) registry.declare("bias_hh", {gates()}, {ParamInit::uniform, bound}, &bias_hh_, &dbias_hh_);
  return return_sequences_ ? Shape{steps_, hidden_} : Shape{hidden_};
}

const float* Recurrent::h_at(int64_t t, int64_t n) const {
  return cell_ == Cell::rnn ? gates_.data() + t * n * hidden_ : h_.data() + t * n * hidden_;
}

void Recurrent::forward(const Tensor& in, Tensor& out, const StepContext&) {
  KernelBackend& k = kernels(in.device());
  const int64_t n = in.rows(), T = steps_, F = features_, H = hidden_, G = gates();
  gates_.resize({T, n, G}, in.device());
  if (cell_ != Cell::rnn) h_.resize({T, n, H}, in.device());
  if (cell_ == Cell::lstm) c_.resize({T, n, H}, in.device());
  if (cell_ == Cell::gru) gh_.resize({T, n, G}, in.device());
  for (int64_t t = 0; t < T; ++t) {
    float* z = gates_.data() + t * n * G;
    k.gemm(false, true, n, G, F, 1.0f, in.data() + t * F, T * F, w_ih_.data(), F, 0.0f, z, G);
    if (cell_ == Cell::gru) {  // the recurrent product stays apart: r scales its n part
      float* zh = gh_.data() + t * n * G;
      if (t > 0)
        k.gemm(false, true, n, G, H, 1.0f, h_at(t - 1, n), H, w_hh_.data(), H, 0.0f, zh, G);
      else
        k.fill(n * G, 0.0f, zh);
      k.bias_activation(Activation::identity, 0.0f, n, G, 1, bias_.data(), z);
      k.bias_activation(Activation::identity, 0.0f, n, G, 1, bias_hh_.data(), zh);
      k.gru_cell(n, H, z, zh, t > 0 ? h_.data() + (t - 1) * n * H : nullptr, h_.data() + t * n * H);
      continue;
    }
    if (t > 0) k.gemm(false, true, n, G, H, 1.0f, h_at(t - 1, n), H, w_hh_.data(), H, 1.0f, z, G);
    if (cell_ == Cell::rnn) {
      k.bias_activation(Activation::tanh, 0.0f, n, G, 1, bias_.data(), z);
    } else {
      k.bias_activation(Activation::identity, 0.0f, n, G, 1, bias_.data(), z);
      k.lstm_cell(n, H, z, t > 0 ? c_.data() + (t - 1) * n * H : nullptr, c_.data() + t * n * H, h_.data() + t * n * H);
    }
  }
  if (return_sequences_) {
    out.resize({n, T, H}, in.device());
    for (int64_t t = 0; t < T; ++t) k.copy_2d(n, H, h_at(t, n), H, out.data() + t * H, T * H);
  } else {
    out.resize({n, H}, in.device());
    k.copy(n * H, h_at(T - 1, n), out.data());
  }
}

void Recurrent::backward(const Tensor& in, const Tensor&, const Tensor& dout, Tensor* din, const StepContext& ctx) {
  KernelBackend& k = kernels(in.device());
  const int64_t n = in.rows(), T = steps_, F = features_, H = hidden_, G = gates();
  dh_.resize({n, H}, in.device());
  dh_next_.resize({n, H}, in.device());
  dgates_.resize({n, G}, in.device());
  if (cell_ == Cell::gru) dgh_.resize({n, G}, in.device());
  if (cell_ == Cell::lstm) {
    dc_.resize({n, H}, in.device());
    dc_.fill(0.0f);
  }
  if (din) din->resize(in.shape(), in.device());
  for (int64_t t = T - 1; t >= 0; --t) {
    // dh = the output's gradient at step t plus what flows back from step t + 1.
    if (return_sequences_)
      k.copy_2d(n, H, dout.data() + t * H, T * H, dh_.data(), H);
    else if (t == T - 1)
      k.copy(n * H, dout.data(), dh_.data());
    else
      dh_.fill(0.0f);
    if (t < T - 1) k.axpy(n * H, 1.0f, dh_next_.data(), dh_.data());
    const float* z = gates_.data() + t * n * G;
    if (cell_ == Cell::gru) {
      gru_step_backward(k, in, t, n, din, ctx);
      continue;
    }
    if (cell_ == Cell::rnn)
      k.activation_backward(Activation::tanh, 0.0f, n * H, z, dh_.data(), dgates_.data());
    else
      k.lstm_cell_backward(n, H, z, t > 0 ? c_.data() + (t - 1) * n * H : nullptr, c_.data() + t * n * H, dh_.data(),
                           dc_.data(), dgates_.data());
    const float* x = in.data() + t * F;
    if (ctx.parameter_gradients) {
      k.gemm(true, false, G, F, n, 1.0f, dgates_.data(), G, x, T * F, 1.0f, dw_ih_.data(), F);
      if (t > 0) k.gemm(true, false, G, H, n, 1.0f, dgates_.data(), G, h_at(t - 1, n), H, 1.0f, dw_hh_.data(), H);
      k.row_bias_grad(n, G, dgates_.data(), dbias_.data());
    }
    if (din) k.gemm(false, false, n, F, G, 1.0f, dgates_.data(), G, w_ih_.data(), F, 0.0f, din->data() + t * F, T * F);
    if (t > 0) k.gemm(false, false, n, H, G, 1.0f, dgates_.data(), G, w_hh_.data(), H, 0.0f, dh_next_.data(), H);
  }
}

// One GRU step of backpropagation through time: dh_ holds dL/dh_t; leaves dL/dh_(t-1) in dh_next_.
void Recurrent::gru_step_backward(KernelBackend& k, const Tensor& in, int64_t t, int64_t n, Tensor* din,
                                  const StepContext& ctx) {
  const int64_t T = steps_, F = features_, H = hidden_, G = gates();
  const float* h_prev = t > 0 ? h_.data() + (t - 1) * n * H : nullptr;
  k.gru_cell_backward(n, H, gates_.data() + t * n * G, gh_.data() + t * n * G, h_prev, dh_.data(), dgates_.data(),
                      dgh_.data(), dh_next_.data());
  const float* x = in.data() + t * F;
  if (ctx.parameter_gradients) {
    k.gemm(true, false, G, F, n, 1.0f, dgates_.data(), G, x, T * F, 1.0f, dw_ih_.data(), F);
    if (t > 0) k.gemm(true, false, G, H, n, 1.0f, dgh_.data(), G, h_prev, H, 1.0f, dw_hh_.data(), H);
    k.row_bias_grad(n, G, dgates_.data(), dbias_.data());
    k.row_bias_grad(n, G, dgh_.data(), dbias_hh_.data());
  }
  if (din) k.gemm(false, false, n, F, G, 1.0f, dgates_.data(), G, w_ih_.data(), F, 0.0f, din->data() + t * F, T * F);
  if (t > 0) k.gemm(false, false, n, H, G, 1.0f, dgh_.data(), G, w_hh_.data(), H, 1.0f, dh_next_.data(), H);
}

}  // namespace dptrain
