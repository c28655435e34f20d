// The trainer's side of checkpoints: what a training state consists of (docs/design.md
// "Checkpoints") and how it is applied on resume. Every piece that influences later steps is
// saved — parameters, buffers, optimizer states and step count, learning-rate schedule and
// early-stopping state (with the best parameters), the data cursor, the generator keys (seed and
// step: draws are counter-based), normalization statistics, and the partial metric sums — so a
// resumed run ends bitwise identical to one never interrupted.
#include <cstdio>
#include <filesystem>

#include "models/core/Error.h"
#include "models/core/Hash.h"
#include "storage/checkpoint/StateFields.h"
#include "trainer/Trainer.h"

namespace dptrain {

namespace {

// A supervised run's saved values besides its flat buffers, declared once (StateFields.h).
struct SupervisedFields {
  ReaderCursor cursor;
  uint64_t seed = 0;  // the generator keys: draws are counter-based, keyed by (seed, step, row)
  int64_t optimizer_steps = 0;
  LrSchedule::State schedule;
  EarlyStopping::State early;
  bool stopped_early = false;
  double epoch_sums[num_loss_stats] = {};
  std::vector<float> interval_sums;
  int64_t round_start_epoch = 0, round_start_step = 0;

  template <class Fields>
  void fields(Fields& f) {
    f("cursor_epoch", cursor.epoch);
    f("cursor_step", cursor.step_in_epoch);
    f("generator_seed", seed);
    f("optimizer_steps", optimizer_steps);
    f("schedule_plateau_scale", schedule.plateau_scale);
    f("schedule_best", schedule.best);
    f("schedule_bad_epochs", schedule.bad_epochs);
    f("schedule_has_best", schedule.has_best);
    f("early_best", early.best);
    f("early_best_epoch", early.best_epoch);
    f("early_bad_epochs", early.bad_epochs);
    f("stopped_early", stopped_early);
    f("metrics_epoch", epoch_sums);
    f("metrics_interval", interval_sums);
    f("round_start_epoch", round_start_epoch);
    f("round_start_step", round_start_step);
  }
};

// Entropy minimization's unlabelled stream.
struct UnlabeledFields {
  ReaderCursor cursor;
  std::vector<float> entropy_sums;

  template <class Fields>
  void fields(Fields& f) {
    f("unlabeled_cursor_epoch", cursor.epoch);
    f("unlabeled_cursor_step", cursor.step_in_epoch);
    f("metrics_entropy", entropy_sums);
  }
};

// data.normalize: checked on resume against the statistics of the data the run trains on.
struct NormalizationFields {
  std::vector<float> mean, std;

