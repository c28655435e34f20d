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
#include "trainer/NetworkFlats.h"
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
  int64_t skipped_steps = 0;  // train.nonfinite = "skip"
  double epoch_sums[num_loss_stats] = {};
  std::vector<float> interval_sums;
  int64_t round_start_epoch = 0, round_start_step = 0;

  template <class Fields>
  void fields(Fields& f) {
    cursor.fields(f, "cursor_");
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
    f("skipped_steps", skipped_steps);
    f("metrics_epoch", epoch_sums);
    f("metrics_interval", interval_sums);
    f("round_start_epoch", round_start_epoch);
    f("round_start_step", round_start_step);
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

NetworkFlats Trainer::network_flats() const { return {"", *model_, *optimizer_}; }

std::vector<FlatSpec> Trainer::flat_specs() const {
  std::vector<FlatSpec> specs;
  network_flats().add_specs(specs);
  specs.push_back({"early_stopping/best", model_->param_infos(), model_->flat_size(), false});
  return specs;
}

CheckpointState Trainer::checkpoint_state(bool with_data) {
  CheckpointState s;
  s.config_text = config_.text;
  s.config_hash = stable_hash(config_.text);
  s.layout_hash = model_->layout_hash();
  s.step = session_.step();
  s.world_size = comm_.size();
  network_flats().save(s, with_data);
  if (!early_->best_params().empty())
    add_flat(s, "early_stopping/best", model_->param_infos(), early_->best_params(), with_data);

  SupervisedFields v;
  v.cursor = training_cursor();
  v.seed = config_.seed;
  v.optimizer_steps = optimizer_->steps();
  v.schedule = schedule_->state();
  v.early = early_->state();
  v.stopped_early = stopped_early_;
  v.skipped_steps = skipped_steps_;
  std::copy(std::begin(epoch_sums_), std::end(epoch_sums_), v.epoch_sums);
  v.interval_sums = to_host(stats_);
  v.round_start_epoch = round_start_epoch_;
  v.round_start_step = round_start_step_;
  save_fields(s, v);
  save_more(s);
  session_.cpu_planner().save(s);
  if (!scaler_.empty()) {
    NormalizationFields n{scaler_.mean, scaler_.std};
    save_fields(s, n);
  }
  return s;
}

void Trainer::restore(const CheckpointState& s) {
  const std::string& src = s.source;
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
  network_flats().restore(s);
  if (s.has_flat("early_stopping/best")) {
    Tensor& best = early_->best_params();
    best.resize(model_->params().shape(), model_->device());
    from_host(best, s.flat("early_stopping/best").data);
  }
  optimizer_->set_steps(v.optimizer_steps);
  schedule_->set_state(v.schedule);
  early_->set_state(v.early);
  std::copy(std::begin(v.epoch_sums), std::end(v.epoch_sums), epoch_sums_);
  v.interval_sums.resize(static_cast<size_t>(stats_.numel()), 0.0f);  // saved before the statistics grew: 0
  from_host(stats_, v.interval_sums);
  stopped_early_ = v.stopped_early;
  skipped_steps_ = v.skipped_steps;
  session_.cpu_planner().restore(s);
  session_.restored_at(s.step);
  round_start_epoch_ = v.round_start_epoch;
  round_start_step_ = v.round_start_step;
  restore_more(s);  // a round's pseudo-labels: the reader's rows depend on them
  const ReaderCursor c = v.cursor;
  make_training_reader({0, 0});
  // Within a round (the whole run, without self-training) step = epochs done * steps per epoch + step in epoch.
  const int64_t spe = reader_->steps_per_epoch();
  if (c.epoch < round_start_epoch_ || c.step_in_epoch < 0 || c.step_in_epoch >= spe ||
      (c.epoch - round_start_epoch_) * spe + c.step_in_epoch != s.step - round_start_step_)
    fail_input(src + ": its data cursor (epoch " + std::to_string(c.epoch) + ", step " +
               std::to_string(c.step_in_epoch) + ") does not fit this data and batch size (" + std::to_string(spe) +
               " steps per epoch)");
  reader_->seek(c);
  staged_ahead_ = nullptr;
  begin_round();
  // A checkpoint taken where a round ended, before the next began (format 1 files can hold one):
  // start the next round now, as the uninterrupted run did.
  if (done_ && !schedule_over()) next_round();
}

std::vector<const float*> Trainer::flat_pointers(std::vector<bool>* until_update) {
  // Parameters, optimizer states and the best parameters change only in an optimizer step, at an
  // evaluation after one, or in finish() and a round's re-initialization, each of which calls
  // before_update() first; buffers (batch-norm statistics) change in the next forward.
  std::vector<const float*> p;
  std::vector<bool> later;
  network_flats().add_pointers(p, later, true);
  if (!early_->best_params().empty()) p.push_back(early_->best_params().data()), later.push_back(true);
  if (until_update) *until_update = std::move(later);
  return p;
}

}  // namespace dptrain
