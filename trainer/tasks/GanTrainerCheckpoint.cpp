// The GAN trainer's side of checkpoints: both networks' parameters and buffers and both
// optimizers' states as flat buffers under distinct groups ("generator/params",
// "discriminator/optimizer/adam_m", ...), the alternation state (step, update and skip counters,
// d_steps and g_steps), the data cursor, the generator keys (seed; draws are counter-based) and
// the partial metric sums — so that a resumed run ends bitwise identical to one never interrupted.
#include <filesystem>

#include "models/core/Error.h"
#include "models/core/Hash.h"
#include "storage/checkpoint/StateFields.h"
#include "trainer/NetworkFlats.h"
#include "trainer/tasks/GanTrainer.h"

namespace dptrain {

namespace {

const char* const net_names[2] = {"generator", "discriminator"};

// A GAN run's saved values besides its flat buffers, declared once (StateFields.h); [G] is the
// generator's, [D] the discriminator's.
struct GanFields {
  ReaderCursor cursor;
  uint64_t seed = 0;  // the generator keys: latent draws are keyed by (seed, step, row)
  int64_t d_steps = 0, g_steps = 0, cycle_position = 0;
  int64_t updates[2] = {0, 0}, optimizer_steps[2] = {0, 0};
  int64_t d_skipped = 0, interval_skipped = 0;
  double last_loss[2] = {0.0, 0.0};
  double epoch_sums[2][num_loss_stats] = {};
  std::vector<float> interval_sums[2];
  std::string task = "gan", loss;

