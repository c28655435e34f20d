// The self-training task (task = "self_training"): supervised training in rounds. Each round
// trains on the labelled rows plus the pseudo-labels selected so far (trainer/tasks/SelfTraining.h
// keeps them); between rounds every rank predicts its share of the rows still unlabelled and the
// coordinator selects the next pseudo-labels. A round is train.epochs epochs, or steps_per_round
// steps (then progress, the loss line and validation are per round). With entropy_weight > 0
// each step adds lambda * H(softmax) over an unlabelled batch to the gradients.
#pragma once

#include <memory>

#include "trainer/Trainer.h"
#include "trainer/tasks/SelfTraining.h"

namespace dptrain {

class SelfTrainingTask final : public Trainer {
 public:
  SelfTrainingTask(const TrainConfig& config, const ConfigNode& root, Communicator& comm);
  ~SelfTrainingTask() override { session_.close(); }

 private:
  void round_rows(std::vector<int64_t>& rows, ReaderOptions& options) const override;
  int64_t planned_steps(int64_t steps_per_epoch) const override;
  void round_bounds(int64_t& epoch_end, int64_t& step_end) const override;
  std::string epoch_label(int64_t epoch) const override;
  bool reports_per_round() const override { return rounds_->config().steps_per_round > 0; }
  void progress_position(int64_t step, int64_t step_in_epoch, int64_t& at, int64_t& period,
                         int64_t& left) const override;
  bool second_pass() const override { return unlabeled_reader_ != nullptr; }
  void add_second_pass(const Batch& batch, const StepContext& ctx) override;
  bool last_round() const override { return rounds_->round() + 1 >= rounds_->config().rounds; }
  void next_round() override;
  void save_more(CheckpointState& s) const override;
  void restore_more(const CheckpointState& s) override;

  std::unique_ptr<SelfTraining> rounds_;
  std::unique_ptr<ShardedReader> unlabeled_reader_;  // entropy minimization
  std::unique_ptr<Loss> entropy_loss_;
  Tensor entropy_dout_, entropy_stats_, x_device_;
};

// The supervised task for `config.task`: SelfTrainingTask for "self_training", else Trainer.
std::unique_ptr<Trainer> make_trainer(const TrainConfig& config, const ConfigNode& root, Communicator& comm);

}  // namespace dptrain
