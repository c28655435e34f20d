// Adversarial inputs (docs/training-methods.md): FGSM (Goodfellow et al., 2015), one signed
// gradient step of size epsilon, and PGD (Madry et al., 2018), `steps` signed steps from a random
// start, each projected back into the L-infinity ball of radius epsilon around the clean row.
// The attack runs the model in evaluation mode (no dropout; batch norm uses its running
// statistics) and asks backward for the input's gradient only. Which rows are attacked and PGD's
// start are drawn per global sample at the step, so N ranks attack exactly what one rank would.
#pragma once

#include "models/Model.h"
#include "models/losses/Loss.h"
#include "trainer/TrainConfig.h"

namespace dptrain {

class Adversary {
 public:
  Adversary(const AdversarialConfig& config, uint64_t seed);
  // The batch x [rows, ...] (rows from global sample row0 at `step`) with its attacked rows
  // perturbed to raise `loss` against `targets`; valid until the next call. `fraction` of the rows
  // are attacked (1: all). Leaves the model's parameter gradients untouched.
  const Tensor& perturb(Model& model, const Loss& loss, const Tensor& x, const Targets& targets, uint64_t step,
                        int64_t row0, float fraction);
  const AdversarialConfig& config() const { return config_; }

 private:
  AdversarialConfig config_;
  RandomKey key_;
  Tensor x_adv_, dx_, dout_, stats_;
};

}  // namespace dptrain
