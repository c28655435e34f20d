#include "models/layers/MultiHeadAttention.h"

#include <cmath>
#include <utility>

#include "models/core/Error.h"
#include "models/core/Hash.h"

namespace dptrain {

MultiHeadAttention::MultiHeadAttention(int64_t heads, bool causal, float dropout,
                                       std::shared_ptr<const SequenceMask> mask)
    : heads_(heads), causal_(causal), p_(dropout), mask_(std::move(mask)) {
  if (heads <= 0) fail_input("attention: heads must be positive, got " + std::to_string(heads));
  if (!(dropout >= 0.0f && dropout < 1.0f))
    fail_input("attention: dropout must be in [0, 1), got " + std::to_string(dropout));
}

std::string MultiHeadAttention::describe() const {
  return "attention " + std::to_string(heads_) + " heads x " + std::to_string(head_dim_) + " over " +
         std::to_string(steps_) + " steps" + (causal_ ? ", causal" : "") +
         (p_ > 0.0f ? ", dropout " + std::to_string(p_).substr(0, 4) : "");
}

Shape MultiHeadAttention::setup(const Shape& in, ParamRegistry& registry) {
  if (in.rank() != 2) fail_input("attention: input must be a sequence [steps, features] per sample, got " + in.str());
  steps_ = in[0];
  dim_ = in[1];
  if (dim_ % heads_ != 0)
    fail_input("attention: width " + std::to_string(dim_) + " is not divisible by heads " + std::to_string(heads_));
  head_dim_ = dim_ / heads_;
  registry.declare("in_proj_weight", {3 * dim_, dim_}, {ParamInit::xavier_uniform, 0.0f, dim_, 3 * dim_}, &w_in_,
                   &dw_in_);
  registry.declare("in_proj_bias", {3 * dim_}, {ParamInit::zeros}, &b_in_, &db_in_);
  registry.declare("out_proj_weight", {dim_, dim_}, {ParamInit::xavier_uniform, 0.0f, dim_, dim_}, &w_out_, &dw_out_);
  registry.declare("out_proj_bias", {dim_}, {ParamInit::zeros}, &b_out_, &db_out_);
  id_ = static_cast<uint32_t>(stable_hash(registry.scope()));
  return in;
}

SampleKeys MultiHeadAttention::dropout_keys(const StepContext& ctx) const {
  return {RandomKey::make(ctx.seed, RandomPurpose::dropout, id_), ctx.step, ctx.row0};
}

void MultiHeadAttention::forward(const Tensor& in, Tensor& out, const StepContext& ctx) {
  KernelBackend& k = kernels(in.device());
  const int64_t n = in.rows(), T = steps_, D = dim_, H = heads_, dh = head_dim_, rows = n * T;
  const Device dev = in.device();
  qkv_.resize({rows, 3 * D}, dev);
  probs_.resize({n, H, T, T}, dev);
  context_.resize({rows, D}, dev);
  k.dense_forward(rows, D, 3 * D, in.data(), w_in_.data(), b_in_.data(), Activation::identity, 0.0f, qkv_.data(),
                  in_scratch_);
  // Per sample, one batched product over the heads: scores = Q K^T.
  for (int64_t s = 0; s < n; ++s) {
    const float* q = qkv_.data() + s * T * 3 * D;
    k.gemm_batched(false, true, T, T, dh, 1.0f, q, 3 * D, dh, q + D, 3 * D, dh, 0.0f, probs_.data() + s * H * T * T, T,
                   T * T, H);
  }
  k.attention_softmax(n, H, T, 1.0f / std::sqrt(static_cast<float>(dh)), causal_, mask_ ? mask_->data() : nullptr,
                      probs_.data());
  const float* p = probs_.data();
  if (drops(ctx)) {
    dropped_.resize(probs_.shape(), dev);
    k.dropout(n, H * T * T, p_, dropout_keys(ctx), probs_.data(), dropped_.data());
    p = dropped_.data();
  }
  for (int64_t s = 0; s < n; ++s) {  // O = P V, written into the heads' columns of context
    const float* v = qkv_.data() + s * T * 3 * D + 2 * D;
    k.gemm_batched(false, false, T, dh, T, 1.0f, p + s * H * T * T, T, T * T, v, 3 * D, dh, 0.0f,
                   context_.data() + s * T * D, D, dh, H);
  }
  out.resize(in.shape(), dev);
  k.dense_forward(rows, D, D, context_.data(), w_out_.data(), b_out_.data(), Activation::identity, 0.0f, out.data(),
                  out_scratch_);
}

void MultiHeadAttention::backward(const Tensor& in, const Tensor&, const Tensor& dout, Tensor* din,
                                  const StepContext& ctx) {
  KernelBackend& k = kernels(in.device());
  const int64_t n = in.rows(), T = steps_, D = dim_, H = heads_, dh = head_dim_, rows = n * T;
  const Device dev = in.device();
  const bool params = ctx.parameter_gradients;
  dcontext_.resize({rows, D}, dev);
  dprobs_.resize(probs_.shape(), dev);
  dscores_.resize(probs_.shape(), dev);
  dqkv_.resize({rows, 3 * D}, dev);
  if (params) {
    k.gemm(true, false, D, D, rows, 1.0f, dout.data(), D, context_.data(), D, 1.0f, dw_out_.data(), D);
    k.row_bias_grad(rows, D, dout.data(), db_out_.data());
  }
  k.dense_backward_input(rows, D, D, dout.data(), w_out_.data(), dcontext_.data());
  const float* p = drops(ctx) ? dropped_.data() : probs_.data();
  for (int64_t s = 0; s < n; ++s) {
    const float* qkv = qkv_.data() + s * T * 3 * D;
    const float* dc = dcontext_.data() + s * T * D;
    // dP = dO V^T and dV = P^T dO.
    k.gemm_batched(false, true, T, T, dh, 1.0f, dc, D, dh, qkv + 2 * D, 3 * D, dh, 0.0f, dprobs_.data() + s * H * T * T,
                   T, T * T, H);
    k.gemm_batched(true, false, T, dh, T, 1.0f, p + s * H * T * T, T, T * T, dc, D, dh, 0.0f,
                   dqkv_.data() + s * T * 3 * D + 2 * D, 3 * D, dh, H);
  }
  // Through dropout (into the other buffer), then the softmax: dS lands in whichever is free.
  float *dp = dprobs_.data(), *dscores = dscores_.data();
  if (drops(ctx)) {
    k.dropout_backward(n, H * T * T, p_, dropout_keys(ctx), dprobs_.data(), dscores_.data());
    std::swap(dp, dscores);
  }
  k.softmax_backward(n * H * T, T, 1.0f / std::sqrt(static_cast<float>(dh)), probs_.data(), dp, dscores);
  for (int64_t s = 0; s < n; ++s) {
    const float* qkv = qkv_.data() + s * T * 3 * D;
    const float* ds = dscores + s * H * T * T;
    float* dq = dqkv_.data() + s * T * 3 * D;
    // dQ = dS K and dK = dS^T Q (the 1 / sqrt(head dim) is in dS).
    k.gemm_batched(false, false, T, dh, T, 1.0f, ds, T, T * T, qkv + D, 3 * D, dh, 0.0f, dq, 3 * D, dh, H);
    k.gemm_batched(true, false, T, dh, T, 1.0f, ds, T, T * T, qkv, 3 * D, dh, 0.0f, dq + D, 3 * D, dh, H);
  }
  if (params) {
    k.gemm(true, false, 3 * D, D, rows, 1.0f, dqkv_.data(), 3 * D, in.data(), D, 1.0f, dw_in_.data(), D);
    // The keys' bias adds q_i . b to every score of query i, which the softmax ignores: its
    // gradient is exactly 0, and what the sums leave is rounding noise that depends on how the
    // batch is split (Adam would turn it into lr-sized steps). It is left out.
    dbias_.resize({3 * D}, dev);
    dbias_.fill(0.0f);
    k.row_bias_grad(rows, 3 * D, dqkv_.data(), dbias_.data());
    k.fill(D, 0.0f, dbias_.data() + D);
    k.axpy(3 * D, 1.0f, dbias_.data(), db_in_.data());
  }
  if (din) {
    din->resize(in.shape(), dev);
    k.dense_backward_input(rows, D, 3 * D, dqkv_.data(), w_in_.data(), din->data());
  }
}

}  // namespace dptrain
