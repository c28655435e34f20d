// The supervised task; self-training (trainer/tasks/SelfTrainingTask.h) builds on it with rounds.
// One step, top to bottom: take this rank's slice of the global batch, forward, loss, backward
// with the gradient reducer starting bucket all-reduces as layers finish, optimizer step with the
// gradient sums divided by the global batch (and clipped). Metrics are all-reduced at log
// intervals and epoch ends; evaluation splits the validation/test rows across ranks the same way.
// The Session (trainer/Session.h) runs the loop and owns what every task shares.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "comm/Communicator.h"
#include "comm/GradientReducer.h"
#include "models/Model.h"
#include "models/kernels/cuda/CudaBackend.h"
#include "models/losses/Loss.h"
#include "models/zoo/ModelZoo.h"
#include "storage/checkpoint/CheckpointStore.h"
#include "storage/reader/ShardedReader.h"
#include "trainer/Adversary.h"
#include "trainer/DataSplits.h"
#include "trainer/EarlyStopping.h"
#include "trainer/FeatureScaler.h"
#include "trainer/NetworkFlats.h"
#include "trainer/Session.h"
#include "trainer/StepTimer.h"
#include "trainer/TrainConfig.h"
#include "trainer/optim/LrSchedule.h"
#include "trainer/optim/Optimizer.h"

namespace dptrain {

// Loss and accuracy over a split (global, all-reduced).
struct EvalResult {
  double loss = 0.0, accuracy = 0.0;
  double top5 = 0.0;  // the label among the 5 highest scores (reported with more than 5 classes)
  int64_t count = 0;
  bool has_accuracy = false;
  // From LossStat sums (float or double).
  template <class T>
  static EvalResult from_sums(const T* sums, bool has_accuracy) {
    EvalResult r;
    r.count = static_cast<int64_t>(sums[stat_count]);
    r.loss = r.count ? sums[stat_loss] / sums[stat_count] : 0.0;
    r.accuracy = r.count ? sums[stat_correct] / sums[stat_count] : 0.0;
    r.top5 = r.count ? sums[stat_top5] / sums[stat_count] : 0.0;
    r.has_accuracy = has_accuracy;
    return r;
  }
};

// Top-5 accuracy is shown for classifiers of more than 5 classes whose loss fills it (softmax
// cross-entropy; distillation reports through the same statistics).
inline bool reports_top5(const TaskInfo& task, const Loss& loss) {
  return task.num_classes > 5 && loss.kind() == LossKind::softmax_cross_entropy && !loss.reconstruction();
}

struct TrainResult {
  int64_t steps = 0, epochs = 0;
  EvalResult train, validation, test;
  bool stopped_early = false;
  bool requeue = false;  // stopped on request (signal or coordinator) after its checkpoint
  std::string model_path;
};

class Trainer : public Task {
 public:
  // `root` is the whole parsed config (its [model] table builds the model). Self-training is a
  // task of its own: make_trainer() (trainer/tasks/SelfTrainingTask.h) picks by `task`.
  Trainer(const TrainConfig& config, const ConfigNode& root, Communicator& comm);
  ~Trainer() override;

  // Continues from a checkpoint ("latest" in the configured directory, or a file) before run().
  void resume(const std::string& spec) { session_.resume(*this, spec); }
  TrainResult run();

  Model& model() { return *model_; }
  const DataSplits& splits() const { return splits_; }
  Optimizer& optimizer() { return *optimizer_; }
  int64_t global_step() const { return session_.step(); }
  // Evaluates the model on a split (all ranks take part).
  EvalResult evaluate(const DataSplit& split);

  // Task (trainer/Task.h).
  bool done() const override { return done_; }
  bool train_step() override;
  void end_step() override;
  void finish() override;
  uint64_t layout_hash() const override { return model_->layout_hash(); }
  std::vector<FlatSpec> flat_specs() const override;
  std::vector<const float*> flat_pointers(std::vector<bool>* until_update) override;
  CheckpointState checkpoint_state(bool with_data) override;
  void restore(const CheckpointState& state) override;
  const char* other_layout() const override {
    return "a different model (its layer layout differs from the config's [model], or model.freeze names other "
           "layers)";
  }

