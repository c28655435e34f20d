#include "models/layers/BatchNorm.h"

#include "models/core/Error.h"
#include "models/kernels/KernelBackend.h"

namespace dptrain {

BatchNorm::BatchNorm(float momentum, float eps, bool sync) : momentum_(momentum), eps_(eps), sync_(sync) {
  if (!(momentum >= 0.0f && momentum <= 1.0f)) fail_input("batchnorm: momentum must be in [0, 1]");
  if (!(eps > 0.0f)) fail_input("batchnorm: eps must be positive");
}

std::string BatchNorm::describe() const {
  return "batchnorm " + std::to_string(channels_) + (hw_ > 1 ? " channels" : " features") +
         (sync_ ? "" : " (per-rank statistics)");
}

Shape BatchNorm::setup(const Shape& in, ParamRegistry& registry) {
  if (in.rank() < 1 || in.rank() > 3)
    fail_input("batchnorm: input must be [features], [channels, length] or [channels, height, width], got " + in.str());
  channels_ = in[0];
  hw_ = in.numel() / channels_;
  registry.declare("weight", {channels_}, {ParamInit::ones}, &gamma_, &dgamma_);
  registry.declare("bias", {channels_}, {ParamInit::zeros}, &beta_, &dbeta_);
  registry.declare_buffer("running_mean", {channels_}, {ParamInit::zeros}, &running_mean_);
  registry.declare_buffer("running_var", {channels_}, {ParamInit::ones}, &running_var_);
  return in;
}

void BatchNorm::forward(const Tensor& in, Tensor& out, const StepContext& ctx) {
  KernelBackend& k = kernels(in.device());
  const int64_t n = in.rows(), c = channels_;
  out.resize(in.shape(), in.device());
  batch_stats_ = ctx.mode == Mode::train;
  if (!batch_stats_) {
    k.batch_norm_forward(n, c, hw_, eps_, in.data(), running_mean_.data(), running_var_.data(), gamma_.data(),
                         beta_.data(), out.data());
    return;
  }
  mean_.resize({c}, in.device());
  var_.resize({c}, in.device());
  // One all-reduce of [sum (c), sum of squares (c), count] in double (ranks may hold uneven
  // slices). The sums are of x - running_mean: the same shift on every rank, close to the batch
  // mean once training runs, so E[(x-k)^2] - E[x-k]^2 does not cancel when |mean| >> std.
  double* sums = sums_.reserve(2 * c + 1, in.device());
  k.batch_norm_stats(n, c, hw_, in.data(), running_mean_.data(), sums, sums + c);
  const double local_count = static_cast<double>(n * hw_);
  copy_memory(sums + 2 * c, in.device(), &local_count, Device::cpu, sizeof local_count);
  if (sync_ && ctx.cross_rank) ctx.cross_rank->sum(sums, 2 * c + 1);
  copy_memory(&count_, Device::cpu, sums + 2 * c, in.device(), sizeof count_);
  if (count_ < 1.0) fail_input("batchnorm: a training batch with no rows");
  k.batch_norm_finalize(c, count_, momentum_, running_mean_.data(), sums, sums + c, mean_.data(), var_.data(),
                        running_mean_.data(), running_var_.data());
  k.batch_norm_forward(n, c, hw_, eps_, in.data(), mean_.data(), var_.data(), gamma_.data(), beta_.data(), out.data());
}

void BatchNorm::backward(const Tensor& in, const Tensor&, const Tensor& dout, Tensor* din, const StepContext& ctx) {
  KernelBackend& k = kernels(in.device());
  const int64_t n = in.rows(), c = channels_;
  const float* mean = batch_stats_ ? mean_.data() : running_mean_.data();
  const float* var = batch_stats_ ? var_.data() : running_var_.data();
  double* sums = reduce_.reserve(2 * c, in.device());
  // Local sums go into the parameter gradients (the gradient reducer all-reduces those).
  const bool params = ctx.parameter_gradients;
  k.batch_norm_backward_reduce(n, c, hw_, eps_, dout.data(), in.data(), mean, var, sums, sums + c,
                               params ? dgamma_.data() : nullptr, params ? dbeta_.data() : nullptr);
  if (!din) return;
  din->resize(in.shape(), in.device());
  if (!batch_stats_) {
    k.batch_norm_backward(n, c, hw_, eps_, 1.0, dout.data(), in.data(), mean, var, gamma_.data(), nullptr, nullptr,
                          din->data());
    return;
  }
  // The input gradient needs the global sums, as the statistics did.
  if (sync_ && ctx.cross_rank) ctx.cross_rank->sum(sums, 2 * c);
  k.batch_norm_backward(n, c, hw_, eps_, count_, dout.data(), in.data(), mean, var, gamma_.data(), sums, sums + c,
                        din->data());
}

}  // namespace dptrain
