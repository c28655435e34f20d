#include "trainer/Trainer.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <thread>

#include "models/core/Error.h"
#include "models/core/Hash.h"
#include "models/kernels/cpu/CpuKernels.h"
#include "models/layers/Sequential.h"
#include "models/zoo/PriorSampler.h"
#include "storage/checkpoint/ModelFile.h"
#include "storage/image/PngWriter.h"
#include "trainer/CommCrossRankSum.h"
#include "trainer/StopRequest.h"
#include "trainer/TestHooks.h"

namespace dptrain {

namespace {

std::string with_commas(int64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

// Reconstruction losses (autoencoders, VAE) compare the output with the input itself.
// Soft pseudo-labels (self-training) come as target distributions and replace the class ids.
Targets targets_for(const Loss& loss, const Batch& b, const Tensor& x) {
  if (loss.reconstruction()) return {nullptr, x.data()};
  if (b.targets && b.labels && loss.kind() == LossKind::softmax_cross_entropy) return {nullptr, b.targets};
  return {b.labels, b.targets};
}

// Dropout masks and other per-sample draws of unlabelled rows are keyed apart from labelled ones.
constexpr int64_t unlabeled_row_offset = int64_t{1} << 40;

// Writes `count` samples of a generative model as one PNG grid; images are [1 or 3, H, W] samples,
// anything else is drawn as one row of grey pixels per sample.
void write_sample_grid(const std::string& path, const std::vector<float>& images, int64_t count, const Shape& s) {
  const bool image = s.rank() == 3 && (s[0] == 1 || s[0] == 3);
  PngWriter::write_grid(path, images.data(), count, image ? s[0] : 1, image ? s[1] : 1, image ? s[2] : s.numel());
}

// Why a model's training step cannot be replayed as a CUDA graph, or "" when it can: layers that
// draw per-step random numbers (dropout, the VAE's sampling: the step keys bake into a graph), batch
// norm (reads its row count back to the host), and containers the check does not look into.
std::string not_capturable(Model& model) {
  auto* seq = dynamic_cast<Sequential*>(&model.root());
  if (!seq) return "the model is not a plain sequence of layers";
  for (const auto& line : seq->summary()) {
    if (line.find("dropout") != std::string::npos || line.find("sample") != std::string::npos)
      return "the model draws random numbers each step (dropout, sampling)";
    if (line.find("norm") != std::string::npos) return "batch norm reads its statistics on the host each step";
    if (line.find("residual") != std::string::npos || line.find("concat") != std::string::npos)
      return "the model has residual or concatenated blocks, which are not checked for graphs yet";
  }
  return "";
}

std::string in_dir(const std::string& dir, const std::string& file) {
  if (file.empty() || file[0] == '/') return file;
  return (std::filesystem::path(dir) / file).string();
}

}  // namespace

Device choose_training_device(const TrainConfig& config, Communicator& comm) {
  Device device = Device::cpu;
  if (config.device == "cuda" || (config.device == "auto" && cuda_available())) device = Device::cuda;
  if (device == Device::cuda) {
    if (comm.size() > 1 && comm.device() != Device::cuda && cuda_devices() > 0)
      cuda_set_device(cuda_device_for_local_rank(comm.local_rank()));
    kernels(device);  // fails clearly when there is no GPU
  }
  return device;
}

void apply_cpu_settings(const TrainConfig& config, const Communicator& comm) {
  int threads = config.threads;
  if (threads == 0)
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / std::max(1, comm.local_size()));
  set_cpu_threads(threads);
  set_cpu_engine(config.cpu_engine);
}

Trainer::Trainer(const TrainConfig& config, const ConfigNode& root, Communicator& comm) : config_(config), comm_(comm) {
  apply_cpu_settings(config_, comm_);

  if (config_.task == "self_training" && !config_.self_training.unlabeled.empty()) {
    // Two files become one with a /labeled mask, which everything downstream understands.
    const std::string merged = (std::filesystem::path(config_.out_dir) / "self_training_data.h5").string();
    if (comm_.rank() == 0) {
      std::filesystem::create_directories(config_.out_dir);
      merge_for_self_training(config_.data.train, config_.self_training.unlabeled, merged);
    }
    comm_.set_operation("self-training data merge", -1);
    comm_.barrier();
    config_.data.train = merged;
  }
  splits_ = make_splits(config_.data);
  const DatasetFile& train = *splits_.train.file;
  task_.classification = train.label_kind() == LabelKind::classes;
  task_.num_classes = train.num_classes();
  task_.target_dim = std::max<int64_t>(1, train.target_dim());
  if (config_.data.normalize) scaler_ = FeatureScaler::fit(train, splits_.train.rows);

  ZooModel zoo = build_model(root.child("model"), task_, train.sample_shape());
  const Device device = choose_training_device(config_, comm_);
  if (device == Device::cuda) stager_ = std::make_unique<DeviceBatchStager>();
  model_ = std::make_unique<Model>(std::move(zoo.root), train.sample_shape(), device);
  cpu_planner_ = std::make_unique<CpuPlanner>(
      comm_, device == Device::cpu, [this](const std::string& line) { print(line); },
      comm_.rank() == 0 ? config_.out_dir : "");
  model_->initialize(config_.seed);
  loss_ = std::make_unique<Loss>(zoo.loss, 1.0f, zoo.reconstruct);
  samples_ = zoo.samples;
  root.check_unused();

  ReaderOptions ro;
  ro.global_batch = config_.train.batch_size;
  ro.rank = comm_.rank();
  ro.world = comm_.size();
  ro.seed = config_.seed;
  ro.shuffle = config_.data.shuffle;
  ro.drop_last = config_.train.drop_last;
  ro.prefetch = config_.data.prefetch;
  ro.memory_budget_bytes = config_.data.memory_budget_mb << 20;
  if (!scaler_.empty()) {
    ro.mean = scaler_.mean;
    ro.inv_std = scaler_.inv_std();
  }
  if (config_.data.augment.enabled()) {  // training batches only
    auto augment = std::make_shared<Augmentation>(config_.data.augment, train.sample_shape(), config_.seed);
    ro.transform = [augment](float* x, int64_t rows, int64_t step, int64_t row0) {
      augment->apply(x, rows, step, row0);
    };
  }
  reader_options_ = ro;
  if (config_.task == "self_training") {
    self_training_ =
        std::make_unique<SelfTraining>(config_.self_training, splits_.train, splits_.unlabeled, task_.num_classes);
    if (config_.self_training.entropy_weight > 0.0) {
      ReaderOptions uo = ro;
      uo.global_batch = config_.self_training.entropy_batch_size ? config_.self_training.entropy_batch_size
                                                                 : config_.train.batch_size;
      uo.seed = config_.seed ^ 0x5e1f7a11ull;  // its own permutations
      uo.drop_last = false;
      unlabeled_reader_ = std::make_unique<ShardedReader>(splits_.unlabeled.file, splits_.unlabeled.rows, uo);
      entropy_loss_ = std::make_unique<Loss>(LossKind::prediction_entropy);
      entropy_stats_ = Tensor::zeros({num_loss_stats}, device);
    }
  } else if (!splits_.unlabeled.empty()) {
    print("note: " + std::to_string(splits_.unlabeled.rows.size()) +
          " training rows are marked unlabelled (/labeled = 0)"
          " and not used; task = \"self_training\" uses them");
  }
  make_training_reader({0, 0});

  optimizer_ = std::make_unique<Optimizer>(config_.optim, model_->flat_size(), device);
  const int64_t spe = reader_->steps_per_epoch();
  int64_t total = config_.train.epochs * spe;
  if (self_training_)  // an estimate: later rounds read more rows
    total = config_.self_training.rounds *
            (config_.self_training.steps_per_round ? config_.self_training.steps_per_round : total);
  if (config_.train.max_steps > 0) total = std::min(total, config_.train.max_steps);
  schedule_ = std::make_unique<LrSchedule>(config_.schedule, config_.optim.lr, total, spe);
  early_ = std::make_unique<EarlyStopping>(config_.early_stopping);
  if (config_.early_stopping.enabled && splits_.validation.empty())
    fail_input("config: early_stopping needs validation data ([data] validation or validation_fraction)");
  if (config_.schedule.kind == ScheduleKind::plateau && splits_.validation.empty())
    fail_input("config: schedule kind = \"plateau\" needs validation data");

  agree_on_start();

  std::vector<int64_t> offsets;
  for (const auto& p : model_->param_infos()) offsets.push_back(p.offset);
  reducer_ = std::make_unique<GradientReducer>(comm_, model_->grads().data(), model_->flat_size(), offsets,
                                               static_cast<int64_t>(config_.comm.bucket_mb * 1024 * 1024));
  on_ready_ = [this](int64_t offset) { reducer_->ready_from(offset); };
  if (comm_.size() > 1) cross_rank_ = std::make_unique<CommCrossRankSum>(comm_);
  stats_ = Tensor::zeros({num_loss_stats}, device);
  if (config_.cuda_graphs) {
    std::string why;
    if (device != Device::cuda)
      why = "the model runs on the CPU";
    else if (!cuda_graphs_supported())
      why = "this GPU or driver cannot capture graphs";
    else if (comm_.size() > 1)
      why = "with several ranks the all-reduce runs between backward and the optimizer";
    else if (unlabeled_reader_)
      why = "entropy minimization reads a second batch each step";
    else if (config_.optim.clip_norm > 0.0)
      why = "optim.clip_norm reads the gradient norm on the host each step";
    else if (config_.optim.kind == OptimizerKind::adam || config_.optim.kind == OptimizerKind::adamw)
      why = "Adam's bias correction changes every step";
    else
      why = not_capturable(*model_);
    graphs_usable_ = why.empty();
    if (graphs_usable_)
      for (auto& g : graphs_) g = std::make_unique<CudaGraph>();
    else
      print("note: cuda_graphs = true, but the step runs without graphs: " + why);
  }
  last_checkpoint_time_ = std::chrono::steady_clock::now();
  coordination_ = std::make_unique<JobCoordination>(config_, comm_, [this](const std::string& line) { print(line); });

  if (logs()) {
    std::filesystem::create_directories(config_.out_dir);
    log_ = std::make_unique<MetricsLog>(in_dir(config_.out_dir, config_.train.metrics_file));
    progress_ = std::make_unique<ProgressLine>(config_.train.progress);
    char head[512];
    std::snprintf(head, sizeof head,
                  "dptrain: %s model, %s parameters | %s: %lld train / %lld validation / %lld test rows | "
                  "global batch %lld on %d rank%s (%s, %s) | %lld steps/epoch",
                  zoo.kind.c_str(), with_commas(model_->parameter_count()).c_str(), train.path().c_str(),
                  static_cast<long long>(splits_.train.rows.size()),
                  static_cast<long long>(splits_.validation.rows.size()),
                  static_cast<long long>(splits_.test.rows.size()), static_cast<long long>(config_.train.batch_size),
                  comm_.size(), comm_.size() > 1 ? "s" : "", comm_.backend().c_str(), device_name(device),
                  static_cast<long long>(spe));
    print(head);
    if (auto* seq = dynamic_cast<Sequential*>(&model_->root()))
      for (const auto& line : seq->summary()) print("  " + line);
  }
}

Trainer::~Trainer() = default;

void Trainer::agree_on_start() {
  if (comm_.size() == 1) return;
  struct Fingerprint {
    uint64_t config, layout;
    int64_t params, batch;
  };
  Fingerprint mine{config_.hash, model_->layout_hash(), model_->parameter_count(), config_.train.batch_size};
  std::vector<Fingerprint> all(static_cast<size_t>(comm_.size()));
  comm_.set_operation("start-up check", -1);
  comm_.allgather(&mine, sizeof mine, all.data());
  std::string problems;
  for (int r = 1; r < comm_.size(); ++r) {
    const Fingerprint& f = all[static_cast<size_t>(r)];
    std::string what;
    if (f.config != all[0].config) what += " config text (file or --set overrides)";
    if (f.layout != all[0].layout) what += " model layout";
    if (f.params != all[0].params)
      what += " parameter count (" + std::to_string(f.params) + " vs " + std::to_string(all[0].params) + ")";
    if (!what.empty())
      problems +=
          (problems.empty() ? "" : "; ") + std::string("rank ") + std::to_string(r) + " differs from rank 0 in" + what;
  }
  if (!problems.empty()) fail_input("ranks were started with different configurations: " + problems);
  comm_.set_operation("initial parameter broadcast", -1);
  std::vector<float> host(static_cast<size_t>(model_->flat_size()));
  copy_memory(host.data(), Device::cpu, model_->params().data(), model_->device(), host.size() * sizeof(float));
  comm_.broadcast(host.data(), host.size() * sizeof(float), 0);
  copy_memory(model_->params().data(), model_->device(), host.data(), Device::cpu, host.size() * sizeof(float));
}

void Trainer::print(const std::string& line) {
  if (!logs()) return;
  if (progress_) progress_->finish();
  std::printf(
      "%s%s\n",
      comm_.size() > 1 && config_.train.all_ranks_log ? ("[rank " + std::to_string(comm_.rank()) + "] ").c_str() : "",
      line.c_str());
  std::fflush(stdout);
}

std::string Trainer::epoch_label(int64_t epoch) const {
  if (!self_training_) return "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(config_.train.epochs);
  std::string round =
      "round " + std::to_string(self_training_->round() + 1) + "/" + std::to_string(config_.self_training.rounds);
  if (config_.self_training.steps_per_round) return round;
  return round + " epoch " + std::to_string(epoch - round_start_epoch_ + 1) + "/" +
         std::to_string(config_.train.epochs);
}

void Trainer::make_training_reader(const ReaderCursor& cursor) {
  ReaderOptions ro = reader_options_;
  std::vector<int64_t> rows = splits_.train.rows;
  if (self_training_) {
    rows = self_training_->training_rows();
    ro.labels = self_training_->labels();
    if (self_training_->config().soft) {
      ro.soft_targets = self_training_->soft_targets();
      ro.soft_target_dim = task_.num_classes;
    }
  }
  reader_.reset();
  staged_ahead_ = nullptr;
  target_width_ = ro.soft_targets ? ro.soft_target_dim : std::max<int64_t>(1, splits_.train.file->target_dim());
  reader_ = std::make_unique<ShardedReader>(splits_.train.file, std::move(rows), ro);
  if (cursor.epoch || cursor.step_in_epoch) reader_->seek(cursor);
}

const Batch& Trainer::next_training_batch() {
  if (!stager_) return reader_->next();
  if (const Batch* ahead = staged_ahead_) {
    staged_ahead_ = nullptr;
    return *ahead;
  }
  return stager_->stage(reader_->next(), target_width_);
}

ReaderCursor Trainer::training_cursor() const { return staged_ahead_ ? ahead_cursor_ : reader_->cursor(); }

void Trainer::train_step(const Batch& batch, bool stage_next) {
  const Tensor* x = &batch.x;  // on a GPU the batch is already there (next_training_batch)
  if (stager_) {
    stager_->ready();  // this step's kernels wait, on the device, for its batch
    if (stage_next) {  // and the next batch is copied while they run
      ahead_cursor_ = reader_->cursor();
      staged_ahead_ = &stager_->stage(reader_->next(), target_width_);
    }
  }
  StepContext ctx{Mode::train, config_.seed,     static_cast<uint64_t>(step_), batch.row0, &on_ready_,
                  true,        cross_rank_.get()};
  ctx.loss_stats = stats_.data();  // auxiliary losses (a VAE's KL term) report with the main loss
  ctx.loss_scale = 1.0f / static_cast<float>(batch.global_rows);
  const float control[GradientReducer::control_lanes] = {stop_.post(step_), checkpoint_time_due() ? 1.0f : 0.0f};
  reducer_->begin_step(step_, control);
  if (unlabeled_reader_) ctx.on_gradients_ready = nullptr;  // gradients are final after the second pass
  cpu_planner_->before_step();
  step_compute(batch, *x, ctx);
  cpu_planner_->after_step();
  ++step_;
  ++interval_steps_;
}

uint64_t Trainer::graph_key(const Batch& batch) const {
  if (!graphs_usable_) return 0;
  // Everything a captured step bakes into its kernels that can change between steps: the batch's
  // device addresses and size, the loss scale and the learning rate.
  const float lr = static_cast<float>(schedule_->lr(step_));
  const void* parts[3] = {batch.x.data(), batch.labels, batch.targets};
  const int64_t sizes[3] = {batch.rows(), batch.global_rows, batch.row0};
  uint64_t h = stable_hash(parts, sizeof parts);
  h = stable_hash(sizes, sizeof sizes, h);
  h = stable_hash(&lr, sizeof lr, h);
  return h | 1;  // never 0
}

void Trainer::step_compute(const Batch& batch, const Tensor& x, StepContext& ctx) {
  const uint64_t key = graph_key(batch);
  if (key && graph_warm_) {
    // One launch for the whole step. On one rank the reducer has nothing to do, and the optimizer's
    // host-side step counter only advances while a graph is captured, so it is set here.
    const float lr = static_cast<float>(schedule_->lr(step_));
    const int64_t steps = optimizer_->steps();
    CudaGraph& graph = *graphs_[batch.x.data() == graph_x_[0] ? 0 : 1];
    coordination_->before_update();
    const int captures = graph.captures();
    graph.run(key, [&] {
      model_->zero_grad();
      const Tensor& out = model_->forward(x, ctx);
      loss_->evaluate(out, targets_for(*loss_, batch, x), 1.0f / static_cast<float>(batch.global_rows), &dout_,
                      stats_.data());
      model_->backward(dout_, ctx);
      optimizer_->step(model_->params(), model_->grads(), lr, 1.0f);
    });
    optimizer_->set_steps(steps + 1);
    reducer_->finish();
    stop_.agree(step_, reducer_->control(0));
    checkpoint_due_ = checkpoint_due_ || reducer_->control(1) > 0.0f;
    // A key that changes nearly every step (a learning rate decayed per step) makes capturing cost
    // more than it saves: fall back to plain launches.
    graph_steps_ += 1;
    graph_captures_ += graph.captures() - captures;
    if (graph_steps_ >= 32 && graph_captures_ * 4 > graph_steps_) {
      graphs_usable_ = false;
      print("note: cuda_graphs: the step had to be captured again " + std::to_string(graph_captures_) + " times in " +
            std::to_string(graph_steps_) + " steps (a learning rate that changes each step?); running without graphs");
    }
    return;
  }
  if (key) {
    graph_x_[batch.x.data() == graph_x_[0] || !graph_x_[0] ? 0 : 1] = batch.x.data();
    graph_warm_ = true;  // this eager step makes every allocation the captured ones will use
  }
  model_->zero_grad();
  const Tensor& out = model_->forward(x, ctx);
  loss_->evaluate(out, targets_for(*loss_, batch, x), 1.0f / static_cast<float>(batch.global_rows), &dout_,
                  stats_.data());
  model_->backward(dout_, ctx);
  if (unlabeled_reader_) {
    // Entropy minimization: lambda * H(softmax) on an unlabelled batch adds to the same gradients.
    const Batch& u = unlabeled_reader_->next();
    const Tensor* ux = &u.x;
    if (model_->device() != Device::cpu) {
      x_device_.resize(u.x.shape(), model_->device());
      x_device_.copy_from(u.x);
      ux = &x_device_;
    }
    StepContext uctx = ctx;
    uctx.row0 = unlabeled_row_offset + u.row0;
    uctx.on_gradients_ready = &on_ready_;
    uctx.loss_stats = nullptr;
    const Tensor& uout = model_->forward(*ux, uctx);
    entropy_loss_->evaluate(
        uout, {}, static_cast<float>(config_.self_training.entropy_weight) / static_cast<float>(u.global_rows),
        &entropy_dout_, entropy_stats_.data());
    model_->backward(entropy_dout_, uctx);
  }
  reducer_->finish();
  stop_.agree(step_, reducer_->control(0));
  checkpoint_due_ = checkpoint_due_ || reducer_->control(1) > 0.0f;
  float grad_scale = 1.0f;
  if (config_.optim.clip_norm > 0.0) {
    double norm = std::sqrt(kernels(model_->device()).sum_squares(model_->flat_size(), model_->grads().data()));
    if (norm > config_.optim.clip_norm) grad_scale = static_cast<float>(config_.optim.clip_norm / norm);
  }
  coordination_->before_update();  // a checkpoint of the last step may still be copying them
  optimizer_->step(model_->params(), model_->grads(), static_cast<float>(schedule_->lr(step_)), grad_scale);
}

EvalResult Trainer::reduce_stats(const float* stats_host, double) {
  double sums[num_loss_stats];
  for (int i = 0; i < num_loss_stats; ++i) sums[i] = stats_host[i];
  comm_.set_operation("metrics all-reduce", step_);
  comm_.allreduce_sum(sums, num_loss_stats);
  EvalResult r;
  r.count = static_cast<int64_t>(sums[stat_count]);
  r.loss = r.count ? sums[stat_loss] / sums[stat_count] : 0.0;
  r.accuracy = r.count ? sums[stat_correct] / sums[stat_count] : 0.0;
  r.has_accuracy = loss_->classifies();
  return r;
}

void Trainer::log_interval(int64_t epoch, int64_t step_in_epoch) {
  float host[num_loss_stats];
  copy_memory(host, Device::cpu, stats_.data(), stats_.device(), sizeof host);
  stats_.fill(0.0f);
  double sums[num_loss_stats];
  for (int i = 0; i < num_loss_stats; ++i) sums[i] = host[i];
  comm_.set_operation("metrics all-reduce", step_);
  comm_.allreduce_sum(sums, num_loss_stats);
  for (int i = 0; i < num_loss_stats; ++i) epoch_sums_[i] += sums[i];
  auto now = std::chrono::steady_clock::now();
  double dt = std::chrono::duration<double>(now - interval_start_).count();
  double samples_per_s = dt > 0 ? sums[stat_count] / dt : 0.0;
  double since_start = std::chrono::duration<double>(now - run_start_).count();
  interval_start_ = now;
  interval_steps_ = 0;
  last_samples_per_s_ = samples_per_s;
  if (coordination_->client() && comm_.rank() == 0)
    coordination_->client()->report_metrics(step_, epoch + 1, sums[stat_loss] / std::max(1.0, sums[stat_count]),
                                            sums[stat_correct] / std::max(1.0, sums[stat_count]), samples_per_s,
                                            schedule_->lr(step_ - 1), cpu_planner_->summary());
  if (!logs()) return;
  const int64_t spe = reader_->steps_per_epoch();
  // Where the run stands: step `at` of the period shown, and the steps still to go in the run.
  int64_t at = step_in_epoch, period = spe, left = config_.train.epochs * spe - step_;
  if (self_training_) {
    // Later rounds read more rows when a round is counted in epochs: an estimate from this round.
    const SelfTrainingConfig& st = config_.self_training;
    const int64_t round_steps = st.steps_per_round ? st.steps_per_round : config_.train.epochs * spe;
    const int64_t done_in_round = step_ - round_start_step_;
    left = round_steps - done_in_round + (st.rounds - self_training_->round() - 1) * round_steps;
    if (st.steps_per_round) at = done_in_round, period = round_steps;
  }
  if (config_.train.max_steps > 0) left = std::min(left, config_.train.max_steps - step_);
  const double n = std::max(1.0, sums[stat_count]);
  const int64_t done = step_ - run_start_step_;
  const double eta =
      done > 0 ? since_start / static_cast<double>(done) * static_cast<double>(std::max<int64_t>(left, 0)) : -1.0;
  progress_->update(epoch_label(epoch), at, period, sums[stat_loss] / n, sums[stat_correct] / n, loss_->classifies(),
                    samples_per_s, eta);
  log_->write(JsonRecord()
                  .add("event", std::string("step"))
                  .add("step", step_)
                  .add("epoch", epoch + 1)
                  .add("loss", sums[stat_loss] / n)
                  .add("accuracy", sums[stat_correct] / n)
                  .add("lr", schedule_->lr(step_ - 1))
                  .add("samples_per_s", samples_per_s)
                  .add("time_s", since_start));
}

EvalResult Trainer::evaluate(const DataSplit& split) {
  EvalResult none;
  if (split.empty()) return none;
  ReaderOptions ro;
  ro.global_batch = config_.train.batch_size;
  ro.rank = comm_.rank();
  ro.world = comm_.size();
  ro.shuffle = Shuffle::none;
  ro.prefetch = config_.data.prefetch;
  ro.memory_budget_bytes = config_.data.memory_budget_mb << 20;
  if (!scaler_.empty()) {
    ro.mean = scaler_.mean;
    ro.inv_std = scaler_.inv_std();
  }
  ShardedReader reader(split.file, split.rows, ro);
  Tensor stats = Tensor::zeros({num_loss_stats}, model_->device());
  if (staged_ahead_) {  // the staging slots are needed here: the training reader reads it again
    reader_->seek(ahead_cursor_);
    staged_ahead_ = nullptr;
  }
  graph_warm_ = false;  // evaluation may resize activations a captured step refers to
  for (auto& g : graphs_)
    if (g) g->reset();
  const int64_t target_width = std::max<int64_t>(1, split.file->target_dim());
  for (int64_t s = 0; s < reader.steps_per_epoch(); ++s) {
    const Batch& b = stager_ ? stager_->stage(reader.next(), target_width) : reader.next();
    const Tensor* x = &b.x;
    if (stager_) stager_->ready();
    StepContext ctx{Mode::eval, config_.seed, static_cast<uint64_t>(step_), b.row0, nullptr, false};
    ctx.loss_stats = stats.data();
    const Tensor& out = model_->forward(*x, ctx);
    loss_->evaluate(out, targets_for(*loss_, b, *x), 1.0f, nullptr, stats.data());
  }
  float host[num_loss_stats];
  copy_memory(host, Device::cpu, stats.data(), stats.device(), sizeof host);
  return reduce_stats(host);
}

TrainResult Trainer::run() {
  TrainResult result;
  run_start_ = interval_start_ = std::chrono::steady_clock::now();
  run_start_step_ = step_;
  if (self_training_) {
    if (!run_rounds(result)) return result;
  } else {
    const int64_t spe = reader_->steps_per_epoch();
    int64_t total = config_.train.epochs * spe;
    if (config_.train.max_steps > 0) total = std::min(total, config_.train.max_steps);
    if (!train_epochs(config_.train.epochs, total, true, result)) return result;
  }
  finish(result);
  return result;
}

bool Trainer::run_rounds(TrainResult& result) {
  const SelfTrainingConfig& st = config_.self_training;
  while (true) {
    const int64_t round = self_training_->round();
    const bool last = round + 1 >= st.rounds;
    int64_t epoch_end =
        st.steps_per_round ? std::numeric_limits<int64_t>::max() : round_start_epoch_ + config_.train.epochs;
    int64_t step_end =
        st.steps_per_round ? round_start_step_ + st.steps_per_round : std::numeric_limits<int64_t>::max();
    if (config_.train.max_steps > 0) step_end = std::min(step_end, config_.train.max_steps);
    if (!train_epochs(epoch_end, step_end, last, result)) return false;
    if (last || stopped_early_ || (config_.train.max_steps > 0 && step_ >= config_.train.max_steps)) return true;
    if (st.pseudo_labels) {
      RoundReport rep = self_training_->finish_round(*model_, reader_options_, comm_, *coordination_->client(),
                                                     config_.coordinator.checkpoint_timeout_s);
      if (logs()) {
        char line[256];
        std::snprintf(
            line, sizeof line, "round %lld/%lld: %lld pseudo-labels added (%lld in all, %lld unlabelled left)",
            static_cast<long long>(round + 1), static_cast<long long>(st.rounds), static_cast<long long>(rep.added),
            static_cast<long long>(rep.total_pseudo), static_cast<long long>(rep.remaining));
        std::string text = line;
        if (rep.pseudo_accuracy >= 0) {
          std::snprintf(line, sizeof line, ", %.2f%% of them right by /y", 100 * rep.pseudo_accuracy);
          text += line;
        }
        if (!splits_.validation.empty()) {
          std::snprintf(line, sizeof line, " | validation acc %.2f%%", 100 * result.validation.accuracy);
          text += line;
        }
        print(text);
        JsonRecord rec;
        rec.add("event", std::string("round")).add("round", round + 1).add("step", step_).add("added", rep.added);
        rec.add("pseudo_labels", rep.total_pseudo).add("unlabeled_left", rep.remaining);
        if (rep.pseudo_accuracy >= 0) rec.add("pseudo_accuracy", rep.pseudo_accuracy);
        if (!splits_.validation.empty()) rec.add("val_accuracy", result.validation.accuracy);
        log_->write(rec);
      }
    } else {
      self_training_->skip_round();
    }
    // The next round reads labelled + pseudo-labelled rows from a fresh epoch.
    ReaderCursor c = training_cursor();
    round_start_epoch_ = c.step_in_epoch ? c.epoch + 1 : c.epoch;
    round_start_step_ = step_;
    if (reports_per_round()) std::fill(std::begin(epoch_sums_), std::end(epoch_sums_), 0.0);
    if (st.reinitialize) {
      coordination_->before_update();
      model_->initialize(config_.seed);
      optimizer_ = std::make_unique<Optimizer>(config_.optim, model_->flat_size(), model_->device());
    }
    make_training_reader({round_start_epoch_, 0});
    maybe_checkpoint(false);
  }
}

bool Trainer::train_epochs(int64_t epoch_end, int64_t step_end, bool checkpoint_last_epoch, TrainResult& result) {
  const int64_t spe = reader_->steps_per_epoch();
  const int64_t total = step_end;
  // Per round: the sums, the log cadence and the end-of-period report follow the round, not the
  // data epochs inside it.
  const bool per_round = reports_per_round();
  ReaderCursor start = training_cursor();
  bool stop = stopped_early_;  // a run resumed after it stopped early does not train on
  auto epoch_start = interval_start_ = std::chrono::steady_clock::now();
  for (int64_t epoch = start.epoch; epoch < epoch_end && step_ < total && !stop; ++epoch) {
    if (!per_round) epoch_start = interval_start_ = std::chrono::steady_clock::now();
    int64_t s = epoch == start.epoch ? start.step_in_epoch : 0;
    if (s == 0 && !per_round) std::fill(std::begin(epoch_sums_), std::end(epoch_sums_), 0.0);  // else restored
    for (; s < spe && step_ < total; ++s) {
      TestHooks::get().before_step(comm_.rank(), step_);
      train_step(next_training_batch(), s + 1 < spe && step_ + 1 < total);
      if (auto* client = coordination_->client()) client->set_progress(step_, last_samples_per_s_);
      const bool log_now = per_round ? (step_ - round_start_step_) % config_.train.log_every == 0 || step_ == total
                                     : (s + 1) % config_.train.log_every == 0 || s + 1 == spe || step_ == total;
      if (log_now) log_interval(epoch, s + 1);
      if (stop_.agreed()) {
        // Asked to stop (SIGUSR1/SIGTERM or the coordinator): every rank saw it in the same step's
        // control lane, so all checkpoint this step and leave together, to be requeued.
        maybe_checkpoint(true);
        print(stop_.requeue_message(step_));
        result.requeue = true;
        result.steps = step_;
        return false;
      }
      // The last step of an epoch is checkpointed after the epoch's evaluation, which it includes.
      if (s + 1 < spe) maybe_checkpoint(false);
    }
    if (per_round && step_ < total) {  // a data epoch inside the round: no report
      maybe_checkpoint(false);
      continue;
    }
    double n = std::max(1.0, epoch_sums_[stat_count]);
    result.train = {epoch_sums_[stat_loss] / n, epoch_sums_[stat_correct] / n,
                    static_cast<int64_t>(epoch_sums_[stat_count]), loss_->classifies()};
    result.epochs = epoch + 1;
    EvalResult val = evaluate(splits_.validation);
    if (!splits_.validation.empty()) {
      result.validation = val;
      if (schedule_->observe(val.loss))
        print("validation loss plateaued: learning rate now " + std::to_string(schedule_->lr(step_)));
      coordination_->before_update();  // observe() may overwrite the best parameters a checkpoint is copying
      if (early_->observe(epoch + 1, val.loss, val.accuracy, model_->params())) {
        stop = true;
        result.stopped_early = true;
      }
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
    if (logs()) {
      char line[256];
      int len = std::snprintf(line, sizeof line, "%s: train loss %.4f", epoch_label(epoch).c_str(), result.train.loss);
      if (loss_->classifies())
        len += std::snprintf(line + len, sizeof line - len, " acc %.2f%%", 100 * result.train.accuracy);
      if (!splits_.validation.empty()) {
        len += std::snprintf(line + len, sizeof line - len, " | validation loss %.4f", val.loss);
        if (loss_->classifies()) len += std::snprintf(line + len, sizeof line - len, " acc %.2f%%", 100 * val.accuracy);
      }
      std::snprintf(line + len, sizeof line - len, " | %.1f s", secs);
      print(line);
      JsonRecord rec;
      rec.add("event", std::string("epoch")).add("epoch", epoch + 1).add("step", step_);
      rec.add("train_loss", result.train.loss);
      if (loss_->classifies()) rec.add("train_accuracy", result.train.accuracy);
      if (!splits_.validation.empty()) {
        rec.add("val_loss", val.loss);
        if (loss_->classifies()) rec.add("val_accuracy", val.accuracy);
      }
      rec.add("lr", schedule_->lr(step_)).add("epoch_s", secs);
      log_->write(rec);
      if (stop)
        print("early stopping: no improvement for " + std::to_string(config_.early_stopping.patience) + " epochs");
    }
    stopped_early_ = stop;
    if (s == spe && (checkpoint_last_epoch || epoch + 1 < epoch_end)) maybe_checkpoint(false);
  }
  return true;
}

void Trainer::finish(TrainResult& result) {
  if (config_.checkpoint.at_end) maybe_checkpoint(true);
  result.steps = step_;
  coordination_->before_update();
  if (early_->restore(model_->params()) && logs())
    print("restored the parameters of epoch " + std::to_string(early_->state().best_epoch) + " (best " +
          config_.early_stopping.metric + ")");

  if (!splits_.test.empty()) {
    result.test = evaluate(splits_.test);
    if (logs()) {
      char line[160];
      if (loss_->classifies())
        std::snprintf(line, sizeof line, "test accuracy: %.2f%% (loss %.4f, %lld rows)", 100 * result.test.accuracy,
                      result.test.loss, static_cast<long long>(result.test.count));
      else
        std::snprintf(line, sizeof line, "test %s: %.6f (%lld rows)",
                      loss_->kind() == LossKind::mean_squared_error ? "mse" : "loss", result.test.loss,
                      static_cast<long long>(result.test.count));
      print(line);
      log_->write(JsonRecord()
                      .add("event", std::string("test"))
                      .add("loss", result.test.loss)
                      .add("accuracy", result.test.accuracy)
                      .add("rows", result.test.count));
    }
  }
  if (comm_.rank() == 0) {
    std::filesystem::create_directories(config_.out_dir);
    result.model_path = (std::filesystem::path(config_.out_dir) / "model.h5").string();
    ModelFileMeta meta{config_.text, task_, scaler_.mean, scaler_.std, model_->input_shape().to_vector()};
    save_model_file(result.model_path, *model_, meta);
    print("model saved to " + result.model_path);
    PriorSampler sampler(*model_, loss_->kind());
    if (samples_ > 0 && sampler.usable()) {
      std::vector<float> images;
      sampler.sample(samples_, config_.seed, images);
      std::string png = (std::filesystem::path(config_.out_dir) / "samples.png").string();
      write_sample_grid(png, images, samples_, model_->output_shape());
      print(std::to_string(samples_) + " samples from the prior written to " + png);
    }
  }
}

}  // namespace dptrain
