#include "models/layers/TimeDistributed.h"

#include "models/core/Error.h"

namespace dptrain {

TimeDistributed::TimeDistributed(std::unique_ptr<Layer> inner) : inner_(std::move(inner)) {
  if (!inner_) fail_input("time_distributed: needs a layer");
}

Shape TimeDistributed::setup(const Shape& in, ParamRegistry& registry) {
  if (in.rank() < 2) fail_input("time_distributed: input must be a sequence [steps, ...], got " + in.str());
  steps_ = in[0];
  step_in_ = in.drop_first();
  inner_->set_param_offset(registry.size());
  registry.push_scope(inner_->kind());
  step_out_ = inner_->setup(step_in_, registry);
  registry.pop_scope();
  if (step_out_.rank() + 1 > Shape::max_rank) fail_input("time_distributed: output has too many dimensions");
  set_param_offset(inner_->param_offset());
  return step_out_.with_batch(steps_);
}

void TimeDistributed::forward(const Tensor& in, Tensor& out, const StepContext& ctx) {
  const int64_t n = in.rows();
  StepContext inner = ctx;
  inner.row0 = ctx.row0 * steps_;  // per-step random draws (dropout) stay keyed by a global index
  inner_->forward(in.reshaped(step_in_.with_batch(n * steps_)), inner_out_, inner);
  out = inner_out_.reshaped(step_out_.with_batch(steps_).with_batch(n));
}

void TimeDistributed::backward(const Tensor& in, const Tensor&, const Tensor& dout, Tensor* din,
                               const StepContext& ctx) {
  const int64_t n = in.rows();
  StepContext inner = ctx;
  inner.row0 = ctx.row0 * steps_;
  inner_->backward(in.reshaped(step_in_.with_batch(n * steps_)), inner_out_,
                   dout.reshaped(step_out_.with_batch(n * steps_)), din ? &dinner_ : nullptr, inner);
  if (!din) return;
  din->resize(in.shape(), in.device());  // a copy: an alias of dinner_ would break the caller's ping-pong
  din->copy_from(dinner_);
}

}  // namespace dptrain