  template <class Fields>
  void fields(Fields& f) {
    f("normalization_mean", mean);
    f("normalization_std", std);
  }
};

}  // namespace

std::vector<FlatSpec> Trainer::flat_specs() const {
  const Model& m = *model_;
  std::vector<FlatSpec> specs{{"params", m.param_infos(), m.flat_size(), true}};
  if (!m.buffer_infos().empty()) specs.push_back({"buffers", m.buffer_infos(), m.buffers().numel(), true});
  // Optional here so that a checkpoint of another optimizer gets restore()'s clearer message.
  for (const auto& [name, tensor] : optimizer_->states())
    specs.push_back({"optimizer/" + name, m.param_infos(), m.flat_size(), false});
  specs.push_back({"early_stopping/best", m.param_infos(), m.flat_size(), false});
  return specs;
}

CheckpointState Trainer::checkpoint_state(bool with_data) {
  CheckpointState s;
  s.config_text = config_.text;
  s.config_hash = stable_hash(config_.text);
  s.layout_hash = model_->layout_hash();
  s.step = step_;
  s.world_size = comm_.size();
  const auto& layout = model_->param_infos();
  // With data: full host copies. Without: sizes only; the coordinator client copies each rank's
  // share straight from flat_pointers().
  auto flat = [&](const std::string& group, const std::vector<ParamInfo>& l, const Tensor& t) {
    if (with_data)
      s.flats.push_back({group, l, to_host(t), t.numel()});
    else
      s.flats.push_back({group, l, {}, t.numel()});
  };
  flat("params", layout, model_->params());
  if (!model_->buffer_infos().empty()) flat("buffers", model_->buffer_infos(), model_->buffers());
  for (const auto& [name, tensor] : optimizer_->states()) flat("optimizer/" + name, layout, *tensor);
  if (!early_->best_params().empty()) flat("early_stopping/best", layout, early_->best_params());

  SupervisedFields v{training_cursor(), config_.seed, optimizer_->steps(), schedule_->state(), early_->state(),
                     stopped_early_};
  std::copy(std::begin(epoch_sums_), std::end(epoch_sums_), v.epoch_sums);
  v.interval_sums = to_host(stats_);
  v.round_start_epoch = round_start_epoch_;
  v.round_start_step = round_start_step_;
  save_fields(s, v);
  if (self_training_) self_training_->save(s);
  if (unlabeled_reader_) {
    UnlabeledFields u{unlabeled_reader_->cursor(), to_host(entropy_stats_)};
    save_fields(s, u);
  }
  cpu_planner_->save(s);
  if (!scaler_.empty()) {
    NormalizationFields n{scaler_.mean, scaler_.std};
    save_fields(s, n);
  }
  return s;
}

void Trainer::restore(const CheckpointState& s) {
  const std::string& src = s.source;
  if (s.layout_hash != model_->layout_hash())
    fail_input(src + ": saved from a different model (layer layout differs from the config's [model])");
  SupervisedFields v;
  restore_fields(s, v);
  if (v.seed != config_.seed)
    fail_input(src + ": saved with seed " + std::to_string(static_cast<int64_t>(v.seed)) + ", the config has seed " +
               std::to_string(static_cast<int64_t>(config_.seed)));
  if (s.config_hash != stable_hash(config_.text))
    print("note: the config differs from the one " + src + " was saved with; continuing with the new one");
  if (!scaler_.empty() || s.has_float_array("normalization_mean")) {
    NormalizationFields n;
    if (s.has_float_array("normalization_mean")) restore_fields(s, n);
    if (n.mean != scaler_.mean || n.std != scaler_.std)
      fail_input(src +
                 ": normalization statistics differ from the training data's (did the data or "
                 "data.normalize change?)");
  }
  from_host(model_->params(), s.flat("params").data);
  if (!model_->buffer_infos().empty()) from_host(model_->buffers(), s.flat("buffers").data);
  for (auto& [name, tensor] : optimizer_->states()) {
    if (!s.has_flat("optimizer/" + name))
      fail_input(src + ": has no optimizer/" + name + " state: it was saved with another optimizer");
    from_host(*tensor, s.flat("optimizer/" + name).data);
  }
  if (s.has_flat("early_stopping/best")) {
    Tensor& best = early_->best_params();
    best.resize(model_->params().shape(), model_->device());
    from_host(best, s.flat("early_stopping/best").data);
  }
  optimizer_->set_steps(v.optimizer_steps);
  schedule_->set_state(v.schedule);
  early_->set_state(v.early);
  std::copy(std::begin(v.epoch_sums), std::end(v.epoch_sums), epoch_sums_);
  if (static_cast<int64_t>(v.interval_sums.size()) == stats_.numel()) from_host(stats_, v.interval_sums);
  stopped_early_ = v.stopped_early;
  cpu_planner_->restore(s);
  step_ = s.step;
  last_checkpoint_step_ = s.step;
  if (self_training_) {
    self_training_->restore(s);  // the round's pseudo-labels: the reader's rows depend on them
    round_start_epoch_ = v.round_start_epoch;
    round_start_step_ = v.round_start_step;
  }
  const ReaderCursor c = v.cursor;
  make_training_reader({0, 0});
  // Within a round (the whole run, without self-training) step = epochs done * steps per epoch + step in epoch.
  const int64_t spe = reader_->steps_per_epoch();
  if (c.epoch < round_start_epoch_ || c.step_in_epoch < 0 || c.step_in_epoch >= spe ||
      (c.epoch - round_start_epoch_) * spe + c.step_in_epoch != step_ - round_start_step_)
    fail_input(src + ": its data cursor (epoch " + std::to_string(c.epoch) + ", step " +
               std::to_string(c.step_in_epoch) + ") does not fit this data and batch size (" + std::to_string(spe) +
               " steps per epoch)");
  reader_->seek(c);
  staged_ahead_ = nullptr;
  if (unlabeled_reader_) {
    if (!s.has_integer("unlabeled_cursor_epoch")) fail_input(src + ": has no cursor for the unlabelled rows");
    UnlabeledFields u;
    restore_fields(s, u);
    unlabeled_reader_->seek(u.cursor);
    if (entropy_stats_.numel() > 1 && static_cast<int64_t>(u.entropy_sums.size()) == entropy_stats_.numel())
      from_host(entropy_stats_, u.entropy_sums);
  }
}

void Trainer::resume(const std::string& spec) {
  // Rank 0 picks the checkpoint, so every rank loads the same file even if a newer one appears.
  std::string path = coordination_->choose_checkpoint(spec);
  if (path.empty()) {
    print("no checkpoint in " + config_.checkpoint.dir + ": starting from scratch");
    return;
  }
  CheckpointState meta = read_checkpoint_file(path, {});
  if (meta.layout_hash != model_->layout_hash()) {
    std::string detail;
    try {
      read_checkpoint_file(path, {flat_specs().front()});
    } catch (const Error& e) {
      detail = std::string(": ") + e.what();
    }
    fail_input(path + ": saved from a different model (its layer layout differs from the config's [model])" + detail);
  }
  restore(read_checkpoint_file(path, flat_specs()));
  print("resumed from " + path + " at step " + std::to_string(step_));
}

std::vector<const float*> Trainer::flat_pointers(std::vector<bool>* until_update) {
  // Parameters, optimizer states and the best parameters change only in an optimizer step, at an
  // evaluation after one, or in finish() and a round's re-initialization, each of which calls
  // before_update() first; buffers (batch-norm statistics) change in the next forward.
  std::vector<const float*> p{model_->params().data()};
  std::vector<bool> later{true};
  if (!model_->buffer_infos().empty()) p.push_back(model_->buffers().data()), later.push_back(false);
  for (const auto& [name, tensor] : optimizer_->states()) p.push_back(tensor->data()), later.push_back(true);
  if (!early_->best_params().empty()) p.push_back(early_->best_params().data()), later.push_back(true);
  if (until_update) *until_update = std::move(later);
  return p;
}

void Trainer::maybe_checkpoint(bool force) {
  const CheckpointConfig& c = config_.checkpoint;
  // The every_seconds decision is rank 0's clock, carried to every rank by the control lane.
  bool due = force || checkpoint_due_ || (c.every_steps > 0 && step_ % c.every_steps == 0);
  checkpoint_due_ = false;
  if (!due || step_ == last_checkpoint_step_) return;
  last_checkpoint_step_ = step_;
  last_checkpoint_time_ = std::chrono::steady_clock::now();
  // Every rank hands over its 1/N share and trains on while it streams (a forced checkpoint waits
  // for the write); without a coordinator rank 0 writes alone.
  std::vector<bool> until_update;
  const std::vector<const float*> flats = flat_pointers(&until_update);
  std::string path = coordination_->checkpoint([this](bool with_data) { return checkpoint_state(with_data); }, flats,
                                               model_->device(), force, until_update);
  if (!path.empty() && logs() && config_.train.progress) print("checkpoint " + path);
}

bool Trainer::checkpoint_time_due() const {
  const double every = config_.checkpoint.every_seconds;
  return comm_.rank() == 0 && every > 0 &&
         std::chrono::duration<double>(std::chrono::steady_clock::now() - last_checkpoint_time_).count() >= every;
}

}  // namespace dptrain
