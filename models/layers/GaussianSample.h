// The stochastic layer of a variational autoencoder (Kingma & Welling, 2014): its input holds
// [mu (k), log variance (k)] per sample and its output z = mu + exp(logvar / 2) eps, eps ~ N(0, I)
// (the reparameterization trick), or z = mu in eval mode. eps is drawn per (seed, step, global
// sample index) so any number of ranks draws the same noise (docs/design.md rule 3). The layer owns
// the KL(q(z|x) || N(0, I)) term: forward adds kl_weight * KL to the step's loss statistics and
// backward adds its gradient, per row like the main loss (StepContext::loss_stats).
#pragma once

#include "models/layers/Layer.h"

namespace dptrain {

class GaussianSample final : public Layer {
 public:
  explicit GaussianSample(float kl_weight = 1.0f);
  std::string kind() const override { return "gaussian_sample"; }
  std::string describe() const override;
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
  int64_t latent() const { return k_; }

 private:
  float kl_weight_;
  int64_t k_ = 0;
  uint32_t id_ = 0;
  Tensor kl_;
};

}  // namespace dptrain
