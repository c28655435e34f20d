#include "trainer/tasks/DistillTask.h"

#include <cmath>

#include "models/core/Error.h"
#include "trainer/Predictor.h"

namespace dptrain {

DistillTask::DistillTask(const TrainConfig& config, const ConfigNode& root, Communicator& comm)
    : Trainer(config, root, comm, Deferred{}) {
  const std::string& path = config_.distill.teacher;
  if (loss().kind() != LossKind::softmax_cross_entropy || loss().reconstruction())
    fail_input("config: task = \"distill\" trains a classifier with cross_entropy; the student's loss is " +
               Loss::name(loss().kind()));
  TrainedModel teacher = load_trained_model(path, session_.device());
  const TaskInfo& t = teacher.meta.task;
  // The teacher must score the same inputs over the same classes.
  if (!t.classification || teacher.loss != LossKind::softmax_cross_entropy)
    fail_input("distill.teacher = \"" + path + "\": not a classifier trained with cross_entropy");
  if (t.num_classes != task_.num_classes || t.label_width != task_.label_width)
    fail_input("distill.teacher = \"" + path + "\": predicts " + std::to_string(t.num_classes) +
               " classes, the student's data has " + std::to_string(task_.num_classes));
  if (teacher.model->input_shape() != model_->input_shape())
    fail_input("distill.teacher = \"" + path + "\": takes rows of " + teacher.model->input_shape().str() +
               ", the student's data has " + model_->input_shape().str());
  if (teacher.model->output_shape() != model_->output_shape())
    fail_input("distill.teacher = \"" + path + "\": its output is " + teacher.model->output_shape().str() +
               ", the student's " + model_->output_shape().str());
  // Both see the batch as the reader normalized it: the teacher must have been trained with the
  // same statistics (the same data, split and data.normalize).
  auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (std::fabs(a[i] - b[i]) > 1e-4f * std::max(1.0f, std::fabs(b[i]))) return false;
    return true;
  };
  if (!same(teacher.meta.norm_mean, scaler().mean) || !same(teacher.meta.norm_std, scaler().std))
    fail_input("distill.teacher = \"" + path +
               "\": was trained with other feature normalization than this run's (data.normalize and the "
               "training rows must be the same for teacher and student)");
  teacher_ = std::move(teacher.model);
  if (logs())
    print("distilling from " + path + " (" + with_commas(teacher_->parameter_count()) + " parameters): temperature " +
          std::to_string(config_.distill.temperature) + ", alpha " + std::to_string(config_.distill.alpha));
  start();
}

void DistillTask::training_loss(const Batch& batch, const Tensor& x, const Tensor& out, Tensor& dout, float* stats) {
  // The teacher sees what the student sees (adversarial rows included), in evaluation mode.
  const StepContext ctx{.mode = Mode::eval, .seed = config_.seed, .row0 = batch.row0, .parameter_gradients = false};
  const Tensor& soft = teacher_->forward(x, ctx);
  dout.resize(out.shape(), out.device());
  const int64_t classes = task_.num_classes, rows = out.numel() / classes;
  kernels(out.device())
      .distillation_loss(rows, classes, static_cast<float>(config_.distill.temperature),
                         static_cast<float>(config_.distill.alpha), out.data(), soft.data(), batch.labels, 1.0f,
                         dout.data(), stats);
}

}  // namespace dptrain
