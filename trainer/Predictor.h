// Loads a trained model file (architecture from its stored config, parameters, normalization) and
// runs it forward over a dataset file: evaluation (loss, accuracy) and prediction.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/Model.h"
#include "models/losses/Loss.h"
#include "models/zoo/ModelZoo.h"
#include "storage/checkpoint/ModelFile.h"
#include "storage/dataset/DatasetFile.h"
#include "trainer/Adversary.h"
#include "trainer/Trainer.h"

namespace dptrain {

// A trained model file's network on `device`: the architecture rebuilt from its stored config,
// its parameters and buffers loaded, with its metadata and loss.
struct TrainedModel {
  ModelFileMeta meta;
  std::unique_ptr<Model> model;
  LossKind loss = LossKind::softmax_cross_entropy;
  bool reconstruct = false;
};
TrainedModel load_trained_model(const std::string& model_path, Device device);

class Predictor {
 public:
  explicit Predictor(const std::string& model_path, int64_t batch_size = 256);

  const TaskInfo& task() const { return meta_.task; }
  const Loss& loss() const { return *loss_; }
  Model& model() { return *model_; }
  // Checks that `file` fits the model (sample shape, classes) and names the mismatch if not.
  void check_compatible(const DatasetFile& file) const;
  // With `attack`, every row is first perturbed to raise the loss (robust accuracy).
  EvalResult evaluate(const DatasetFile& file, const std::vector<int64_t>& rows, Adversary* attack = nullptr);
  // Per row: the output as probabilities (classification: softmax, or sigmoid for one logit) or
  // values (regression), and the predicted class (-1 for regression). With per-step targets
  // (task().label_width = T > 1) each row has T of each, step by step.
  void predict(const DatasetFile& file, std::vector<float>& outputs, std::vector<int32_t>& classes);
  int64_t output_dim() const { return model_->output_shape().numel(); }

 private:
  template <typename Fn>
  void for_each_batch(const DatasetFile& file, const std::vector<int64_t>& rows, Fn&& fn, float* loss_stats = nullptr,
                      Adversary* attack = nullptr);

  std::string path_;
  int64_t batch_;
  ModelFileMeta meta_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Loss> loss_;
};

}  // namespace dptrain