 protected:
  // For a task built on this one: everything up to the training reader; start() does the rest
  // once the derived task's own state (which the reader's rows may depend on) exists.
  struct Deferred {};
  Trainer(const TrainConfig& config, const ConfigNode& root, Communicator& comm, Deferred);
  void start();

  // Hooks of a task that trains in rounds (self-training); the defaults train one round of
  // train.epochs epochs over the labelled rows.
  // The current round's rows and labels (the reader's options may take labels, soft targets).
  virtual void round_rows(std::vector<int64_t>& rows, ReaderOptions& options) const {}
  // The run's length in steps, for the learning-rate schedule (an estimate where rounds grow).
  virtual int64_t planned_steps(int64_t steps_per_epoch) const;
  // Where the current round ends: its epoch and step bounds (max_steps is applied after).
  virtual void round_bounds(int64_t& epoch_end, int64_t& step_end) const;
  // "epoch 3/10", "round 2/5 epoch 1/3", ...
  virtual std::string epoch_label(int64_t epoch) const;
  // Reports (progress, the period's loss line, validation) per round instead of per data epoch.
  virtual bool reports_per_round() const { return false; }
  // The progress line's position: step `at` of `period`, and the steps left in the run.
  virtual void progress_position(int64_t step, int64_t step_in_epoch, int64_t& at, int64_t& period,
                                 int64_t& left) const;
  // The training loss of a batch's output `out` (for input x): adds to stats, writes
  // dout = dL/dout. Distillation replaces it with its blend of labels and the teacher.
  virtual void training_loss(const Batch& batch, const Tensor& x, const Tensor& out, Tensor& dout, float* stats);
  // A second forward and backward in each step that adds to the gradients (entropy minimization).
  virtual bool second_pass() const { return false; }
  virtual void add_second_pass(const Batch& batch, const StepContext& ctx) {}
  // Whether the round that just ended is the last; if not, next_round() starts the next one.
  virtual bool last_round() const { return true; }
  virtual void next_round() {}
  // Saved state beyond the supervised task's, restored before the training reader is made.
  virtual void save_more(CheckpointState& s) const {}
  virtual void restore_more(const CheckpointState& s) {}

  // Sets the current round's bounds (round_bounds) and whether the schedule is already done.
  void begin_round();
  // Fresh parameters (from the seed) and a fresh optimizer, between rounds.
  void reinitialize();
  // The seed's parameters, then model.init_from's where path and shape match (reported once).
  void initialize_parameters();
  // The reader's position for checkpoints and rounds, before any batch staged ahead.
  ReaderCursor training_cursor() const;
  // (Re)creates the training reader for the current round's rows, positioned at `cursor`.
  void make_training_reader(const ReaderCursor& cursor);
  void print(const std::string& line) { session_.print(line); }
  bool logs() const { return session_.logs(); }
  const Loss& loss() const { return *loss_; }
  bool top5_reported() const { return reports_top5(task_, *loss_); }
  const FeatureScaler& scaler() const { return scaler_; }

  Session session_;
  const TrainConfig& config_;  // the session's
  Communicator& comm_;
  DataSplits splits_;
  TaskInfo task_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<ShardedReader> reader_;
  ReaderOptions reader_options_;  // what every training reader shares
  int64_t round_start_epoch_ = 0, round_start_step_ = 0;
  double epoch_sums_[num_loss_stats] = {};
  std::function<void(int64_t)> on_ready_;
  TrainResult result_;

