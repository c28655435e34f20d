#include "trainer/tasks/SelfTrainingTask.h"

#include <cstdio>
#include <filesystem>
#include <limits>

#include "storage/checkpoint/StateFields.h"
#include "trainer/tasks/DistillTask.h"

namespace dptrain {

namespace {

// Dropout masks and other per-sample draws of unlabelled rows are keyed apart from labelled ones.
constexpr int64_t unlabeled_row_offset = int64_t{1} << 40;

// Two files (self_training.unlabeled) become one with a /labeled mask, which everything
// downstream understands.
TrainConfig with_merged_data(TrainConfig config, Communicator& comm) {
  if (config.self_training.unlabeled.empty()) return config;
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

// Entropy minimization's unlabelled stream, declared once (StateFields.h).
struct UnlabeledFields {
  ReaderCursor cursor;
  std::vector<float> entropy_sums;

  template <class Fields>
  void fields(Fields& f) {
    cursor.fields(f, "unlabeled_cursor_");
    f("metrics_entropy", entropy_sums);
  }
};

}  // namespace

SelfTrainingTask::SelfTrainingTask(const TrainConfig& config, const ConfigNode& root, Communicator& comm)
    : Trainer(with_merged_data(config, comm), root, comm, Deferred{}) {
  const SelfTrainingConfig& st = config_.self_training;
  rounds_ = std::make_unique<SelfTraining>(st, splits_.train, splits_.unlabeled, task_.num_classes);
  if (st.entropy_weight > 0.0) {
    ReaderOptions uo = reader_options_;
    uo.global_batch = st.entropy_batch_size ? st.entropy_batch_size : config_.train.batch_size;
    uo.accumulate = 1;  // the entropy pass takes its whole batch once per step (docs/training-methods.md)
    uo.seed = config_.seed ^ 0x5e1f7a11ull;  // its own permutations
    uo.drop_last = false;
    unlabeled_reader_ = std::make_unique<ShardedReader>(splits_.unlabeled.file, splits_.unlabeled.rows, uo);
    entropy_loss_ = std::make_unique<Loss>(LossKind::prediction_entropy);
    entropy_stats_ = Tensor::zeros({num_loss_stats}, session_.device());
  }
  start();
}

void SelfTrainingTask::round_rows(std::vector<int64_t>& rows, ReaderOptions& ro) const {
  rows = rounds_->training_rows();
  ro.labels = rounds_->labels();
  if (rounds_->config().soft) {
    ro.soft_targets = rounds_->soft_targets();
    ro.soft_target_dim = task_.num_classes;
  }
}

int64_t SelfTrainingTask::planned_steps(int64_t steps_per_epoch) const {
  // An estimate: later rounds read more rows.
  const SelfTrainingConfig& st = rounds_->config();
  return st.rounds * (st.steps_per_round ? st.steps_per_round : config_.train.epochs * steps_per_epoch);
}

void SelfTrainingTask::round_bounds(int64_t& epoch_end, int64_t& step_end) const {
  const SelfTrainingConfig& st = rounds_->config();
  epoch_end = st.steps_per_round ? std::numeric_limits<int64_t>::max() : round_start_epoch_ + config_.train.epochs;
  step_end = st.steps_per_round ? round_start_step_ + st.steps_per_round : std::numeric_limits<int64_t>::max();
}

std::string SelfTrainingTask::epoch_label(int64_t epoch) const {
  const std::string round =
      "round " + std::to_string(rounds_->round() + 1) + "/" + std::to_string(rounds_->config().rounds);
  if (rounds_->config().steps_per_round) return round;
  return round + " epoch " + std::to_string(epoch - round_start_epoch_ + 1) + "/" +
         std::to_string(config_.train.epochs);
}

void SelfTrainingTask::progress_position(int64_t step, int64_t step_in_epoch, int64_t& at, int64_t& period,
                                         int64_t& left) const {
  // Later rounds read more rows when a round is counted in epochs: an estimate from this round.
  const SelfTrainingConfig& st = rounds_->config();
  const int64_t spe = reader_->steps_per_epoch();
  const int64_t round_steps = st.steps_per_round ? st.steps_per_round : config_.train.epochs * spe;
  const int64_t done_in_round = step - round_start_step_;
  at = step_in_epoch, period = spe;
  left = round_steps - done_in_round + (st.rounds - rounds_->round() - 1) * round_steps;
  if (st.steps_per_round) at = done_in_round, period = round_steps;
}

void SelfTrainingTask::add_second_pass(const Batch& batch, const StepContext& ctx) {
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
  const double weight =
      rounds_->config().entropy_weight * static_cast<double>(batch.global_rows) / static_cast<double>(u.global_rows);
  entropy_loss_->evaluate(uout, {}, static_cast<float>(weight), &entropy_dout_, entropy_stats_.data());
  model_->backward(entropy_dout_, uctx);
}

void SelfTrainingTask::next_round() {
  const SelfTrainingConfig& st = rounds_->config();
  const int64_t round = rounds_->round(), step = session_.step();
  if (st.pseudo_labels) {
    RoundReport rep = rounds_->finish_round(*model_, reader_options_, comm_, *session_.coordination().client(),
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
    rounds_->skip_round();
  }
  // The next round reads labelled + pseudo-labelled rows from a fresh epoch.
  const ReaderCursor c = training_cursor();
  round_start_epoch_ = c.step_in_epoch ? c.epoch + 1 : c.epoch;
  round_start_step_ = step;
  if (reports_per_round()) std::fill(std::begin(epoch_sums_), std::end(epoch_sums_), 0.0);
  if (st.reinitialize) reinitialize();
  make_training_reader({round_start_epoch_, 0});
  begin_round();
}

void SelfTrainingTask::save_more(CheckpointState& s) const {
  rounds_->save(s);
  if (unlabeled_reader_) {
    UnlabeledFields u{unlabeled_reader_->cursor(), to_host(entropy_stats_)};
    save_fields(s, u);
  }
}

void SelfTrainingTask::restore_more(const CheckpointState& s) {
  rounds_->restore(s);
  if (!unlabeled_reader_) return;
  if (!s.has_integer("unlabeled_cursor_epoch")) fail_input(s.source + ": has no cursor for the unlabelled rows");
  UnlabeledFields u;
  restore_fields(s, u);
  unlabeled_reader_->seek(u.cursor);
  if (static_cast<int64_t>(u.entropy_sums.size()) == entropy_stats_.numel()) from_host(entropy_stats_, u.entropy_sums);
}

std::unique_ptr<Trainer> make_trainer(const TrainConfig& config, const ConfigNode& root, Communicator& comm) {
  if (config.task == "self_training") return std::make_unique<SelfTrainingTask>(config, root, comm);
  if (config.task == "distill") return std::make_unique<DistillTask>(config, root, comm);
  return std::make_unique<Trainer>(config, root, comm);
}

}  // namespace dptrain
