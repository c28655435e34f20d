#include "trainer/optim/Optimizer.h"

#include <cmath>

namespace dptrain {

namespace {
int state_count(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::sgd:
      return 0;
    case OptimizerKind::momentum:
    case OptimizerKind::nesterov:
    case OptimizerKind::adagrad:
    case OptimizerKind::rmsprop:
      return 1;
    case OptimizerKind::adam:
    case OptimizerKind::adamw:
      return 2;
  }
  return 0;
}

// 1 / global_rows, scaled down so that the mean gradient's norm (from its sum of squares) is at
// most clip_norm (> 0).
float clipped_scale(double sum_squares, int64_t global_rows, double clip_norm) {
  double scale = 1.0 / static_cast<double>(global_rows);
  if (clip_norm > 0.0) {
    const double norm = scale * std::sqrt(sum_squares);
    if (norm > clip_norm) scale *= clip_norm / norm;
  }
  return static_cast<float>(scale);
}

}  // namespace

float mean_gradient_scale(const Tensor& grads, int64_t global_rows, double clip_norm) {
  const double sum = clip_norm > 0.0 ? kernels(grads.device()).sum_squares(grads.numel(), grads.data()) : 0.0;
  return clipped_scale(sum, global_rows, clip_norm);
}

Optimizer::Optimizer(const OptimConfig& config, int64_t size, Device device)
    : Optimizer(config, std::vector<FlatRange>{{0, size}}, device) {}

Optimizer::Optimizer(const OptimConfig& config, const std::vector<FlatRange>& ranges, Device device) : config_(config) {
  for (const FlatRange& r : ranges)  // neighbouring ranges update as one
    if (!ranges_.empty() && ranges_.back().end == r.begin)
      ranges_.back().end = r.end;
    else
      ranges_.push_back(r);
  int64_t size = 0;
  for (const FlatRange& r : ranges_) size += r.end - r.begin;
  int n = state_count(config.kind);
  if (n >= 1) state1_ = Tensor::zeros({size}, device);
  if (n >= 2) state2_ = Tensor::zeros({size}, device);
}

float Optimizer::gradient_scale(const Tensor& grads, int64_t global_rows, double clip_norm) const {
  return clipped_scale(clip_norm > 0.0 ? gradient_sum_squares(grads) : 0.0, global_rows, clip_norm);
}

float Optimizer::gradient_scale(double sum_squares, int64_t global_rows, double clip_norm) const {
  return clipped_scale(sum_squares, global_rows, clip_norm);
}

double Optimizer::gradient_sum_squares(const Tensor& grads) const {
  double sum = 0.0;
  for (const FlatRange& r : ranges_)
    sum += kernels(grads.device()).sum_squares(r.end - r.begin, grads.data() + r.begin);
  return sum;
}

bool Optimizer::step(Tensor& params, const Tensor& grads, float lr, float grad_scale, bool check) {
  ++steps_;
  OptimizerStep s;
  s.kind = config_.kind;
  s.lr = lr;
  s.momentum = static_cast<float>(config_.momentum);
  s.beta1 = static_cast<float>(config_.beta1);
  s.beta2 = static_cast<float>(config_.beta2);
  s.eps = static_cast<float>(config_.eps);
  s.rho = static_cast<float>(config_.rho);
  s.l1 = static_cast<float>(config_.l1);
  s.l2 = static_cast<float>(config_.l2);
  s.weight_decay = static_cast<float>(config_.weight_decay);
  s.grad_scale = grad_scale;
  s.bias_correction1 = static_cast<float>(1.0 - std::pow(config_.beta1, static_cast<double>(steps_)));
  s.bias_correction2 = static_cast<float>(1.0 - std::pow(config_.beta2, static_cast<double>(steps_)));
  KernelBackend& k = kernels(params.device());
  int64_t at = 0;  // in the states
  bool finite = true;
  for (const FlatRange& r : ranges_) {
    const int64_t n = r.end - r.begin;
    float* w = params.data() + r.begin;
    const float* g = grads.data() + r.begin;
    float* s1 = state1_.empty() ? nullptr : state1_.data() + at;
    float* s2 = state2_.empty() ? nullptr : state2_.data() + at;
    if (check)
      finite &= k.optimizer_update_checked(s, n, w, g, s1, s2);
    else
      k.optimizer_update(s, n, w, g, s1, s2);
    at += n;
  }
  return finite;
}

std::vector<std::pair<std::string, Tensor*>> Optimizer::states() {
  std::vector<std::pair<std::string, Tensor*>> out;
  switch (config_.kind) {
    case OptimizerKind::sgd:
      break;
    case OptimizerKind::momentum:
    case OptimizerKind::nesterov:
      out.push_back({"momentum", &state1_});
      break;
    case OptimizerKind::adagrad:
      out.push_back({"sum_squares", &state1_});
      break;
    case OptimizerKind::rmsprop:
      out.push_back({"mean_squares", &state1_});
      break;
    case OptimizerKind::adam:
    case OptimizerKind::adamw:
      out.push_back({"adam_m", &state1_});
      out.push_back({"adam_v", &state2_});
      break;
  }
  return out;
}

}  // namespace dptrain
