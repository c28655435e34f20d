// One training session: what every task shares (docs/design.md "Session and tasks") — the
// device and CPU threads, the training reader's options and the pinned stager, the communicator
// and the control lane of each step's all-reduce, the coordinator link and checkpoints, resume,
// stop requests, the measured CPU plan, printing and the metrics log — and the step loop:
//
//   until the task's schedule is done:
//     train one step (forward, loss, backward with the all-reduce, update)
//     end the step (interval log; the end of an epoch or a round)
//     asked to stop (signal or coordinator, agreed by every rank)? checkpoint and leave, to be requeued
//     checkpoint when one is due
//   final checkpoint (checkpoint.at_end); the task's finish
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "comm/Communicator.h"
#include "comm/GradientReducer.h"
#include "models/Model.h"
#include "storage/reader/ShardedReader.h"
#include "trainer/CpuPlanner.h"
#include "trainer/DeviceBatchStager.h"
#include "trainer/FeatureScaler.h"
#include "trainer/Metrics.h"
#include "trainer/StopRequest.h"
#include "trainer/Task.h"
#include "trainer/TrainConfig.h"
#include "trainer/coordinator/JobCoordination.h"

namespace dptrain {

// The device a rank trains on (`device` = "cpu" | "cuda" | "auto"). On a GPU it also makes this
// rank's GPU current: the NCCL communicator has chosen it; with MPI it is the local rank's, one
// rank per GPU. Fails clearly when "cuda" is asked for and there is no GPU.
Device choose_training_device(const TrainConfig& config, Communicator& comm);

// The CPU threads (`threads`, 0 = the node's cores shared among its local ranks) and the engine
// of the dense products (`cpu_engine`, overridden by DPTRAIN_CPU_ENGINE) for this process.
void apply_cpu_settings(const TrainConfig& config, const Communicator& comm);

// 1234567 -> "1,234,567".
std::string with_commas(int64_t v);
// `file` inside `dir` unless it is absolute or empty.
std::string in_dir(const std::string& dir, const std::string& file);

class Session {
 public:
  // Applies the CPU settings and picks the device; nothing is written yet.
  Session(const TrainConfig& config, Communicator& comm);
  // Closes the coordinator link first (close()), while the logs it may write to still exist.
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const TrainConfig& config() const { return config_; }
  Communicator& comm() { return comm_; }
  Device device() const { return device_; }
  // The global step: steps trained so far, over the whole run (resumes included).
  int64_t step() const { return step_; }

  // Whether this rank prints (rank 0, or every rank with train.all_ranks_log).
  bool logs() const { return comm_.rank() == 0 || config_.train.all_ranks_log; }
  void print(const std::string& line);
  // After the task has checked its config: creates out_dir, the metrics log and the progress
  // line on ranks that print, and connects to (or starts) the coordinator.
  void open();
  // Appends to the metrics log (ranks that print only).
  void log(const JsonRecord& record);
  ProgressLine& progress() { return *progress_; }
  JobCoordination& coordination() { return *coordination_; }
  CpuPlanner& cpu_planner() { return *cpu_planner_; }
  // On a GPU: moves host batches into device memory through pinned staging slots; null on the CPU.
  DeviceBatchStager* stager() { return stager_.get(); }

  // The training reader's options: global batch split across ranks, shuffling by seed, prefetch,
  // memory budget, normalization (`scaler`, may be empty), augmentation of training batches.
  ReaderOptions training_reader_options(const Shape& sample, const FeatureScaler& scaler) const;
  // The same without shuffling or augmentation, for evaluating a split.
  ReaderOptions evaluation_reader_options(const FeatureScaler& scaler) const;

  // All ranks compare config text, layout and parameter count (failing with what differs), then
  // take rank 0's parameters of `models`.
  void agree_on_start(uint64_t layout_hash, int64_t parameters, const std::vector<Model*>& models);

  // The control lane of one step's all-reduce: begin_step posts this rank's stop request and
  // rank 0's checkpoint clock; end_step waits for the reducer and reads what the ranks agreed.
  void begin_step(GradientReducer& reducer);
  void end_step(GradientReducer& reducer);

  // Continues from a checkpoint ("latest" in checkpoint.dir, or a file): rank 0 picks it, every
  // rank checks its layout and restores the task. Prints where it resumed.
  void resume(Task& task, const std::string& spec);
  // The step loop above. False when the run stopped on request after its checkpoint (requeue).
  bool run(Task& task);
  // Saves a checkpoint of the task when one is due (every_steps, every_seconds) or `force`d.
  void checkpoint(Task& task, bool force);
  // A restore puts the counter where the checkpoint was taken.
  void restored_at(int64_t step);
  // Waits for the checkpoint copies in flight and disconnects from the coordinator (stopping the
  // one this rank hosts). A task calls it in its destructor, before its buffers are freed: a
  // streamed checkpoint copies parameters and optimizer states in the background.
  void close();

  // Training throughput of the last log interval, for /status.
  double samples_per_s() const { return samples_per_s_; }
  void set_samples_per_s(double v) { samples_per_s_ = v; }
  // Seconds since run() began, and the steps trained since then (for ETAs).
  double seconds_running() const;
  int64_t steps_this_run() const { return step_ - run_start_step_; }

 private:
  bool checkpoint_time_due() const;

  TrainConfig config_;
  Communicator& comm_;
  Device device_ = Device::cpu;
  std::unique_ptr<DeviceBatchStager> stager_;
  std::unique_ptr<CpuPlanner> cpu_planner_;
  std::unique_ptr<JobCoordination> coordination_;
  std::unique_ptr<MetricsLog> log_;
  bool logs_started_ = false;  // MetricsLog::start_at() ran (resume or run)
  std::unique_ptr<ProgressLine> progress_;
  int64_t step_ = 0;
  int64_t run_start_step_ = 0;
  std::chrono::steady_clock::time_point run_start_, last_checkpoint_time_;
  int64_t last_checkpoint_step_ = -1;   // checkpointed, or restored from
  bool last_checkpoint_waited_ = true;  // false: handed over without waiting for the write
  bool checkpoint_due_ = false;         // rank 0's clock said so (control lane)
  StopSighting stop_;                   // some rank was asked to stop (control lane)
  double samples_per_s_ = 0.0;
};

}  // namespace dptrain
