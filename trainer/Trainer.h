// The supervised training loop. One step, top to bottom: take this rank's slice of the global
// batch, forward, loss scaled by 1/global batch, backward with the gradient reducer starting
// bucket all-reduces as layers finish, clip, optimizer step. Metrics are all-reduced at log
// intervals and epoch ends; evaluation splits the validation/test rows across ranks the same way.
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
#include "trainer/CpuPlanner.h"
#include "trainer/DataSplits.h"
#include "trainer/DeviceBatchStager.h"
#include "trainer/EarlyStopping.h"
#include "trainer/FeatureScaler.h"
#include "trainer/Metrics.h"
#include "trainer/StopRequest.h"
#include "trainer/TrainConfig.h"
#include "trainer/coordinator/JobCoordination.h"
#include "trainer/optim/LrSchedule.h"
#include "trainer/optim/Optimizer.h"
#include "trainer/tasks/SelfTraining.h"

namespace dptrain {

// Loss and accuracy over a split (global, all-reduced).
struct EvalResult {
  double loss = 0.0, accuracy = 0.0;
  int64_t count = 0;
  bool has_accuracy = false;
};

struct TrainResult {
  int64_t steps = 0, epochs = 0;
  EvalResult train, validation, test;
  bool stopped_early = false;
  bool requeue = false;  // stopped on request (signal or coordinator) after its checkpoint
  std::string model_path;
};

// The device a rank trains on (`device` = "cpu" | "cuda" | "auto"). On a GPU it also makes this
// rank's GPU current: the NCCL communicator has chosen it; with MPI it is the local rank's, one
// rank per GPU. Fails clearly when "cuda" is asked for and there is no GPU.
Device choose_training_device(const TrainConfig& config, Communicator& comm);

// The CPU threads (`threads`, 0 = the node's cores shared among its local ranks) and the engine
// of the dense products (`cpu_engine`, overridden by DPTRAIN_CPU_ENGINE) for this process.
void apply_cpu_settings(const TrainConfig& config, const Communicator& comm);

class Trainer {
 public:
  // `root` is the whole parsed config (its [model] table builds the model).
  Trainer(const TrainConfig& config, const ConfigNode& root, Communicator& comm);
  ~Trainer();

  // Continues from a checkpoint ("latest" in the configured directory, or a file) before run().
  void resume(const std::string& spec);
  TrainResult run();
  // The complete training state at the current step boundary (for checkpoints).
  CheckpointState checkpoint_state(bool with_data = true);

  Model& model() { return *model_; }
  Optimizer& optimizer() { return *optimizer_; }
  int64_t global_step() const { return step_; }
  // Evaluates the model on a split (all ranks take part).
  EvalResult evaluate(const DataSplit& split);

 private:
  // All ranks compare config, model layout and parameter count, then take rank 0's parameters.
  void agree_on_start();
  bool logs() const { return comm_.rank() == 0 || config_.train.all_ranks_log; }
  // `stage_next`: the loop will train on the reader's next batch right after this one, so on a GPU
  // that batch is staged now and its copy overlaps this step.
  void train_step(const Batch& batch, bool stage_next = false);
  // The batch of the next training step: the reader's on the CPU; on a GPU, in device memory
  // (staged during the previous step when it could be).
  const Batch& next_training_batch();
  // The reader's position for checkpoints and rounds, before any batch staged ahead.
  ReaderCursor training_cursor() const;
  // Forward, loss, backward (through the reducer) and optimizer on a batch already on the model's
  // device; replayed as one CUDA graph when cuda_graphs applies (graph_key says when).
  void step_compute(const Batch& batch, const Tensor& x, StepContext& ctx);
  // The key a captured step depends on, or 0 when this step cannot be captured.
  uint64_t graph_key(const Batch& batch) const;
  // Trains from the reader's cursor to epoch_end epochs or step_end steps (evaluating and
  // checkpointing at epoch ends; the last epoch's checkpoint only if checkpoint_last_epoch).
  // False when the run stopped on request after its checkpoint (result.requeue).
  bool train_epochs(int64_t epoch_end, int64_t step_end, bool checkpoint_last_epoch, TrainResult& result);
  // Self-training: rounds of train_epochs with a pseudo-label selection between them.
  bool run_rounds(TrainResult& result);
  // The end of a run: final checkpoint, best parameters, test evaluation, model file.
  void finish(TrainResult& result);
  // (Re)creates the training reader for the current round's rows, positioned at `cursor`.
  void make_training_reader(const ReaderCursor& cursor);
  std::string epoch_label(int64_t epoch) const;
  // Self-training with steps_per_round reports per round (progress, the round's loss line,
  // validation): the data epochs of a small labelled set may be a few steps long.
  bool reports_per_round() const { return self_training_ && config_.self_training.steps_per_round > 0; }
  void log_interval(int64_t epoch, int64_t step_in_epoch);
  EvalResult reduce_stats(const float* stats_host, double extra_count = 0.0);
  void print(const std::string& line);
  // Saves a checkpoint when one is due (every_steps, every_seconds) or `force`d; rank 0 writes.
  void maybe_checkpoint(bool force);
  void restore(const CheckpointState& state);
  // Flat buffers in checkpoint order, with the device pointers the coordinator client streams.
  std::vector<const float*> flat_pointers(std::vector<bool>* until_update = nullptr);
  bool checkpoint_time_due() const;
  std::vector<FlatSpec> flat_specs() const;