 private:
  // The batch of the next training step: the reader's on the CPU; on a GPU, in device memory
  // (staged during the previous step when it could be).
  const Batch& next_training_batch();
  // Micro-batch m of the step (the whole batch without accumulation); on a GPU the next one is
  // staged while it computes.
  const Batch& micro_batch(int64_t m);
  // Forward, loss and backward over the step's micro-batches (the last starting the reducer's
  // all-reduces), then the optimizer; replayed as one CUDA graph when cuda_graphs applies
  // (graph_key says when).
  void step_compute(StepContext& ctx);
  // A summed gradient that is not finite: train.nonfinite = "stop" throws (exit code 4) naming
  // the step and the first parameter at fault; "skip" leaves parameters and optimizer untouched,
  // takes the step's losses back out of the logged sums and counts it.
  void nonfinite_step();
  // The key a captured step depends on, or 0 when this step cannot be captured.
  uint64_t graph_key(const Batch& batch) const;
  // The end of a reporting period (an epoch, or a round counted in steps): training and
  // validation metrics, the schedule's and early stopping's look at the validation loss.
  void end_period(int64_t epoch);
  void log_interval(int64_t epoch, int64_t step_in_epoch);
  EvalResult reduce_stats(const float* stats_host);
  // Stragglers (docs/observability.md): a rank busy (all but the all-reduce wait) more than
  // straggler_factor times the ranks' median, and 1 ms more, for straggler_intervals log
  // intervals in a row. `phases`: every rank's seconds per step, phase by phase.
  static constexpr size_t trace_events = 200000;  // per rank: about 50,000 steps
  static constexpr double straggler_factor = 1.25;
  static constexpr int straggler_intervals = 3;
  void watch_stragglers(const double* phases);
  // For the coordinator's /status and /metrics: every rank's phases (ms) and the stragglers.
  std::string timing_record(int64_t step, const double* phases) const;
  // The round just ended is the last one the run trains (last round, early stop, max_steps).
  bool schedule_over() const;
  NetworkFlats network_flats() const;

  FeatureScaler scaler_;
  std::string model_kind_;
  std::unique_ptr<Loss> loss_;
  std::unique_ptr<Adversary> adversary_;  // [adversarial] training
  StepTimer timer_;                       // this rank's step phases (and trace)
  std::vector<double> interval_sums_;     // the metrics all-reduce: loss statistics, then each rank's phases
  std::vector<int> slow_intervals_;       // per rank: consecutive log intervals slower than the median
  std::string stragglers_;                // "2,5": the ranks slow for straggler_intervals intervals in a row
  std::unique_ptr<LrSchedule> schedule_;
  std::unique_ptr<EarlyStopping> early_;
  std::string init_from_;  // model.init_from
  bool init_reported_ = false;
  std::unique_ptr<GradientReducer> reducer_;
  int64_t epoch_end_ = 0, step_end_ = 0;  // the current round's (begin_round)
  std::unique_ptr<CrossRankSum> cross_rank_;
  Tensor dout_, stats_;        // stats_: LossStat sums since the last log, on the model's device
  Tensor stats_before_;        // train.nonfinite = "skip": stats_ before the step's losses
  int64_t skipped_steps_ = 0;  // steps skipped for a non-finite gradient (saved)
  // GPU data path: batches staged through pinned memory, one batch ahead of the step.
  const Batch* staged_ahead_ = nullptr;
  ReaderCursor ahead_cursor_;
  int64_t target_width_ = 1;  // floats per row of the training reader's targets
  // cuda_graphs: one graph per staging slot (the batch's device addresses are baked in).
  std::unique_ptr<CudaGraph> graphs_[2];
  bool graphs_usable_ = false;
  bool graph_warm_ = false;                       // a step ran eagerly since the last reset (allocations done)
  const float* graph_x_[2] = {nullptr, nullptr};  // the staging slot each graph belongs to
  int64_t graph_steps_ = 0, graph_captures_ = 0;
  int64_t samples_ = 0;  // generative models: prior samples written as a PNG grid at the end
  std::chrono::steady_clock::time_point interval_start_, period_start_;
  int64_t interval_rows_ = 0;  // global samples trained since interval_start_
  bool period_open_ = false;   // a reporting period's clock and sums have started
  ReaderCursor position_;      // where the step being trained is: epoch, step in epoch
  bool stopped_early_ = false;
  bool done_ = false;
};

}  // namespace dptrain
