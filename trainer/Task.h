// A training task — supervised (trainer/Trainer.h, self-training included) or a GAN
// (trainer/tasks/GanTrainer.h) — as the Session drives it (docs/design.md "Session and tasks").
// The Session owns what every task shares and runs the step loop; a task owns its networks,
// losses and optimizers and says what one step is, what happens at the end of a step (logging,
// epoch and round ends) and what its saved state is.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "storage/checkpoint/CheckpointStore.h"

namespace dptrain {

class Task {
 public:
  virtual ~Task() = default;

  // Whether the schedule is over: every epoch, round or step done, or stopped early.
  virtual bool done() const = 0;
  // One training step at the session's step counter: forward, loss, backward with the gradient
  // all-reduce, optimizer update. Returns whether the steps so far show every kind of product
  // the run computes (a GAN's first D and G steps differ), for the measured CPU plan.
  virtual bool train_step() = 0;
  // After the counter moved past the step: interval logs, the end of an epoch (evaluation) or of
  // a round. A checkpoint may follow.
  virtual void end_step() = 0;
  // The end of the schedule: best parameters, test evaluation, model files, samples.
  virtual void finish() = 0;

  // Saved state (docs/design.md "Checkpoints").
  virtual uint64_t layout_hash() const = 0;
  // The flat buffers in checkpoint order.
  virtual std::vector<FlatSpec> flat_specs() const = 0;
  // Those that hold parameters, read alone to explain a layout mismatch (default: the first).
  virtual std::vector<FlatSpec> parameter_specs() const { return {flat_specs().front()}; }
  // The flats' device pointers in the same order; until_update[i]: flat i changes only in an
  // update that calls JobCoordination::before_update() first.
  virtual std::vector<const float*> flat_pointers(std::vector<bool>* until_update) = 0;
  virtual CheckpointState checkpoint_state(bool with_data) = 0;
  virtual void restore(const CheckpointState& state) = 0;
  // What "resumed from <file> at step N" adds ("" for nothing).
  virtual std::string resume_detail() const { return ""; }
  // What a checkpoint of another layout was saved from, for "<file>: saved from ...".
  virtual const char* other_layout() const {
    return "a different model (its layer layout differs from the config's [model])";
  }
};

}  // namespace dptrain