  TrainConfig config_;
  Communicator& comm_;
  DataSplits splits_;
  FeatureScaler scaler_;
  TaskInfo task_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Loss> loss_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<LrSchedule> schedule_;
  std::unique_ptr<EarlyStopping> early_;
  std::unique_ptr<GradientReducer> reducer_;
  std::unique_ptr<ShardedReader> reader_;
  ReaderOptions reader_options_;  // what every training reader shares
  std::unique_ptr<SelfTraining> self_training_;
  std::unique_ptr<ShardedReader> unlabeled_reader_;  // entropy minimization
  std::unique_ptr<Loss> entropy_loss_;
  Tensor entropy_dout_, entropy_stats_;
  int64_t round_start_epoch_ = 0, round_start_step_ = 0;
  std::function<void(int64_t)> on_ready_;
  std::unique_ptr<CrossRankSum> cross_rank_;
  Tensor dout_, stats_;  // stats_: LossStat sums since the last log, on the model's device
  Tensor x_device_;
  // GPU data path: batches staged through pinned memory, one batch ahead of the step.
  std::unique_ptr<DeviceBatchStager> stager_;
  const Batch* staged_ahead_ = nullptr;
  ReaderCursor ahead_cursor_;
  int64_t target_width_ = 1;  // floats per row of the training reader's targets
  // cuda_graphs: one graph per staging slot (the batch's device addresses are baked in).
  std::unique_ptr<CudaGraph> graphs_[2];
  bool graphs_usable_ = false;
  bool graph_warm_ = false;                       // a step ran eagerly since the last reset (allocations done)
  const float* graph_x_[2] = {nullptr, nullptr};  // the staging slot each graph belongs to
  int64_t graph_steps_ = 0, graph_captures_ = 0;
  std::unique_ptr<MetricsLog> log_;
  std::unique_ptr<ProgressLine> progress_;
  int64_t step_ = 0;
  double epoch_sums_[num_loss_stats] = {};
  std::chrono::steady_clock::time_point interval_start_, run_start_;
  int64_t interval_steps_ = 0;
  int64_t run_start_step_ = 0;  // step_ when run() began (after a resume), for the ETA
  int64_t samples_ = 0;         // generative models: prior samples written as a PNG grid at the end
  std::unique_ptr<JobCoordination> coordination_;
  std::unique_ptr<CpuPlanner> cpu_planner_;
  bool checkpoint_due_ = false;  // rank 0's clock said so (control lane)
  double last_samples_per_s_ = 0.0;
  StopSighting stop_;  // some rank was asked to stop (control lane)
  std::chrono::steady_clock::time_point last_checkpoint_time_;
  int64_t last_checkpoint_step_ = -1;
  bool stopped_early_ = false;
};

}  // namespace dptrain
