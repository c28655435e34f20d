#include "trainer/Adversary.h"

namespace dptrain {

Adversary::Adversary(const AdversarialConfig& config, uint64_t seed)
    : config_(config), key_(RandomKey::make(seed, RandomPurpose::adversarial, 0)) {}

const Tensor& Adversary::perturb(Model& model, const Loss& loss, const Tensor& x, const Targets& targets, uint64_t step,
                                 int64_t row0, float fraction) {
  KernelBackend& k = kernels(x.device());
  const SampleKeys keys{key_, step, row0};
  const int64_t rows = x.rows(), row_size = x.row_size();
  const float eps = static_cast<float>(config_.epsilon);
  x_adv_.resize(x.shape(), x.device());
  if (rows == 0) return x_adv_;
  if (stats_.empty()) stats_ = Tensor::zeros({num_loss_stats}, x.device());  // the attack's losses, not reported
  k.adversarial_start(rows, row_size, eps, fraction, config_.random_start, keys, x.data(), x_adv_.data());
  // Evaluation mode, input gradients only: the attack changes no parameter, gradient or statistic.
  const StepContext ctx{.mode = Mode::eval, .step = step, .row0 = row0, .parameter_gradients = false};
  for (int64_t s = 0; s < config_.steps; ++s) {
    const Tensor& out = model.forward(x_adv_, ctx);
    loss.evaluate(out, targets, 1.0f, &dout_, stats_.data());
    model.backward(dout_, ctx, &dx_);
    k.adversarial_step(rows, row_size, static_cast<float>(config_.step_size), eps, fraction, keys, x.data(), dx_.data(),
                       x_adv_.data());
  }
  return x_adv_;
}

}  // namespace dptrain
