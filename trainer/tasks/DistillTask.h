// Knowledge distillation (task = "distill"; Hinton, Vinyals and Dean, 2015): the student, built
// from [model], trains on alpha * CE(labels) + (1 - alpha) * T^2 * KL(teacher || student) over
// logits softened by the temperature T. The teacher is a model file (distill.teacher) that runs
// forward in evaluation mode on each rank's own rows of every (micro-)batch, in its own feature
// normalization; it is never updated, saved or all-reduced. Validation and test report the
// student's plain cross-entropy and accuracy.
#pragma once

#include "trainer/Trainer.h"

namespace dptrain {

class DistillTask : public Trainer {
 public:
  DistillTask(const TrainConfig& config, const ConfigNode& root, Communicator& comm);

 protected:
  void training_loss(const Batch& batch, const Tensor& x, const Tensor& out, Tensor& dout, float* stats) override;

 private:
  std::unique_ptr<Model> teacher_;
  // A teacher trained with other normalization statistics: its input is x * gain + shift per
  // feature (empty when the statistics are the same).
  Tensor teacher_gain_, teacher_shift_, teacher_zero_, teacher_one_, teacher_x_;
};

}  // namespace dptrain
