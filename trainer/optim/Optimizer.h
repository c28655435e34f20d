// An optimizer over a model's flat buffers: its states (momentum, Adagrad sums, Adam m and v)
// are flat buffers of the same layout, and one step is one fused pass of the device backend
// (gradient scaling for clipping, L1/L2, decoupled weight decay and the update together).
#pragma once

#include <string>
#include <vector>

#include "models/Model.h"
#include "trainer/TrainConfig.h"

namespace dptrain {

// The grad_scale of a step (docs/design.md rule 5): 1 / global_rows turns the gradients summed
// over the global batch into their mean, and a mean whose norm exceeds clip_norm (> 0) is scaled
// down to it.
float mean_gradient_scale(const Tensor& grads, int64_t global_rows, double clip_norm);

class Optimizer {
 public:
  Optimizer(const OptimConfig& config, int64_t size, Device device);
  // Updates only the floats in `ranges` (a model's trainable ones: frozen layers get no state).
  Optimizer(const OptimConfig& config, const std::vector<FlatRange>& ranges, Device device);

  // mean_gradient_scale() with the norm taken over the ranges this optimizer updates: a frozen
  // range may hold rank-local gradients (a tied output writing into a frozen embedding), which
  // must not steer clipping differently on each rank.
  float gradient_scale(const Tensor& grads, int64_t global_rows, double clip_norm) const;
  // The same from the sum of squares over those ranges (gradient_sum_squares): a step that also
  // checks the gradient is finite reads it once for both.
  float gradient_scale(double sum_squares, int64_t global_rows, double clip_norm) const;
  double gradient_sum_squares(const Tensor& grads) const;
  // Applies one update with learning rate lr; grad_scale multiplies the gradient first. With
  // `check`, returns whether every gradient it read was finite (checked in the same pass on the
  // CPU); the update is applied either way.
  bool step(Tensor& params, const Tensor& grads, float lr, float grad_scale = 1.0f, bool check = false);
  // Completed steps (Adam's bias correction counts them).
  int64_t steps() const { return steps_; }
  void set_steps(int64_t steps) { steps_ = steps; }
  // The state buffers by name ("momentum", "adam_m", ...), for checkpoints.
  std::vector<std::pair<std::string, Tensor*>> states();
  const OptimConfig& config() const { return config_; }

 private:
  OptimConfig config_;
  std::vector<FlatRange> ranges_;
  Tensor state1_, state2_;  // the ranges' states, one after another
  int64_t steps_ = 0;
};

}  // namespace dptrain
