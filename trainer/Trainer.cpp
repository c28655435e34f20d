#include "trainer/Trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include <nlohmann/json.hpp>

#include "models/core/Error.h"
#include "models/core/Hash.h"
#include "models/layers/Sequential.h"
#include "models/zoo/PriorSampler.h"
#include "storage/checkpoint/ModelFile.h"
#include "storage/image/PngWriter.h"
#include "trainer/CommCrossRankSum.h"
#include "trainer/TestHooks.h"

namespace dptrain {

namespace {

// Reconstruction losses (autoencoders, VAE) compare the output with the input itself.
// Soft pseudo-labels (self-training) come as target distributions and replace the class ids.
Targets targets_for(const Loss& loss, const Batch& b, const Tensor& x) {
  if (loss.reconstruction()) return {nullptr, x.data()};
  if (b.targets && b.labels && loss.kind() == LossKind::softmax_cross_entropy) return {nullptr, b.targets};
  return {b.labels, b.targets, b.label_width};
}

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

}  // namespace

Trainer::Trainer(const TrainConfig& config, const ConfigNode& root, Communicator& comm)
    : Trainer(config, root, comm, Deferred{}) {
  if (config_.task != "supervised") fail_internal("task " + config_.task + " is built by make_trainer()");
  if (!splits_.unlabeled.empty())
    print("note: " + std::to_string(splits_.unlabeled.rows.size()) +
          " training rows are marked unlabelled (/labeled = 0)"
          " and not used; task = \"self_training\" uses them");
  start();
}

Trainer::Trainer(const TrainConfig& config, const ConfigNode& root, Communicator& comm, Deferred)
    : session_(config, comm), config_(session_.config()), comm_(comm) {
  splits_ = make_splits(config_.data);
  const DatasetFile& train = *splits_.train.file;
  task_.classification = train.label_kind() == LabelKind::classes;
  task_.num_classes = train.num_classes();
  task_.target_dim = std::max<int64_t>(1, train.target_dim());
  task_.label_width = train.label_width();
  if (config_.data.normalize) scaler_ = FeatureScaler::fit(train, splits_.train.rows);

  ZooModel zoo = build_model(root.child("model"), task_, train.sample_shape());
  const Device device = session_.device();
  model_ = std::make_unique<Model>(std::move(zoo.root), train.sample_shape(), device, zoo.freeze);
  init_from_ = zoo.init_from;
  initialize_parameters();
  loss_ = std::make_unique<Loss>(zoo.loss, 1.0f, zoo.reconstruct);
  samples_ = zoo.samples;
  root.check_unused();

  reader_options_ = session_.training_reader_options(train.sample_shape(), scaler_);
  model_kind_ = zoo.kind;
}

void Trainer::training_loss(const Batch& batch, const Tensor& x, const Tensor& out, Tensor& dout, float* stats) {
  loss_->evaluate(out, targets_for(*loss_, batch, x), 1.0f, &dout, stats);
}

void Trainer::start() {
  const Device device = session_.device();
  const DatasetFile& train = *splits_.train.file;
  if (config_.adversarial.enabled()) {
    if (!loss_->classifies() || loss_->reconstruction() || task_.label_width > 1)
      fail_input("config: [adversarial] attacks a classifier of one label per row; this model's loss is " +
                 Loss::name(loss_->kind()) + (task_.label_width > 1 ? " over per-step labels" : ""));
    adversary_ = std::make_unique<Adversary>(config_.adversarial, config_.seed);
  }
  make_training_reader({0, 0});

  optimizer_ = std::make_unique<Optimizer>(config_.optim, model_->trainable_ranges(), device);
  const int64_t spe = reader_->steps_per_epoch();
  int64_t total = planned_steps(spe);
  if (config_.train.max_steps > 0) total = std::min(total, config_.train.max_steps);
  schedule_ = std::make_unique<LrSchedule>(config_.schedule, config_.optim.lr, total, spe);
  early_ = std::make_unique<EarlyStopping>(config_.early_stopping);
  if (config_.early_stopping.enabled && splits_.validation.empty())
    fail_input("config: early_stopping needs validation data ([data] validation or validation_fraction)");
  if (config_.schedule.kind == ScheduleKind::plateau && splits_.validation.empty())
    fail_input("config: schedule kind = \"plateau\" needs validation data");

  session_.agree_on_start(model_->layout_hash(), model_->parameter_count(), {model_.get()});

  std::vector<GradientReducer::Bucket> trainable;  // frozen layers' gradients are not sent
  for (const FlatRange& r : model_->trainable_ranges()) trainable.push_back({r.begin, r.end});
  reducer_ = std::make_unique<GradientReducer>(comm_, model_->grads().data(), trainable,
                                               static_cast<int64_t>(config_.comm.bucket_mb * 1024 * 1024));
  on_ready_ = [this](int64_t offset) { reducer_->ready_from(offset); };
  if (comm_.size() > 1) cross_rank_ = std::make_unique<CommCrossRankSum>(comm_);
  stats_ = Tensor::zeros({num_loss_stats}, device);
  stats_before_ = Tensor::zeros({num_loss_stats}, device);
  if (config_.cuda_graphs) {
    std::string why;
    if (device != Device::cuda)
      why = "the model runs on the CPU";
    else if (!cuda_graphs_supported())
      why = "this GPU or driver cannot capture graphs";
    else if (comm_.size() > 1)
      why = "with several ranks the all-reduce runs between backward and the optimizer";
    else if (config_.train.accumulate > 1)
      why = "train.accumulate runs several micro-batches per step";
    else if (adversary_)
      why = "adversarial training attacks each batch before its step";
    else if (second_pass())
      why = "the task adds a second pass to each step (entropy minimization)";
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
  if (!config_.train.trace.empty()) timer_.keep_trace(trace_events);

  if (logs()) {
    print("dptrain: " + model_kind_ + " model, " + with_commas(model_->parameter_count()) + " parameters | " +
          train.path() + ": " + std::to_string(splits_.train.rows.size()) + " train / " +
          std::to_string(splits_.validation.rows.size()) + " validation / " + std::to_string(splits_.test.rows.size()) +
          " test rows | global batch " + std::to_string(config_.train.batch_size) + " on " +
          std::to_string(comm_.size()) + " rank" + (comm_.size() > 1 ? "s" : "") + " (" + comm_.backend() + ", " +
          device_name(device) + ") | " + std::to_string(spe) + " steps/epoch");
    if (auto* seq = dynamic_cast<Sequential*>(&model_->root()))
      for (const auto& line : seq->summary()) print("  " + line);
    if (const int64_t frozen = model_->frozen_parameter_count()) {
      const std::string layers = layer_list(model_->param_infos(), [](const ParamInfo& p) { return p.frozen; });
      int64_t sent = 0;
      for (const auto& b : reducer_->buckets()) sent += b.end - b.begin;
      print("frozen: " + with_commas(frozen) + " of " + with_commas(model_->parameter_count()) + " parameters (" +
            layers + "); the all-reduce sends " + with_commas(sent) + " of " + with_commas(model_->flat_size()) +
            " floats a step");
    }
  }
  begin_round();
}

Trainer::~Trainer() { session_.close(); }

bool Trainer::schedule_over() const {
  return last_round() || stopped_early_ || (config_.train.max_steps > 0 && session_.step() >= config_.train.max_steps);
}

void Trainer::initialize_parameters() {
  model_->initialize(config_.seed);
  if (init_from_.empty()) return;
  InitFromReport r;
  try {
    r = init_from_model_file(init_from_, *model_);
  } catch (const Error& e) {
    throw Error(e.kind(), "model.init_from: " + std::string(e.what()));
  }
  if (r.loaded == 0)
    fail_input("model.init_from = \"" + init_from_ + "\": none of its parameters has a path and shape of this model (" +
               std::to_string(r.kept.size()) + " parameters, e.g. " + (r.kept.empty() ? "none" : r.kept.front()) + ")");
  if (init_reported_ || !logs()) return;
  init_reported_ = true;
  std::string line = "init_from " + init_from_ + ": " + std::to_string(r.loaded) + " of " +
                     std::to_string(model_->param_infos().size()) + " parameters loaded (" +
                     with_commas(r.loaded_values) + " values)";
  if (!r.kept.empty()) {
    line += "; initialized from the seed: ";
    for (size_t i = 0; i < r.kept.size(); ++i) line += (i ? ", " : "") + r.kept[i];
  }
  if (!r.unused.empty()) line += "; " + std::to_string(r.unused.size()) + " file parameters unused";
  print(line);
  for (const std::string& kept : r.kept)  // a frozen parameter the file did not set stays at its random start
    for (const ParamInfo& p : model_->param_infos())
      if (p.frozen && kept.rfind(p.path + " ", 0) == 0)
        print("note: model.freeze: " + p.path +
              " is frozen but was not loaded from model.init_from: it keeps its "
              "random initial values");
}

void Trainer::reinitialize() {
  session_.coordination().before_update();
  initialize_parameters();
  optimizer_ = std::make_unique<Optimizer>(config_.optim, model_->trainable_ranges(), model_->device());
  graph_warm_ = false;  // a captured step holds the old optimizer's state buffers
  for (auto& g : graphs_)
    if (g) g->reset();
}

std::string Trainer::epoch_label(int64_t epoch) const {
  return "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(config_.train.epochs);
}

int64_t Trainer::planned_steps(int64_t steps_per_epoch) const { return config_.train.epochs * steps_per_epoch; }

void Trainer::round_bounds(int64_t& epoch_end, int64_t& step_end) const {
  epoch_end = config_.train.epochs;
  step_end = config_.train.epochs * reader_->steps_per_epoch();
}

void Trainer::progress_position(int64_t step, int64_t step_in_epoch, int64_t& at, int64_t& period,
                                int64_t& left) const {
  at = step_in_epoch, period = reader_->steps_per_epoch();
  left = config_.train.epochs * period - step;
}

void Trainer::make_training_reader(const ReaderCursor& cursor) {
  ReaderOptions ro = reader_options_;
  std::vector<int64_t> rows = splits_.train.rows;
  round_rows(rows, ro);
  reader_.reset();
  staged_ahead_ = nullptr;
  target_width_ = ro.soft_targets ? ro.soft_target_dim : std::max<int64_t>(1, splits_.train.file->target_dim());
  reader_ = std::make_unique<ShardedReader>(splits_.train.file, std::move(rows), ro);
  if (cursor.epoch || cursor.step_in_epoch) reader_->seek(cursor);
}

void Trainer::begin_round() {
  round_bounds(epoch_end_, step_end_);
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

  StepContext ctx{.mode = Mode::train,
                  .seed = config_.seed,
                  .step = static_cast<uint64_t>(step),
                  .cross_rank = cross_rank_.get(),
                  .loss_stats = stats_.data()};  // auxiliary losses (a VAE's KL term) report with the main loss
  session_.begin_step(*reducer_);
  step_compute(ctx);
  return true;
}

const Batch& Trainer::micro_batch(int64_t m) {
  const Batch& batch = next_training_batch();  // on a GPU already in device memory
  if (DeviceBatchStager* stager = session_.stager()) {
    stager->ready();  // this micro-batch's kernels wait, on the device, for its copy
    // The next micro-batch of this step, or the next step's first in this period, is copied
    // while they run.
    const bool more = m + 1 < config_.train.accumulate ||
                      (position_.step_in_epoch + 1 < reader_->steps_per_epoch() && session_.step() + 1 < step_end_);
    if (more) {
      ahead_cursor_ = reader_->cursor();
      staged_ahead_ = &stager->stage(reader_->next(), target_width_);
    }
  }
  return batch;
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

void Trainer::step_compute(StepContext& ctx) {
  timer_.begin(session_.step());
  const Batch* batch = &micro_batch(0);
  timer_.mark(StepTimer::data);
  interval_rows_ += batch->global_rows;
  const uint64_t key = graph_key(*batch);
  const float lr = static_cast<float>(schedule_->lr(session_.step()));
  if (key && graph_warm_) {
    // One launch for the whole step. On one rank the reducer has nothing to do, and the optimizer's
    // host-side step counter only advances while a graph is captured, so it is set here.
    const Batch& b = *batch;
    ctx.row0 = b.row0;
    const float scale = mean_gradient_scale(model_->grads(), b.global_rows * b.label_width, 0.0);
    const int64_t steps = optimizer_->steps();
    CudaGraph& graph = *graphs_[b.x.data() == graph_x_[0] ? 0 : 1];
    session_.coordination().before_update();
    const int captures = graph.captures();
    graph.run(key, [&] {
      model_->zero_grad();
      const Tensor& out = model_->forward(b.x, ctx);
      training_loss(b, b.x, out, dout_, stats_.data());
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
    graph_x_[batch->x.data() == graph_x_[0] || !graph_x_[0] ? 0 : 1] = batch->x.data();
    graph_warm_ = true;  // this eager step makes every allocation the captured ones will use
  }
  // The global batch as train.accumulate micro-batches: their gradients add up in the flat buffer
  // (layers accumulate), and only the last one's backward starts the all-reduce. With entropy
  // minimization the gradients are final after the second pass, which runs once per step.
  const int64_t micro_batches = config_.train.accumulate;
  if (config_.train.nonfinite == "skip")  // a skipped step's losses leave the logged sums
    copy_memory(stats_before_.data(), stats_.device(), stats_.data(), stats_.device(), stats_.numel() * sizeof(float));
  model_->zero_grad();
  for (int64_t m = 0;;) {
    ctx.row0 = batch->row0;  // its position in the global batch keys per-sample draws
    ctx.on_gradients_ready = m + 1 == micro_batches && !second_pass() ? &on_ready_ : nullptr;
    if (batch->micro_rows > 0) {  // a last partial batch may leave micro-batches empty on every rank
      // Adversarial training: a share of the rows replaced by attacks on the current parameters.
      const Tensor& x =
          adversary_ ? adversary_->perturb(*model_, *loss_, batch->x, targets_for(*loss_, *batch, batch->x), ctx.step,
                                           batch->row0, static_cast<float>(config_.adversarial.fraction))
                     : batch->x;
      const Tensor& out = model_->forward(x, ctx);
      training_loss(*batch, x, out, dout_, stats_.data());
      TestHooks::get().poison_gradient(comm_.rank(), ctx.step, dout_.data(), dout_.device());
      model_->backward(dout_, ctx);
    }
    if (++m == micro_batches) break;
    timer_.mark(StepTimer::compute);
    batch = &micro_batch(m);
    timer_.mark(StepTimer::data);
  }
  if (second_pass()) add_second_pass(*batch, ctx);
  TestHooks::get().in_compute(comm_.rank());
  timer_.mark(StepTimer::compute);
  session_.end_step(*reducer_);
  timer_.mark(StepTimer::allreduce);
  // The summed gradient is the same on every rank, so all decide alike here, without a message.
  // "skip" must look before the update (one more read of the gradient; clipping reads it anyway);
  // "stop" looks in the update's own pass: the job ends at such a step, saving nothing of it.
  const bool skip = config_.train.nonfinite == "skip";
  const bool pre_check = skip || (config_.train.nonfinite == "stop" && config_.optim.clip_norm > 0.0);
  const double sum_squares =
      pre_check || config_.optim.clip_norm > 0.0 ? optimizer_->gradient_sum_squares(model_->grads()) : 0.0;
  if (pre_check && !std::isfinite(sum_squares)) return nonfinite_step();  // throws, or skips the update
  const float scale =
      optimizer_->gradient_scale(sum_squares, batch->global_rows * batch->label_width, config_.optim.clip_norm);
  session_.coordination().before_update();  // a checkpoint of the last step may still be copying them
  const bool in_pass = config_.train.nonfinite == "stop" && !pre_check;
  if (!optimizer_->step(model_->params(), model_->grads(), lr, scale, in_pass)) nonfinite_step();  // throws
  timer_.mark(StepTimer::optimizer);
}

void Trainer::nonfinite_step() {
  // Where it went wrong: the first parameter (in layer order) whose summed gradient holds a NaN
  // or an infinity. Only on this rare path are the gradients read on the host (the optimizer
  // does not change them).
  const Tensor& grads = model_->grads();
  std::vector<float> host(static_cast<size_t>(grads.numel()));
  copy_memory(host.data(), Device::cpu, grads.data(), grads.device(), host.size() * sizeof(float));
  std::string where = "a parameter";
  for (const ParamInfo& p : model_->param_infos()) {
    const float* g = host.data() + p.offset;
    if (!std::all_of(g, g + p.shape.numel(), [](float v) { return std::isfinite(v); })) {
      where = p.path;
      break;
    }
  }
  const std::string step = std::to_string(session_.step() + 1);  // numbered as checkpoints and logs count
  if (config_.train.nonfinite == "stop")
    throw Error(ErrorKind::diverged,
                "step " + step + ": the summed gradient is not finite (first in " + where +
                    "); stopped at this step, saving nothing of it (the last checkpoint is the latest good one). "
                    "Lower optim.lr, set optim.clip_norm, or set train.nonfinite = \"skip\"");
  ++skipped_steps_;
  copy_memory(stats_.data(), stats_.device(), stats_before_.data(), stats_.device(), stats_.numel() * sizeof(float));
  print("step " + step + ": the summed gradient is not finite (first in " + where + "); step skipped (" +
        std::to_string(skipped_steps_) + " so far)");
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
  if (schedule_over())
    done_ = true;
  else
    next_round();
}

void Trainer::end_period(int64_t epoch) {
  result_.train = EvalResult::from_sums(epoch_sums_, loss_->classifies());
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
      if (task_.label_width > 1)  // a language model's figure: the mean cross-entropy in bits per token
        len += std::snprintf(line + len, sizeof line - len, " (%.3f bits/token)", val.loss / std::log(2.0));
      if (loss_->classifies()) len += std::snprintf(line + len, sizeof line - len, " acc %.2f%%", 100 * val.accuracy);
      if (top5_reported()) len += std::snprintf(line + len, sizeof line - len, " top-5 %.2f%%", 100 * val.top5);
    }
    std::snprintf(line + len, sizeof line - len, " | %.1f s", secs);
    print(line);
    JsonRecord rec;
    rec.add("event", std::string("epoch")).add("epoch", epoch + 1).add("step", session_.step());
    rec.add("train_loss", result_.train.loss);
    if (loss_->classifies()) rec.add("train_accuracy", result_.train.accuracy);
    if (top5_reported()) rec.add("train_top5_accuracy", result_.train.top5);
    if (!splits_.validation.empty()) {
      rec.add("val_loss", val.loss);
      if (task_.label_width > 1) rec.add("val_bits_per_token", val.loss / std::log(2.0));
      if (loss_->classifies()) rec.add("val_accuracy", val.accuracy);
      if (top5_reported()) rec.add("val_top5_accuracy", val.top5);
    }
    rec.add("lr", schedule_->lr(session_.step())).add("epoch_s", secs);
    session_.log(rec);
    if (stop)
      print("early stopping: no improvement for " + std::to_string(config_.early_stopping.patience) + " epochs");
  }
  stopped_early_ = stop;
}

namespace {
// A rank's seconds per step spent other than waiting for the all-reduce (which a straggler's peers
// spend waiting for it), from the all-reduced phases of every rank.
double busy_seconds(const double* phases, int rank) {
  const double* p = phases + rank * StepTimer::num_phases;
  return p[StepTimer::data] + p[StepTimer::compute] + p[StepTimer::optimizer];
}
}  // namespace

std::string Trainer::timing_record(int64_t step, const double* phases) const {
  nlohmann::json per_rank = nlohmann::json::array();
  for (int r = 0; r < comm_.size(); ++r) {
    nlohmann::json p = nlohmann::json::array();
    for (int i = 0; i < StepTimer::num_phases; ++i) p.push_back(1e3 * phases[r * StepTimer::num_phases + i]);
    per_rank.push_back(std::move(p));
  }
  nlohmann::json stragglers = nlohmann::json::array();
  for (int r = 0; r < comm_.size(); ++r)
    if (slow_intervals_.size() > static_cast<size_t>(r) &&
        slow_intervals_[static_cast<size_t>(r)] >= straggler_intervals)
      stragglers.push_back(r);
  return nlohmann::json{{"event", "timing"}, {"step", step}, {"phases_ms", per_rank}, {"stragglers", stragglers}}
      .dump();
}

void Trainer::watch_stragglers(const double* phases) {
  const int world = comm_.size();
  stragglers_.clear();
  if (world < 2) return;
  slow_intervals_.resize(static_cast<size_t>(world), 0);
  std::vector<double> busy(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r) busy[static_cast<size_t>(r)] = busy_seconds(phases, r);
  std::vector<double> sorted = busy;
  std::sort(sorted.begin(), sorted.end());
  const double median = world % 2 ? sorted[world / 2] : 0.5 * (sorted[world / 2 - 1] + sorted[world / 2]);
  for (int r = 0; r < world; ++r) {
    int& slow = slow_intervals_[static_cast<size_t>(r)];
    const double b = busy[static_cast<size_t>(r)];
    if (b > straggler_factor * median && b - median > 1e-3) {
      if (++slow == straggler_intervals && logs()) {
        char line[200];
        std::snprintf(line, sizeof line, "straggler: rank %d is busy %.1f ms a step against the ranks' median %.1f ms",
                      r, 1e3 * b, 1e3 * median);
        print(line);
      }
    } else {
      if (slow >= straggler_intervals && logs()) print("straggler: rank " + std::to_string(r) + " keeps up again");
      slow = 0;
    }
    if (slow >= straggler_intervals) stragglers_ += (stragglers_.empty() ? "" : ",") + std::to_string(r);
  }
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
  // One all-reduce: the loss statistics, then every rank's step phases (each rank fills its own).
  const int world = comm_.size(), phases = StepTimer::num_phases;
  interval_sums_.assign(static_cast<size_t>(num_loss_stats + world * phases), 0.0);
  double* sums = interval_sums_.data();
  for (int i = 0; i < num_loss_stats; ++i) sums[i] = host[i];
  double phase_s[StepTimer::num_phases];
  int64_t timed_steps = 0;
  timer_.take(phase_s, timed_steps);
  for (int p = 0; p < phases; ++p)
    sums[num_loss_stats + comm_.rank() * phases + p] = timed_steps ? phase_s[p] / timed_steps : 0.0;
  const int64_t step = session_.step();
  comm_.set_operation("metrics all-reduce", step);
  comm_.allreduce_sum(sums, static_cast<int64_t>(interval_sums_.size()));
  watch_stragglers(sums + num_loss_stats);
  for (int i = 0; i < num_loss_stats; ++i) epoch_sums_[i] += sums[i];
  auto now = std::chrono::steady_clock::now();
  double dt = std::chrono::duration<double>(now - interval_start_).count();
  // Samples, not scored positions: with per-step targets a sample scores label_width tokens.
  double samples_per_s = dt > 0 ? static_cast<double>(interval_rows_) / dt : 0.0;
  const double tokens_per_s = dt > 0 ? sums[stat_count] / dt : 0.0;
  const double since_start = session_.seconds_running();
  interval_start_ = now;
  interval_rows_ = 0;
  session_.set_samples_per_s(samples_per_s);
  if (auto* client = session_.coordination().client(); client && comm_.rank() == 0 && comm_.size() > 1)
    client->report_record(timing_record(step, sums + num_loss_stats));
  if (auto* client = session_.coordination().client(); client && comm_.rank() == 0)
    client->report_metrics(step, epoch + 1, sums[stat_loss] / std::max(1.0, sums[stat_count]),
                           sums[stat_correct] / std::max(1.0, sums[stat_count]), samples_per_s, schedule_->lr(step - 1),
                           session_.cpu_planner().summary());
  if (!logs()) return;
  // Where the run stands: step `at` of the period shown, and the steps still to go in the run.
  int64_t at = 0, period = 0, left = 0;
  progress_position(step, step_in_epoch, at, period, left);
  if (config_.train.max_steps > 0) left = std::min(left, config_.train.max_steps - step);
  const double n = std::max(1.0, sums[stat_count]);
  const int64_t done = session_.steps_this_run();
  const double eta =
      done > 0 ? since_start / static_cast<double>(done) * static_cast<double>(std::max<int64_t>(left, 0)) : -1.0;
  session_.progress().update(epoch_label(epoch), at, period, sums[stat_loss] / n, sums[stat_correct] / n,
                             loss_->classifies(), samples_per_s, eta);
  JsonRecord record;
  record.add("event", std::string("step"))
      .add("step", step)
      .add("epoch", epoch + 1)
      .add("loss", sums[stat_loss] / n)
      .add("accuracy", sums[stat_correct] / n)
      .add("lr", schedule_->lr(step - 1))
      .add("samples_per_s", samples_per_s);
  if (task_.label_width > 1) record.add("tokens_per_s", tokens_per_s);  // scored positions (padding left out)
  if (config_.train.nonfinite == "skip") record.add("skipped_steps", skipped_steps_);
  // This rank's phases per step (ms); the slowest rank's busy time (all but the all-reduce wait).
  const double* mine = sums + num_loss_stats + comm_.rank() * StepTimer::num_phases;
  for (int p = 0; p < StepTimer::num_phases; ++p)
    record.add(std::string(StepTimer::name(static_cast<StepTimer::Phase>(p))) + "_ms", 1e3 * mine[p]);
  if (comm_.size() > 1) {
    int slowest = 0;
    for (int r = 1; r < comm_.size(); ++r)
      if (busy_seconds(sums + num_loss_stats, r) > busy_seconds(sums + num_loss_stats, slowest)) slowest = r;
    record.add("slowest_rank", int64_t{slowest})
        .add("slowest_busy_ms", 1e3 * busy_seconds(sums + num_loss_stats, slowest))
        .add("stragglers", stragglers_);
  }
  session_.log(record.add("time_s", since_start));
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
  if (!config_.train.trace.empty()) {  // every rank's phases gathered into one file by rank 0
    timer_.write_trace(comm_, config_.train.trace);
    if (logs()) print("trace of the step phases written to " + config_.train.trace);
  }
  session_.coordination().before_update();
  if (early_->restore(model_->params()) && logs())
    print("restored the parameters of epoch " + std::to_string(early_->state().best_epoch) + " (best " +
          config_.early_stopping.metric + ")");

  if (!splits_.test.empty()) {
    result.test = evaluate(splits_.test);
    if (logs()) {
      char line[160];
      if (loss_->classifies() && top5_reported())
        std::snprintf(line, sizeof line, "test accuracy: %.2f%%, top-5 %.2f%% (loss %.4f, %lld rows)",
                      100 * result.test.accuracy, 100 * result.test.top5, result.test.loss,
                      static_cast<long long>(result.test.count));
      else if (loss_->classifies())
        std::snprintf(line, sizeof line, "test accuracy: %.2f%% (loss %.4f, %lld rows)", 100 * result.test.accuracy,
                      result.test.loss, static_cast<long long>(result.test.count));
      else
        std::snprintf(line, sizeof line, "test %s: %.6f (%lld rows)",
                      loss_->kind() == LossKind::mean_squared_error ? "mse" : "loss", result.test.loss,
                      static_cast<long long>(result.test.count));
      print(line);
      JsonRecord rec;
      rec.add("event", std::string("test")).add("loss", result.test.loss).add("accuracy", result.test.accuracy);
      if (top5_reported()) rec.add("top5_accuracy", result.test.top5);
      session_.log(rec.add("rows", result.test.count));
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