  template <class Fields>
  void fields(Fields& f) {
    cursor.fields(f, "cursor_");
    f("generator_seed", seed);
    f("gan_d_steps", d_steps);
    f("gan_g_steps", g_steps);
    f("gan_cycle_position", cycle_position);
    f("gan_d_updates", updates[1]);
    f("gan_g_updates", updates[0]);
    f("gan_d_skipped", d_skipped);
    f("gan_interval_skipped", interval_skipped);
    f("last_d_loss", last_loss[1]);
    f("last_g_loss", last_loss[0]);
    for (int n : {0, 1}) {
      const std::string net = net_names[n];
      f(net + "_optimizer_steps", optimizer_steps[n]);
      f(net + "_metrics_epoch", epoch_sums[n]);
      f(net + "_metrics_interval", interval_sums[n]);
    }
    f("task", task);
    f("gan_loss", loss);
  }
};

}  // namespace

NetworkFlats GanTrainer::network_flats(int n) const {
  return {std::string(net_names[n]) + "/", n == G ? *g_ : *d_, *opt_[n]};
}

std::vector<FlatSpec> GanTrainer::flat_specs() const {
  std::vector<FlatSpec> specs;
  for (int n : {G, D}) network_flats(n).add_specs(specs);
  if (gan_.ema > 0.0) specs.push_back({"generator/weight_average", g_->param_infos(), g_->flat_size(), false});
  return specs;
}

std::vector<FlatSpec> GanTrainer::parameter_specs() const {
  std::vector<FlatSpec> params;
  for (const FlatSpec& f : flat_specs())
    if (f.group.size() > 7 && f.group.compare(f.group.size() - 7, 7, "/params") == 0) params.push_back(f);
  return params;
}

std::vector<const float*> GanTrainer::flat_pointers(std::vector<bool>* until_update) {
  std::vector<const float*> p;
  std::vector<bool> later;
  // Copied before the step goes on: the GAN's updates do not wait for a staged copy.
  for (int n : {G, D}) network_flats(n).add_pointers(p, later, false);
  if (gan_.ema > 0.0) p.push_back(g_average_.data()), later.push_back(false);
  if (until_update) *until_update = std::move(later);
  return p;
}

CheckpointState GanTrainer::checkpoint_state(bool with_data) {
  CheckpointState s;
  s.config_text = config_.text;
  s.config_hash = stable_hash(config_.text);
  s.layout_hash = layout_hash();
  s.step = session_.step();
  s.world_size = comm_.size();
  // The order matches flat_specs() and flat_pointers().
  for (int n : {G, D}) network_flats(n).save(s, with_data);
  if (gan_.ema > 0.0) add_flat(s, "generator/weight_average", g_->param_infos(), g_average_, with_data);
  GanFields v;
  v.cursor = reader_->cursor();
  v.seed = config_.seed;
  v.d_steps = gan_.d_steps;
  v.g_steps = gan_.g_steps;
  v.cycle_position = session_.step() % cycle_;
  v.d_skipped = d_skipped_;
  v.interval_skipped = interval_skipped_;
  v.loss = GanLoss::name(gan_.loss);
  for (int n : {G, D}) {
    v.updates[n] = updates_[n];
    v.optimizer_steps[n] = opt_[n]->steps();
    v.last_loss[n] = last_loss_[n];
    std::copy(std::begin(epoch_sums_[n]), std::end(epoch_sums_[n]), v.epoch_sums[n]);
    v.interval_sums[n] = to_host(stats_[n]);
  }
  save_fields(s, v);
  session_.cpu_planner().save(s);
  return s;
}

void GanTrainer::restore(const CheckpointState& s) {
  const std::string& src = s.source;
  if (!s.has_integer("gan_d_steps"))
    fail_input(src + ": is not a GAN checkpoint (it has no alternation state); task = \"gan\" needs one");
  GanFields v;
  restore_fields(s, v);
  if (v.seed != config_.seed)
    fail_input(src + ": saved with seed " + std::to_string(static_cast<int64_t>(v.seed)) + ", the config has seed " +
               std::to_string(static_cast<int64_t>(config_.seed)));
  if (v.d_steps != gan_.d_steps || v.g_steps != gan_.g_steps)
    fail_input(src + ": saved with gan.d_steps = " + std::to_string(v.d_steps) +
               ", gan.g_steps = " + std::to_string(v.g_steps) + "; the config has " + std::to_string(gan_.d_steps) +
               " and " + std::to_string(gan_.g_steps) + " (the alternation would not continue where it stopped)");
  if (s.config_hash != stable_hash(config_.text))
    print("note: the config differs from the one " + src + " was saved with; continuing with the new one");
  for (int n : {G, D}) {
    network_flats(n).restore(s);
    v.interval_sums[n].resize(static_cast<size_t>(stats_[n].numel()), 0.0f);  // saved before they grew: 0
    from_host(stats_[n], v.interval_sums[n]);
    std::copy(std::begin(v.epoch_sums[n]), std::end(v.epoch_sums[n]), epoch_sums_[n]);
    opt_[n]->set_steps(v.optimizer_steps[n]);
    updates_[n] = v.updates[n];
    last_loss_[n] = v.last_loss[n];
  }
  if (gan_.ema > 0.0) {
    if (!s.has_flat("generator/weight_average"))
      fail_input(src + ": has no generator/weight_average: it was saved without gan.ema, which the config sets");
    from_host(g_average_, s.flat("generator/weight_average").data);
  }
  d_skipped_ = v.d_skipped;
  interval_skipped_ = v.interval_skipped;
  session_.restored_at(s.step);
  session_.cpu_planner().restore(s);
  const ReaderCursor c = v.cursor;
  const int64_t spe = reader_->steps_per_epoch();
  if (c.epoch < 0 || c.step_in_epoch < 0 || c.step_in_epoch >= spe ||
      c.epoch * spe + c.step_in_epoch != discriminator_steps_before(s.step))
    fail_input(src + ": its data cursor (epoch " + std::to_string(c.epoch) + ", step " +
               std::to_string(c.step_in_epoch) + ") does not fit this data and batch size (" + std::to_string(spe) +
               " real batches per epoch) at step " + std::to_string(s.step));
  reader_->seek(c);
}

std::string GanTrainer::resume_detail() const {
  const int64_t step = session_.step();
  const bool d = discriminator_step(step);
  return " (" + std::string(d ? "discriminator" : "generator") + " step " +
         std::to_string(step % cycle_ + 1 - (d ? 0 : gan_.d_steps)) + " of its phase)";
}

}  // namespace dptrain
