#include "trainer/Trainer.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "models/core/Error.h"
#include "models/core/Hash.h"
#include "models/layers/Sequential.h"
#include "models/zoo/PriorSampler.h"
#include "storage/checkpoint/ModelFile.h"
#include "storage/image/PngWriter.h"
#include "trainer/CommCrossRankSum.h"

namespace dptrain {

namespace {

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

// Self-training from two files: they become one with a /labeled mask, which everything
// downstream understands.
TrainConfig with_merged_data(TrainConfig config, Communicator& comm) {
  if (config.task != "self_training" || config.self_training.unlabeled.empty()) return config;
  const std::string merged = (std::filesystem::path(config.out_dir) / "self_training_data.h5").string();
  if (comm.rank() == 0) {
    std::filesystem::create_directories(config.out_dir);
    merge_for_self_training(config.data.train, config.self_training.unlabeled, merged);
  }
  comm.set_operation("self-training data merge", -1);
  comm.barrier();
  config.data.train = merged;
  return config;
}

}  // namespace

Trainer::Trainer(const TrainConfig& config, const ConfigNode& root, Communicator& comm)
    : session_(with_merged_data(config, comm), comm), config_(session_.config()), comm_(comm) {
  splits_ = make_splits(config_.data);
  const DatasetFile& train = *splits_.train.file;
  task_.classification = train.label_kind() == LabelKind::classes;
  task_.num_classes = train.num_classes();
  task_.target_dim = std::max<int64_t>(1, train.target_dim());
  if (config_.data.normalize) scaler_ = FeatureScaler::fit(train, splits_.train.rows);

  ZooModel zoo = build_model(root.child("model"), task_, train.sample_shape());
  const Device device = session_.device();
  model_ = std::make_unique<Model>(std::move(zoo.root), train.sample_shape(), device);
  model_->initialize(config_.seed);
  loss_ = std::make_unique<Loss>(zoo.loss, 1.0f, zoo.reconstruct);
  samples_ = zoo.samples;
  root.check_unused();

  reader_options_ = session_.training_reader_options(train.sample_shape(), scaler_);
  if (config_.task == "self_training") {
    self_training_ =
        std::make_unique<SelfTraining>(config_.self_training, splits_.train, splits_.unlabeled, task_.num_classes);
    if (config_.self_training.entropy_weight > 0.0) {
      ReaderOptions uo = reader_options_;
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

  session_.agree_on_start(model_->layout_hash(), model_->parameter_count(), {model_.get()});

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
  session_.open();

  if (logs()) {
    print("dptrain: " + zoo.kind + " model, " + with_commas(model_->parameter_count()) + " parameters | " +
          train.path() + ": " + std::to_string(splits_.train.rows.size()) + " train / " +
          std::to_string(splits_.validation.rows.size()) + " validation / " +
          std::to_string(splits_.test.rows.size()) + " test rows | global batch " +
          std::to_string(config_.train.batch_size) + " on " + std::to_string(comm_.size()) + " rank" +
          (comm_.size() > 1 ? "s" : "") + " (" + comm_.backend() + ", " + device_name(device) + ") | " +
          std::to_string(spe) + " steps/epoch");
    if (auto* seq = dynamic_cast<Sequential*>(&model_->root()))
      for (const auto& line : seq->summary()) print("  " + line);
  }
  begin_round();
}

Trainer::~Trainer() = default;

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

void Trainer::begin_round() {
  const int64_t spe = reader_->steps_per_epoch();
  const SelfTrainingConfig& st = config_.self_training;
  if (self_training_ && st.steps_per_round) {
    epoch_end_ = std::numeric_limits<int64_t>::max();
    step_end_ = round_start_step_ + st.steps_per_round;
  } else if (self_training_) {
    epoch_end_ = round_start_epoch_ + config_.train.epochs;
    step_end_ = std::numeric_limits<int64_t>::max();
  } else {
    epoch_end_ = config_.train.epochs;
    step_end_ = config_.train.epochs * spe;
  }
  if (config_.train.max_steps > 0) step_end_ = std::min(step_end_, config_.train.max_steps);
  // A run resumed after it stopped early, or at its end, does not train on.
  done_ = stopped_early_ || training_cursor().epoch >= epoch_end_ || session_.step() >= step_end_;
  period_open_ = false;
}

const Batch& Trainer::next_training_batch() {
  DeviceBatchStager* stager = session_.stager();
  if (!stager) return reader_->next();
  if (const Batch* ahead = staged_ahead_) {
    staged_ahead_ = nullptr;
    return *ahead;
  }
  return stager->stage(reader_->next(), target_width_);
}

ReaderCursor Trainer::training_cursor() const { return staged_ahead_ ? ahead_cursor_ : reader_->cursor(); }

bool Trainer::train_step() {
  position_ = training_cursor();
  const int64_t step = session_.step();
  const bool per_round = reports_per_round();
  // A reporting period (an epoch, or a round counted in steps) starts its clock and its sums.
  if (!period_open_ || (!per_round && position_.step_in_epoch == 0)) {
    period_start_ = interval_start_ = std::chrono::steady_clock::now();
    period_open_ = true;
  }
  if (!per_round && position_.step_in_epoch == 0) std::fill(std::begin(epoch_sums_), std::end(epoch_sums_), 0.0);

  const Batch& batch = next_training_batch();
  const Tensor* x = &batch.x;  // on a GPU the batch is already there (next_training_batch)
  if (DeviceBatchStager* stager = session_.stager()) {
    stager->ready();  // this step's kernels wait, on the device, for its batch
    // The next batch of this period is copied while they run.
    if (position_.step_in_epoch + 1 < reader_->steps_per_epoch() && step + 1 < step_end_) {
      ahead_cursor_ = reader_->cursor();
      staged_ahead_ = &stager->stage(reader_->next(), target_width_);
    }
  }
  StepContext ctx{.mode = Mode::train,
                  .seed = config_.seed,
                  .step = static_cast<uint64_t>(step),
                  .row0 = batch.row0,
                  // with entropy minimization gradients are final after the second pass
                  .on_gradients_ready = unlabeled_reader_ ? nullptr : &on_ready_,
                  .cross_rank = cross_rank_.get(),
                  .loss_stats = stats_.data()};  // auxiliary losses (a VAE's KL term) report with the main loss
  session_.begin_step(*reducer_);
  step_compute(batch, *x, ctx);
  return true;
}

uint64_t Trainer::graph_key(const Batch& batch) const {
  if (!graphs_usable_) return 0;
  // Everything a captured step bakes into its kernels that can change between steps: the batch's
  // device addresses and size, the loss scale and the learning rate.
  const float lr = static_cast<float>(schedule_->lr(session_.step()));
  const void* parts[3] = {batch.x.data(), batch.labels, batch.targets};
  const int64_t sizes[3] = {batch.rows(), batch.global_rows, batch.row0};
  uint64_t h = stable_hash(parts, sizeof parts);
  h = stable_hash(sizes, sizeof sizes, h);
  h = stable_hash(&lr, sizeof lr, h);
  return h | 1;  // never 0
}

void Trainer::step_compute(const Batch& batch, const Tensor& x, StepContext& ctx) {
  const uint64_t key = graph_key(batch);
  const float lr = static_cast<float>(schedule_->lr(session_.step()));
  if (key && graph_warm_) {
    // One launch for the whole step. On one rank the reducer has nothing to do, and the optimizer's
    // host-side step counter only advances while a graph is captured, so it is set here.
    const float scale = mean_gradient_scale(model_->grads(), batch.global_rows, 0.0);
    const int64_t steps = optimizer_->steps();
    CudaGraph& graph = *graphs_[batch.x.data() == graph_x_[0] ? 0 : 1];
    session_.coordination().before_update();
    const int captures = graph.captures();
    graph.run(key, [&] {
      model_->zero_grad();
      const Tensor& out = model_->forward(x, ctx);
      loss_->evaluate(out, targets_for(*loss_, batch, x), 1.0f, &dout_, stats_.data());
      model_->backward(dout_, ctx);
      optimizer_->step(model_->params(), model_->grads(), lr, scale);
    });
    optimizer_->set_steps(steps + 1);
    session_.end_step(*reducer_);
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
  loss_->evaluate(out, targets_for(*loss_, batch, x), 1.0f, &dout_, stats_.data());
  model_->backward(dout_, ctx);
  if (unlabeled_reader_) {
    // Entropy minimization: lambda * H(softmax), averaged over an unlabelled batch, adds to the
    // same gradient sums (weighted by B / B_u, as the update divides by the labelled batch B).
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
    const double weight = config_.self_training.entropy_weight * static_cast<double>(batch.global_rows) /
                          static_cast<double>(u.global_rows);
    entropy_loss_->evaluate(uout, {}, static_cast<float>(weight), &entropy_dout_, entropy_stats_.data());
    model_->backward(entropy_dout_, uctx);
  }
  session_.end_step(*reducer_);
  const float scale = mean_gradient_scale(model_->grads(), batch.global_rows, config_.optim.clip_norm);
  session_.coordination().before_update();  // a checkpoint of the last step may still be copying them
  optimizer_->step(model_->params(), model_->grads(), lr, scale);
}

void Trainer::end_step() {
  const int64_t step = session_.step(), spe = reader_->steps_per_epoch();
  const int64_t epoch = position_.epoch, s = position_.step_in_epoch;
  const bool per_round = reports_per_round();
  const bool log_now = per_round ? (step - round_start_step_) % config_.train.log_every == 0 || step == step_end_
                                 : (s + 1) % config_.train.log_every == 0 || s + 1 == spe || step == step_end_;
  if (log_now) log_interval(epoch, s + 1);
  const bool epoch_over = s + 1 == spe;
  const bool round_over = step >= step_end_ || (epoch_over && epoch + 1 >= epoch_end_);
  if (per_round ? round_over : epoch_over || round_over) end_period(epoch);
  if (!round_over && !stopped_early_) return;
  const bool last_round = !self_training_ || self_training_->round() + 1 >= config_.self_training.rounds;
  if (last_round || stopped_early_ || (config_.train.max_steps > 0 && step >= config_.train.max_steps))
    done_ = true;
  else
    end_round();
}

void Trainer::end_period(int64_t epoch) {
  const double n = std::max(1.0, epoch_sums_[stat_count]);
  result_.train = {epoch_sums_[stat_loss] / n, epoch_sums_[stat_correct] / n,
                   static_cast<int64_t>(epoch_sums_[stat_count]), loss_->classifies()};
  result_.epochs = epoch + 1;
  period_open_ = false;
  const EvalResult val = evaluate(splits_.validation);
  bool stop = false;
  if (!splits_.validation.empty()) {
    result_.validation = val;
    if (schedule_->observe(val.loss))
      print("validation loss plateaued: learning rate now " + std::to_string(schedule_->lr(session_.step())));
    session_.coordination().before_update();  // observe() may overwrite the best parameters a checkpoint is copying
    if (early_->observe(epoch + 1, val.loss, val.accuracy, model_->params())) {
      stop = true;
      result_.stopped_early = true;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - period_start_).count();
  if (logs()) {
    char line[256];
    int len = std::snprintf(line, sizeof line, "%s: train loss %.4f", epoch_label(epoch).c_str(), result_.train.loss);
    if (loss_->classifies())
      len += std::snprintf(line + len, sizeof line - len, " acc %.2f%%", 100 * result_.train.accuracy);
    if (!splits_.validation.empty()) {
      len += std::snprintf(line + len, sizeof line - len, " | validation loss %.4f", val.loss);
      if (loss_->classifies()) len += std::snprintf(line + len, sizeof line - len, " acc %.2f%%", 100 * val.accuracy);
    }
    std::snprintf(line + len, sizeof line - len, " | %.1f s", secs);
    print(line);
    JsonRecord rec;
    rec.add("event", std::string("epoch")).add("epoch", epoch + 1).add("step", session_.step());
    rec.add("train_loss", result_.train.loss);
    if (loss_->classifies()) rec.add("train_accuracy", result_.train.accuracy);
    if (!splits_.validation.empty()) {
      rec.add("val_loss", val.loss);
      if (loss_->classifies()) rec.add("val_accuracy", val.accuracy);
    }
    rec.add("lr", schedule_->lr(session_.step())).add("epoch_s", secs);
    session_.log(rec);
    if (stop)
      print("early stopping: no improvement for " + std::to_string(config_.early_stopping.patience) + " epochs");
  }
  stopped_early_ = stop;
}

void Trainer::end_round() {
  const SelfTrainingConfig& st = config_.self_training;
  const int64_t round = self_training_->round(), step = session_.step();
  if (st.pseudo_labels) {
    RoundReport rep = self_training_->finish_round(*model_, reader_options_, comm_, *session_.coordination().client(),
                                                   config_.coordinator.checkpoint_timeout_s);
    if (logs()) {
      char line[256];
      std::snprintf(line, sizeof line, "round %lld/%lld: %lld pseudo-labels added (%lld in all, %lld unlabelled left)",
                    static_cast<long long>(round + 1), static_cast<long long>(st.rounds),
                    static_cast<long long>(rep.added), static_cast<long long>(rep.total_pseudo),
                    static_cast<long long>(rep.remaining));
      std::string text = line;
      if (rep.pseudo_accuracy >= 0) {
        std::snprintf(line, sizeof line, ", %.2f%% of them right by /y", 100 * rep.pseudo_accuracy);
        text += line;
      }
      if (!splits_.validation.empty()) {
        std::snprintf(line, sizeof line, " | validation acc %.2f%%", 100 * result_.validation.accuracy);
        text += line;
      }
      print(text);
      JsonRecord rec;
      rec.add("event", std::string("round")).add("round", round + 1).add("step", step).add("added", rep.added);
      rec.add("pseudo_labels", rep.total_pseudo).add("unlabeled_left", rep.remaining);
      if (rep.pseudo_accuracy >= 0) rec.add("pseudo_accuracy", rep.pseudo_accuracy);
      if (!splits_.validation.empty()) rec.add("val_accuracy", result_.validation.accuracy);
      session_.log(rec);
    }
  } else {
    self_training_->skip_round();
  }
  // The next round reads labelled + pseudo-labelled rows from a fresh epoch.
  const ReaderCursor c = training_cursor();
  round_start_epoch_ = c.step_in_epoch ? c.epoch + 1 : c.epoch;
  round_start_step_ = step;
  if (reports_per_round()) std::fill(std::begin(epoch_sums_), std::end(epoch_sums_), 0.0);
  if (st.reinitialize) {
    session_.coordination().before_update();
    model_->initialize(config_.seed);
    optimizer_ = std::make_unique<Optimizer>(config_.optim, model_->flat_size(), model_->device());
  }
  make_training_reader({round_start_epoch_, 0});
  begin_round();
}

EvalResult Trainer::reduce_stats(const float* stats_host) {
  double sums[num_loss_stats];
  for (int i = 0; i < num_loss_stats; ++i) sums[i] = stats_host[i];
  comm_.set_operation("metrics all-reduce", session_.step());
  comm_.allreduce_sum(sums, num_loss_stats);
  return EvalResult::from_sums(sums, loss_->classifies());
}

void Trainer::log_interval(int64_t epoch, int64_t step_in_epoch) {
  float host[num_loss_stats];
  copy_memory(host, Device::cpu, stats_.data(), stats_.device(), sizeof host);
  stats_.fill(0.0f);
  double sums[num_loss_stats];
  for (int i = 0; i < num_loss_stats; ++i) sums[i] = host[i];
  const int64_t step = session_.step();
  comm_.set_operation("metrics all-reduce", step);
  comm_.allreduce_sum(sums, num_loss_stats);
  for (int i = 0; i < num_loss_stats; ++i) epoch_sums_[i] += sums[i];
  auto now = std::chrono::steady_clock::now();
  double dt = std::chrono::duration<double>(now - interval_start_).count();
  double samples_per_s = dt > 0 ? sums[stat_count] / dt : 0.0;
  const double since_start = session_.seconds_running();
  interval_start_ = now;
  session_.set_samples_per_s(samples_per_s);
  if (auto* client = session_.coordination().client(); client && comm_.rank() == 0)
    client->report_metrics(step, epoch + 1, sums[stat_loss] / std::max(1.0, sums[stat_count]),
                           sums[stat_correct] / std::max(1.0, sums[stat_count]), samples_per_s,
                           schedule_->lr(step - 1), session_.cpu_planner().summary());
  if (!logs()) return;
  const int64_t spe = reader_->steps_per_epoch();
  // Where the run stands: step `at` of the period shown, and the steps still to go in the run.
  int64_t at = step_in_epoch, period = spe, left = config_.train.epochs * spe - step;
  if (self_training_) {
    // Later rounds read more rows when a round is counted in epochs: an estimate from this round.
    const SelfTrainingConfig& st = config_.self_training;
    const int64_t round_steps = st.steps_per_round ? st.steps_per_round : config_.train.epochs * spe;
    const int64_t done_in_round = step - round_start_step_;
    left = round_steps - done_in_round + (st.rounds - self_training_->round() - 1) * round_steps;
    if (st.steps_per_round) at = done_in_round, period = round_steps;
  }
  if (config_.train.max_steps > 0) left = std::min(left, config_.train.max_steps - step);
  const double n = std::max(1.0, sums[stat_count]);
  const int64_t done = session_.steps_this_run();
  const double eta =
      done > 0 ? since_start / static_cast<double>(done) * static_cast<double>(std::max<int64_t>(left, 0)) : -1.0;
  session_.progress().update(epoch_label(epoch), at, period, sums[stat_loss] / n, sums[stat_correct] / n, loss_->classifies(),
                    samples_per_s, eta);
  session_.log(JsonRecord()
                  .add("event", std::string("step"))
                  .add("step", step)
                  .add("epoch", epoch + 1)
                  .add("loss", sums[stat_loss] / n)
                  .add("accuracy", sums[stat_correct] / n)
                  .add("lr", schedule_->lr(step - 1))
                  .add("samples_per_s", samples_per_s)
                  .add("time_s", since_start));
}

EvalResult Trainer::evaluate(const DataSplit& split) {
  EvalResult none;
  if (split.empty()) return none;
  ShardedReader reader(split.file, split.rows, session_.evaluation_reader_options(scaler_));
  DeviceBatchStager* stager = session_.stager();
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
    const Batch& b = stager ? stager->stage(reader.next(), target_width) : reader.next();
    const Tensor* x = &b.x;
    if (stager) stager->ready();
    StepContext ctx{.mode = Mode::eval,
                    .seed = config_.seed,
                    .step = static_cast<uint64_t>(session_.step()),
                    .row0 = b.row0,
                    .parameter_gradients = false,
                    .loss_stats = stats.data()};
    const Tensor& out = model_->forward(*x, ctx);
    loss_->evaluate(out, targets_for(*loss_, b, *x), 1.0f, nullptr, stats.data());
  }
  float host[num_loss_stats];
  copy_memory(host, Device::cpu, stats.data(), stats.device(), sizeof host);
  return reduce_stats(host);
}

TrainResult Trainer::run() {
  result_.requeue = !session_.run(*this);
  result_.steps = session_.step();
  return result_;
}

void Trainer::finish() {
  TrainResult& result = result_;
  result.steps = session_.step();
  session_.coordination().before_update();
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
      session_.log(JsonRecord()
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
