#include "trainer/Predictor.h"

#include <algorithm>
#include <cmath>

#include "models/core/ConfigNode.h"
#include "models/kernels/KernelBackend.h"
#include "storage/reader/ShardedReader.h"
#include "trainer/DataSplits.h"

namespace dptrain {

TrainedModel load_trained_model(const std::string& model_path, Device device) {
  TrainedModel out;
  out.meta = read_model_meta(model_path);
  ConfigNode root = ConfigNode::parse_string(out.meta.config_text, model_path + " (stored config)");
  if (out.meta.input_shape.empty()) fail_input(model_path + ": the model file has no input_shape");
  ZooModel zoo = build_model(root.child("model"), out.meta.task, Shape(out.meta.input_shape));
  out.model = std::make_unique<Model>(std::move(zoo.root), Shape(out.meta.input_shape), device);
  load_model_params(model_path, *out.model);
  out.loss = zoo.loss;
  out.reconstruct = zoo.reconstruct;
  return out;
}

Predictor::Predictor(const std::string& model_path, int64_t batch_size) : path_(model_path), batch_(batch_size) {
  TrainedModel trained = load_trained_model(model_path, Device::cpu);
  meta_ = std::move(trained.meta);
  model_ = std::move(trained.model);
  loss_ = std::make_unique<Loss>(trained.loss, 1.0f, trained.reconstruct);
}

void Predictor::check_compatible(const DatasetFile& file) const {
  if (file.sample_shape() != model_->input_shape())
    fail_input(file.path() + ": rows are " + file.sample_shape().str() + " but the model " + path_ + " takes " +
               model_->input_shape().str());
  if (file.label_kind() == LabelKind::classes && meta_.task.classification &&
      file.num_classes() > meta_.task.num_classes)
    fail_input(file.path() + ": has " + std::to_string(file.num_classes()) + " classes, the model was trained on " +
               std::to_string(meta_.task.num_classes));
}

template <typename Fn>
void Predictor::for_each_batch(const DatasetFile& file, const std::vector<int64_t>& rows, Fn&& fn, float* loss_stats,
                               Adversary* attack) {
  check_compatible(file);
  ReaderOptions ro;
  ro.global_batch = batch_;
  ro.shuffle = Shuffle::none;
  ro.mean = meta_.norm_mean;
  if (!meta_.norm_std.empty())
    for (float s : meta_.norm_std) ro.inv_std.push_back(1.0f / s);
  auto shared = std::shared_ptr<const DatasetFile>(&file, [](const DatasetFile*) {});
  ShardedReader reader(shared, rows, ro);
  for (int64_t s = 0; s < reader.steps_per_epoch(); ++s) {
    const Batch& b = reader.next();
    StepContext ctx{Mode::eval, 0, 0, b.row0, nullptr, false};
    ctx.loss_stats = loss_stats;
    const Tensor& x = attack ? attack->perturb(*model_, *loss_, b.x, {b.labels, b.targets, b.label_width},
                                               static_cast<uint64_t>(s), b.row0, 1.0f)
                             : b.x;
    fn(b, model_->forward(x, ctx));
  }
}

EvalResult Predictor::evaluate(const DatasetFile& file, const std::vector<int64_t>& rows, Adversary* attack) {
  if (file.label_kind() == LabelKind::none && !loss_->reconstruction())
    fail_input(file.path() + ": evaluation needs labels or targets in /y");
  if (attack && (!loss_->classifies() || loss_->reconstruction() || meta_.task.label_width > 1))
    fail_input(path_ + ": --attack needs a classifier of one label per row; this model's loss is " +
               Loss::name(loss_->kind()));
  float stats[num_loss_stats] = {};
  // Autoencoders are scored against their input; auxiliary losses (a VAE's KL) add to stats.
  for_each_batch(
      file, rows,
      [&](const Batch& b, const Tensor& out) {
        Targets t =
            loss_->reconstruction() ? Targets{nullptr, b.x.data()} : Targets{b.labels, b.targets, b.label_width};
        loss_->evaluate(out, t, 1.0f, nullptr, stats);
      },
      stats, attack);
  return EvalResult::from_sums(stats, loss_->classifies());
}

void Predictor::predict(const DatasetFile& file, std::vector<float>& outputs, std::vector<int32_t>& classes) {
  // Per-step targets: each sample's output is [T, classes], scored step by step.
  const int64_t steps = std::max<int64_t>(1, meta_.task.label_width);
  const int64_t k = output_dim() / steps;
  const bool classify = meta_.task.classification && !loss_->reconstruction();
  const bool binary = classify && k == 1;
  outputs.clear();
  classes.clear();
  std::vector<float> probs;
  for_each_batch(file, all_rows(file), [&](const Batch&, const Tensor& out) {
    const int64_t n = out.rows() * steps;
    probs.resize(static_cast<size_t>(n * k));
    if (classify && !binary)
      kernels(Device::cpu).softmax(n, k, out.data(), probs.data());
    else
      std::copy_n(out.data(), n * k, probs.data());
    for (int64_t r = 0; r < n; ++r) {
      const float* p = probs.data() + r * k;
      if (binary) {
        float prob = 1.0f / (1.0f + std::exp(-p[0]));
        outputs.push_back(prob);
        classes.push_back(prob > 0.5f ? 1 : 0);
        continue;
      }
      outputs.insert(outputs.end(), p, p + k);
      if (classify)
        classes.push_back(static_cast<int32_t>(std::max_element(p, p + k) - p));
      else
        classes.push_back(-1);
    }
  });
}

}  // namespace dptrain
