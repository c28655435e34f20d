#include "trainer/tasks/DistillTask.h"

#include <cmath>

#include "models/core/Error.h"
#include "trainer/Predictor.h"

namespace dptrain {

DistillTask::DistillTask(const TrainConfig& config, const ConfigNode& root, Communicator& comm)
    : Trainer(config, root, comm, Deferred{}) {
  const std::string& path = config_.distill.teacher;
  // alpha CE(labels) needs the class ids of /y (soft targets in the file are not used here).
  if (splits_.train.file->label_kind() != LabelKind::classes || splits_.train.file->labels().empty())
    fail_input(splits_.train.file->path() + ": task = \"distill\" needs class labels in /y");
  if (loss().kind() != LossKind::softmax_cross_entropy || loss().reconstruction())
    fail_input("config: task = \"distill\" trains a classifier with cross_entropy; the student's loss is " +
               Loss::name(loss().kind()));
  TrainedModel teacher = load_trained_model(path, session_.device());
  const TaskInfo& t = teacher.meta.task;
  // The teacher must score the same inputs over the same classes.
  if (!t.classification || teacher.loss != LossKind::softmax_cross_entropy)
    fail_input("distill.teacher = \"" + path + "\": not a classifier trained with cross_entropy");
  if (t.num_classes != task_.num_classes)
    fail_input("distill.teacher = \"" + path + "\": predicts " + std::to_string(t.num_classes) +
               " classes, the student's data has " + std::to_string(task_.num_classes));
  if (t.label_width != task_.label_width)
    fail_input("distill.teacher = \"" + path + "\": scores " + std::to_string(t.label_width) +
               " positions per row, the student's data " + std::to_string(task_.label_width));
  if (teacher.model->input_shape() != model_->input_shape())
    fail_input("distill.teacher = \"" + path + "\": takes rows of " + teacher.model->input_shape().str() +
               ", the student's data has " + model_->input_shape().str());
  if (teacher.model->output_shape() != model_->output_shape())
    fail_input("distill.teacher = \"" + path + "\": its output is " + teacher.model->output_shape().str() +
               ", the student's " + model_->output_shape().str());
  // The reader normalizes rows with the student's statistics (data.normalize); a teacher trained
  // with other ones (another fold of dptrain cv, or without normalization) sees its own:
  // x_t = (x_s std_s + mean_s - mean_t) / std_t, per feature.
  const int64_t features = model_->input_shape().numel();
  const FeatureScaler& s = scaler();
  const std::vector<float>&mt = teacher.meta.norm_mean, &st = teacher.meta.norm_std;
  std::vector<float> gain(static_cast<size_t>(features), 1.0f), shift(static_cast<size_t>(features), 0.0f);
  bool same = true;
  for (size_t j = 0; j < gain.size(); ++j) {
    const float std_s = s.empty() ? 1.0f : s.std[j], mean_s = s.empty() ? 0.0f : s.mean[j];
    const float std_t = st.empty() ? 1.0f : st[j], mean_t = mt.empty() ? 0.0f : mt[j];
    gain[j] = std_s / std_t;
    shift[j] = (mean_s - mean_t) / std_t;
    same = same && std::fabs(gain[j] - 1.0f) <= 1e-6f && std::fabs(shift[j]) <= 1e-6f;
  }
  if (!same) {
    const Device device = session_.device();
    teacher_gain_ = Tensor::zeros({features}, device);
    teacher_shift_ = Tensor::zeros({features}, device);
    from_host(teacher_gain_, gain);
    from_host(teacher_shift_, shift);
    teacher_zero_ = Tensor::zeros({features}, device);
    teacher_one_ = Tensor::zeros({features}, device);
    teacher_one_.fill(1.0f);
    if (logs()) print("distill.teacher: its inputs are re-normalized to the statistics it was trained with");
  }
  teacher_ = std::move(teacher.model);
  if (logs())
    print("distilling from " + path + " (" + with_commas(teacher_->parameter_count()) + " parameters): temperature " +
          std::to_string(config_.distill.temperature) + ", alpha " + std::to_string(config_.distill.alpha));
  start();
}

void DistillTask::training_loss(const Batch& batch, const Tensor& x, const Tensor& out, Tensor& dout, float* stats) {
  // The teacher sees what the student sees (adversarial rows included), in evaluation mode, in
  // its own normalization (batch norm's inference transform with mean 0 and variance 1 is the
  // per-feature x * gain + shift).
  const StepContext ctx{.mode = Mode::eval, .seed = config_.seed, .row0 = batch.row0, .parameter_gradients = false};
  const Tensor* in = &x;
  if (!teacher_gain_.empty()) {
    teacher_x_.resize(x.shape(), x.device());
    kernels(x.device())
        .batch_norm_forward(x.rows(), x.row_size(), 1, 0.0f, x.data(), teacher_zero_.data(), teacher_one_.data(),
                            teacher_gain_.data(), teacher_shift_.data(), teacher_x_.data());
    in = &teacher_x_;
  }
  const Tensor& soft = teacher_->forward(*in, ctx);
  dout.resize(out.shape(), out.device());
  const int64_t classes = task_.num_classes, rows = out.numel() / classes;
  kernels(out.device())
      .distillation_loss(rows, classes, static_cast<float>(config_.distill.temperature),
                         static_cast<float>(config_.distill.alpha), out.data(), soft.data(), batch.labels, 1.0f,
                         dout.data(), stats);
}

}  // namespace dptrain
