// The typed run configuration read from TOML: every section, key, default and check in one
// place (docs/config.md lists them). The [model] table is kept as a ConfigNode for the model
// zoo; task-specific tables (self_training, gan) are read by their tasks.
#pragma once

#include <cstdint>
#include <string>

#include "models/core/ConfigNode.h"
#include "models/kernels/KernelBackend.h"
#include "models/kernels/cpu/CpuEngine.h"
#include "storage/reader/Augmentation.h"
#include "storage/reader/ShardedReader.h"

namespace dptrain {

struct DataConfig {
  std::string train, validation, test;
  double validation_fraction = 0.0, test_fraction = 0.0;
  uint64_t split_seed = 0;
  // Cross-validation (dptrain cv): fold `fold` of `folds` equal parts of the rows left after the
  // test split is the validation split, the others train. folds = 0: no folds.
  int64_t folds = 0, fold = 0;
  bool normalize = false;  // z-score features with training-set statistics
  Shuffle shuffle = Shuffle::global;
  int64_t memory_budget_mb = 2048;
  int prefetch = 2;
  AugmentOptions augment;  // [data.augment]: applied to training batches only
};

struct OptimConfig {
  OptimizerKind kind = OptimizerKind::sgd;
  double lr = 0.01, momentum = 0.9, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, rho = 0.99;
  double l1 = 0.0, l2 = 0.0, weight_decay = 0.0, clip_norm = 0.0;
};

enum class ScheduleKind { constant, inv_sqrt, step, plateau, cosine };

struct ScheduleConfig {
  ScheduleKind kind = ScheduleKind::constant;
  int64_t warmup_steps = 0;
  double warmup_start = 0.0;  // warmup starts at lr * warmup_start
  int64_t step_epochs = 10;   // step decay: multiply by gamma every step_epochs epochs
  double gamma = 0.1;
  int64_t plateau_patience = 3;  // epochs without validation improvement before x factor
  double plateau_factor = 0.1;
  double min_lr = 0.0;
};

struct EarlyStoppingConfig {
  bool enabled = false;
  std::string metric = "val_loss";  // val_loss | val_accuracy
  int64_t patience = 5;
  double min_delta = 0.0;
  bool restore_best = true;
};

struct LoopConfig {
  int64_t batch_size = 128;  // global
  int64_t epochs = 10;
  int64_t max_steps = 0;  // 0: epochs decide
  bool drop_last = false;
  int64_t accumulate = 1;          // micro-batches per optimizer step (gradient accumulation)
  std::string nonfinite = "stop";  // a non-finite summed gradient: "stop" (exit 4), "skip" the step, "off"
  int64_t log_every = 50;
  std::string metrics_file = "metrics.jsonl";
  bool progress = true;
  bool all_ranks_log = false;  // every rank prints and writes its own files
  std::string trace;           // Chrome trace of every rank's step phases, written at the end
};

// [log]: more formats of the metrics log (docs/observability.md).
struct LogConfig {
  bool tensorboard = false;  // event files in <out_dir>/tensorboard
  bool csv = false;          // <metrics_file without .jsonl>.csv: event,step,name,value
};

struct CommConfig {
  std::string backend = "auto";
  double bucket_mb = 25.0;
  double timeout_s = 300.0;
};

struct CheckpointConfig {
  std::string dir;  // default: <out_dir>/checkpoints
  int64_t every_steps = 0;
  double every_seconds = 0.0;
  int64_t keep = 3;
  bool at_end = true;
};

struct CoordinatorConfig {
  bool enabled = true;             // rank 0 hosts one unless DPTRAIN_COORDINATOR names another
  std::string bind = "127.0.0.1";  // a host address when ranks run on several machines
  int64_t port = 0;                // control channel; 0 = any free port
  int64_t http_port = 0;           // /status and /metrics; 0 = any free port, -1 = off
  double heartbeat_s = 1.0;
  double heartbeat_timeout_s = 30.0;    // the supervisor restarts a job whose worker is silent this long
  double checkpoint_timeout_s = 600.0;  // how long a rank waits for a checkpoint to be confirmed
  int64_t max_bulk_frame_mb = 64;
};

// Semi-supervised self-training (task = "self_training"): rounds of training on the labelled rows
// plus the pseudo-labels selected so far, with an optional entropy-minimization term.
struct SelfTrainingConfig {
  std::string unlabeled;  // a file of unlabelled rows; default: train rows with /labeled = 0
  int64_t rounds = 5;
  int64_t steps_per_round = 0;          // 0: each round trains train.epochs epochs
  bool pseudo_labels = true;            // false: entropy minimization alone
  std::string selection = "threshold";  // threshold | top_fraction
  double threshold = 0.95;              // softmax confidence needed to be selected
  double top_fraction = 0.2;            // or: this fraction of the remaining rows per round
  bool class_balanced = true;           // each class contributes equally many rows per round
  bool soft = false;                    // labels = "soft": train on the predicted distribution
  bool reinitialize = false;            // start each round from fresh parameters
  // Curriculum labelling (Cascante-Bonilla et al., 2020): each round re-scores every unlabelled
  // row and replaces the selection, the top fraction growing by top_fraction per round.
  bool relabel = false;
  double entropy_weight = 0.0;     // lambda in L = CE(labelled) + lambda * H(unlabelled)
  int64_t entropy_batch_size = 0;  // unlabelled rows per step (global); 0 = train.batch_size
};

// Knowledge distillation (task = "distill"): the student's loss is
// alpha * CE(labels) + (1 - alpha) * T^2 * KL(teacher || student) on logits softened by T.
struct DistillConfig {
  std::string teacher;  // a model file (dptrain train's model.h5)
  double temperature = 4.0;
  double alpha = 0.5;
};

// Adversarial training ([adversarial]): a share of each batch's rows is replaced by inputs
// perturbed within an L-infinity ball of radius epsilon to raise the loss (FGSM: one signed
// gradient step; PGD: `steps` of them from a random start, projected back into the ball).
struct AdversarialConfig {
  std::string method;  // "" (off) | fgsm | pgd
  double epsilon = 0.1;
  int64_t steps = 7;         // pgd
  double step_size = 0.0;    // pgd; 0 = 2.5 * epsilon / steps
  double fraction = 0.5;     // share of the rows attacked, drawn per global sample
  bool random_start = true;  // pgd
  bool enabled() const { return !method.empty(); }
};

struct TrainConfig {
  uint64_t seed = 0;
  int threads = 0;                              // 0: cores / local ranks
  std::string device = "cpu";                   // cpu | cuda | auto
  CpuEngine cpu_engine = CpuEngine::automatic;  // products: auto (measured) | openblas | onednn | unpacked
  bool cuda_graphs = false;                     // replay the training step as one CUDA graph where it is static
  std::string out_dir;
  DataConfig data;
  OptimConfig optim;
  ScheduleConfig schedule;
  EarlyStoppingConfig early_stopping;
  LoopConfig train;
  LogConfig logs;  // [log]
  CommConfig comm;
  CheckpointConfig checkpoint;
  CoordinatorConfig coordinator;
  SelfTrainingConfig self_training;
  DistillConfig distill;
  AdversarialConfig adversarial;
  std::string task = "supervised";  // supervised | self_training | distill | gan
  std::string source;               // config file path
  std::string text;                 // TOML text with overrides applied
  uint64_t hash = 0;                // of text
};

// Reads everything but [model] (and the task tables); check root.check_unused() after the model.
TrainConfig read_train_config(const ConfigNode& root, const std::string& source);

OptimizerKind parse_optimizer(const std::string& name);
std::string optimizer_name(OptimizerKind kind);
// Reads an optimizer table ([optim], or a task's own such as [gan.optim_g]); keys it leaves out
// take `defaults` (eps and weight_decay keep their per-kind defaults for adagrad and adamw).
OptimConfig read_optim_config(const ConfigNode& table, const OptimConfig& defaults);

}  // namespace dptrain
