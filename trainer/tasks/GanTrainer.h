// The GAN task (task = "gan"): an alternation schedule — d_steps discriminator updates, then
// g_steps generator updates, computed from the step number on every rank — with one model, one
// optimizer and one gradient reducer per network. The Session (trainer/Session.h) runs the loop
// and owns what every task shares. A step, top to bottom:
//   discriminator step: take this rank's slice of the real batch; generate the same-sized fake
//     slice from latent draws keyed by (seed, step, global sample index); forward D on real,
//     backward; forward D on fake, backward (D's reducer all-reduces as its layers finish); step
//     D's optimizer (and clip its weights for the Wasserstein critic).
//   generator step: generate a slice of a full global batch; forward D; backward through D with
//     parameter_gradients = false into d(loss)/d(fake); backward G (G's reducer); step G.
// Which network a step updates is a pure function of the step number, and the optional skip rule
// a function of the all-reduced loss, so every rank agrees without a round trip. With gan.pack = m
// (PacGAN) D sees views of m consecutive global rows side by side and scores each pack; losses and
// gradient means are over packs. Gradients are summed over the global batch and divided by it in
// the optimizer step, as in every task (docs/design.md rule 5).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "comm/Communicator.h"
#include "comm/GradientReducer.h"
#include "models/Model.h"
#include "models/losses/GanLoss.h"
#include "storage/reader/ShardedReader.h"
#include "trainer/DataSplits.h"
#include "trainer/NetworkFlats.h"
#include "trainer/Session.h"
#include "trainer/TrainConfig.h"
#include "trainer/optim/LrSchedule.h"
#include "trainer/optim/Optimizer.h"
#include "trainer/tasks/GanConfig.h"
#include "trainer/tasks/GanSampling.h"
#include "trainer/tasks/ModeCoverage.h"

namespace dptrain {

struct GanResult {
  int64_t steps = 0, epochs = 0;
  int64_t d_updates = 0, g_updates = 0, d_skipped = 0;
  double d_loss = 0.0, g_loss = 0.0;  // means over the last log interval
  bool requeue = false;               // stopped on request after its checkpoint
  bool has_coverage = false;          // 2-D mixtures: the final evaluation
  ModeCoverage coverage;
  std::string generator_path, discriminator_path, samples_path, picture_path;
};

class GanTrainer final : public Task {
 public:
  // `root` is the whole parsed config (its [gan] table builds the networks).
  GanTrainer(const TrainConfig& config, const ConfigNode& root, Communicator& comm);
  ~GanTrainer() override;

  // Continues from a checkpoint ("latest" in the configured directory, or a file) before run().
  void resume(const std::string& spec) { session_.resume(*this, spec); }
  GanResult run();

  Model& generator() { return *g_; }
  Model& discriminator() { return *d_; }
  int64_t global_step() const { return session_.step(); }
  // Whether step `step` updates the discriminator (else the generator).
  bool discriminator_step(int64_t step) const { return step % cycle_ < gan_.d_steps; }
  // Discriminator steps among steps [0, step): the real batches consumed so far.
  int64_t discriminator_steps_before(int64_t step) const;
  // Mode coverage of `eval_samples` generator samples (2-D mixtures; rank 0's view).
  ModeCoverage evaluate_coverage();

  // Task (trainer/Task.h).
  bool done() const override { return session_.step() >= total_steps(); }
  bool train_step() override;
  void end_step() override;
  void finish() override;
  uint64_t layout_hash() const override;
  std::vector<FlatSpec> flat_specs() const override;
  std::vector<FlatSpec> parameter_specs() const override;
  std::vector<const float*> flat_pointers(std::vector<bool>* until_update) override;
  CheckpointState checkpoint_state(bool with_data) override;
  void restore(const CheckpointState& state) override;
  std::string resume_detail() const override;
  const char* other_layout() const override {
    return "different networks (their layer layout differs from the config's [gan])";
  }

 private:
  enum Net { G = 0, D = 1 };
  // gan.pack > 1: every rank's share of every global batch must be whole packs of consecutive
  // global rows, so that the packs do not depend on the number of ranks; fails naming the keys.
  void check_pack() const;
  // D's input for `rows` [n, d0, ...]: the view [n / pack, pack * d0, ...] (kept in d_input_).
  const Tensor& packed(const Tensor& rows);
  bool logs() const { return session_.logs(); }
  void print(const std::string& line) { session_.print(line); }
  // The fake slice of a global batch of `global_rows` for this step: latent draws, then G forward.
  const Tensor& generate(int64_t global_rows, Mode mode, StepContext& ctx,
                         LatentStream stream = LatentStream::training);
  // gan.ema: folds the generator's new weights into the average (after each generator update),
  // and at the end puts the average into the generator and measures its batch-norm statistics.
  void update_weight_average();
  NetworkFlats network_flats(int n) const;
  void use_weight_average();
  void d_step(const Batch& real);
  void g_step();
  void log_interval(int64_t epoch);
  void end_epoch(int64_t epoch);
  int64_t total_steps() const;

  Session session_;
  const TrainConfig& config_;  // the session's
  GanConfig gan_;
  Communicator& comm_;
  const ConfigNode root_;
  DataSplits splits_;
  std::unique_ptr<Model> g_, d_;
  GanLoss loss_;
  std::unique_ptr<Optimizer> opt_[2];
  std::unique_ptr<LrSchedule> schedule_[2];  // [schedule] over the global step, from each network's lr
  std::unique_ptr<GradientReducer> reducer_[2];
  std::function<void(int64_t)> on_ready_[2];
  std::unique_ptr<ShardedReader> reader_;
  std::unique_ptr<CrossRankSum> cross_rank_;
  int64_t cycle_ = 2;
  Device device_ = Device::cpu;
  std::string g_kind_, d_kind_;

  // Step state: reused buffers, so that a step after the first allocates nothing.
  std::vector<float> latent_host_;
  Tensor latent_, dscore_, dfake_;
  Tensor d_input_;     // the packed view D ran forward on last (Model keeps a pointer to its input)
  Tensor g_average_;   // gan.ema > 0: the moving average of the generator's parameters
  Tensor stats_[2];    // LossStat sums since the last log, per network, on the device
  Tensor step_stats_;  // this discriminator step's loss (the skip rule reads it)
  double epoch_sums_[2][num_loss_stats] = {};
  bool updated_d_ = false;  // the step just trained updated the discriminator
  int64_t epoch_ = 0;       // the real data's epoch when that step began
  int64_t real_width_ = 1;  // floats per row of the real batches' targets (staged with them)

  int64_t updates_[2] = {0, 0};
  int64_t d_skipped_ = 0, interval_skipped_ = 0;
  double last_loss_[2] = {0.0, 0.0};
  std::chrono::steady_clock::time_point interval_start_;
  GanResult result_;

  // 2-D mixtures: the modes measured from the training data, for the coverage evaluation.
  bool mixture_ = false;
  MixtureModes modes_;
};

}  // namespace dptrain
