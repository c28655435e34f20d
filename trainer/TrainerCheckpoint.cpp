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
#include "trainer/Trainer.h"

namespace dptrain {

namespace {}  // namespace

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

  ReaderCursor c = training_cursor();
  const LrSchedule::State& ls = schedule_->state();
  const EarlyStopping::State& es = early_->state();
  s.scalars = {{"cursor_epoch", static_cast<double>(c.epoch)},
               {"cursor_step", static_cast<double>(c.step_in_epoch)},
               {"generator_seed", static_cast<double>(config_.seed)},
               {"optimizer_steps", static_cast<double>(optimizer_->steps())},
               {"schedule_plateau_scale", ls.plateau_scale},
               {"schedule_best", ls.best},
               {"schedule_bad_epochs", static_cast<double>(ls.bad_epochs)},
               {"schedule_has_best", ls.has_best ? 1.0 : 0.0},
               {"early_best", es.best},
               {"early_best_epoch", static_cast<double>(es.best_epoch)},
               {"early_bad_epochs", static_cast<double>(es.bad_epochs)},
               {"stopped_early", stopped_early_ ? 1.0 : 0.0}};
  for (int i = 0; i < num_loss_stats; ++i) s.scalars.emplace_back("metrics_epoch_" + std::to_string(i), epoch_sums_[i]);
  s.floats.emplace_back("metrics_interval", to_host(stats_));
  s.scalars.emplace_back("round_start_epoch", static_cast<double>(round_start_epoch_));
  s.scalars.emplace_back("round_start_step", static_cast<double>(round_start_step_));
  if (self_training_) self_training_->save(s);
  if (unlabeled_reader_) {
    ReaderCursor u = unlabeled_reader_->cursor();
    s.scalars.emplace_back("unlabeled_cursor_epoch", static_cast<double>(u.epoch));
    s.scalars.emplace_back("unlabeled_cursor_step", static_cast<double>(u.step_in_epoch));
    s.floats.emplace_back("metrics_entropy", to_host(entropy_stats_));
  }
  cpu_planner_->save(s);
  if (!scaler_.empty()) {
    s.floats.emplace_back("normalization_mean", scaler_.mean);
    s.floats.emplace_back("normalization_std", scaler_.std);
  }
  return s;
}

void Trainer::restore(const CheckpointState& s) {
  const std::string& src = s.source;
  if (s.layout_hash != model_->layout_hash())
    fail_input(src + ": saved from a different model (layer layout differs from the config's [model])");
  if (static_cast<uint64_t>(s.scalar("generator_seed")) != config_.seed)
    fail_input(src + ": saved with seed " + std::to_string(static_cast<uint64_t>(s.scalar("generator_seed"))) +
               ", the config has seed " + std::to_string(config_.seed));
  if (s.config_hash != stable_hash(config_.text))
    print("note: the config differs from the one " + src + " was saved with; continuing with the new one");
  if (!scaler_.empty() || s.has_float_array("normalization_mean")) {
    if (!s.has_float_array("normalization_mean") || s.float_array("normalization_mean") != scaler_.mean ||
        s.float_array("normalization_std") != scaler_.std)
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
  optimizer_->set_steps(static_cast<int64_t>(s.scalar("optimizer_steps")));
  schedule_->set_state({s.scalar("schedule_plateau_scale"), s.scalar("schedule_best"),
                        static_cast<int64_t>(s.scalar("schedule_bad_epochs")), s.scalar("schedule_has_best") != 0.0});
  early_->set_state({s.scalar("early_best"), static_cast<int64_t>(s.scalar("early_best_epoch")),
                     static_cast<int64_t>(s.scalar("early_bad_epochs"))});
  for (int i = 0; i < num_loss_stats; ++i) epoch_sums_[i] = s.scalar("metrics_epoch_" + std::to_string(i));
  if (s.has_float_array("metrics_interval") &&
      static_cast<int64_t>(s.float_array("metrics_interval").size()) == stats_.numel())
    from_host(stats_, s.float_array("metrics_interval"));
  stopped_early_ = s.scalar("stopped_early") != 0.0;
  cpu_planner_->restore(s);
  step_ = s.step;
  last_checkpoint_step_ = s.step;
  if (self_training_) {
    self_training_->restore(s);  // the round's pseudo-labels: the reader's rows depend on them
    round_start_epoch_ = static_cast<int64_t>(s.scalar("round_start_epoch"));
    round_start_step_ = static_cast<int64_t>(s.scalar("round_start_step"));
  }
  ReaderCursor c{static_cast<int64_t>(s.scalar("cursor_epoch")), static_cast<int64_t>(s.scalar("cursor_step"))};
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
    if (!s.has_scalar("unlabeled_cursor_epoch")) fail_input(src + ": has no cursor for the unlabelled rows");
    unlabeled_reader_->seek({static_cast<int64_t>(s.scalar("unlabeled_cursor_epoch")),
                             static_cast<int64_t>(s.scalar("unlabeled_cursor_step"))});
  }
  if (entropy_stats_.numel() > 1 && s.has_float_array("metrics_entropy"))
    from_host(entropy_stats_, s.float_array("metrics_entropy"));
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
