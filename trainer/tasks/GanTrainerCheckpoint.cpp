// The GAN trainer's side of checkpoints: both networks' parameters and buffers and both
// optimizers' states as flat buffers under distinct groups ("generator/params",
// "discriminator/optimizer/adam_m", ...), the alternation state (step, update and skip counters,
// d_steps and g_steps), the data cursor, the generator keys (seed; draws are counter-based) and
// the partial metric sums — so that a resumed run ends bitwise identical to one never interrupted.
#include <filesystem>

#include "models/core/Error.h"
#include "models/core/Hash.h"
#include "storage/checkpoint/StateFields.h"
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
    f("cursor_epoch", cursor.epoch);
    f("cursor_step", cursor.step_in_epoch);
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

std::vector<FlatSpec> GanTrainer::flat_specs() const {
  std::vector<FlatSpec> specs;
  const Model* nets[2] = {g_.get(), d_.get()};
  for (int n : {G, D}) {
    const Model& m = *nets[n];
    const std::string net = net_names[n];
    specs.push_back({net + "/params", m.param_infos(), m.flat_size(), true});
    if (!m.buffer_infos().empty()) specs.push_back({net + "/buffers", m.buffer_infos(), m.buffers().numel(), true});
    // Optional here so that a checkpoint of another optimizer gets restore()'s clearer message.
    for (const auto& [name, tensor] : opt_[n]->states())
      specs.push_back({net + "/optimizer/" + name, m.param_infos(), m.flat_size(), false});
  }
  if (gan_.ema > 0.0) specs.push_back({"generator/weight_average", g_->param_infos(), g_->flat_size(), false});
  return specs;
}

std::vector<const float*> GanTrainer::flat_pointers() {
  std::vector<const float*> p;
  Model* nets[2] = {g_.get(), d_.get()};
  for (int n : {G, D}) {
    p.push_back(nets[n]->params().data());
    if (!nets[n]->buffer_infos().empty()) p.push_back(nets[n]->buffers().data());
    for (const auto& [name, tensor] : opt_[n]->states()) p.push_back(tensor->data());
  }
  if (gan_.ema > 0.0) p.push_back(g_average_.data());
  return p;
}

CheckpointState GanTrainer::checkpoint_state(bool with_data) {
  CheckpointState s;
  s.config_text = config_.text;
  s.config_hash = stable_hash(config_.text);
  s.layout_hash = layout_hash();
  s.step = step_;
  s.world_size = comm_.size();
  // The order matches flat_specs() and flat_pointers(). Without data: sizes only; the coordinator
  // client copies each rank's share straight from flat_pointers().
  auto flat = [&](const std::string& group, const std::vector<ParamInfo>& layout, const Tensor& t) {
    s.flats.push_back({group, layout, with_data ? to_host(t) : std::vector<float>{}, t.numel()});
  };
  Model* nets[2] = {g_.get(), d_.get()};
  for (int n : {G, D}) {
    const std::string net = net_names[n];
    flat(net + "/params", nets[n]->param_infos(), nets[n]->params());
    if (!nets[n]->buffer_infos().empty()) flat(net + "/buffers", nets[n]->buffer_infos(), nets[n]->buffers());
    for (const auto& [name, tensor] : opt_[n]->states())
      flat(net + "/optimizer/" + name, nets[n]->param_infos(), *tensor);
  }
  if (gan_.ema > 0.0) flat("generator/weight_average", g_->param_infos(), g_average_);
  GanFields v;
  v.cursor = reader_->cursor();
  v.seed = config_.seed;
  v.d_steps = gan_.d_steps;
  v.g_steps = gan_.g_steps;
  v.cycle_position = step_ % cycle_;
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
  cpu_planner_->save(s);
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
  Model* nets[2] = {g_.get(), d_.get()};
  for (int n : {G, D}) {
    const std::string net = net_names[n];
    from_host(nets[n]->params(), s.flat(net + "/params").data);
    if (!nets[n]->buffer_infos().empty()) from_host(nets[n]->buffers(), s.flat(net + "/buffers").data);
    for (auto& [name, tensor] : opt_[n]->states()) {
      if (!s.has_flat(net + "/optimizer/" + name))
        fail_input(src + ": has no " + net + "/optimizer/" + name + " state: it was saved with another " + net +
                   " optimizer");
      from_host(*tensor, s.flat(net + "/optimizer/" + name).data);
    }
    if (static_cast<int64_t>(v.interval_sums[n].size()) == stats_[n].numel()) from_host(stats_[n], v.interval_sums[n]);
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
  step_ = s.step;
  last_checkpoint_step_ = s.step;
  cpu_planner_->restore(s);
  const ReaderCursor c = v.cursor;
  const int64_t spe = reader_->steps_per_epoch();
  if (c.epoch < 0 || c.step_in_epoch < 0 || c.step_in_epoch >= spe ||
      c.epoch * spe + c.step_in_epoch != discriminator_steps_before(step_))
    fail_input(src + ": its data cursor (epoch " + std::to_string(c.epoch) + ", step " +
               std::to_string(c.step_in_epoch) + ") does not fit this data and batch size (" + std::to_string(spe) +
               " real batches per epoch) at step " + std::to_string(step_));
  reader_->seek(c);
}

void GanTrainer::resume(const std::string& spec) {
  // Rank 0 picks the checkpoint, so every rank loads the same file even if a newer one appears.
  std::string path = coordination_->choose_checkpoint(spec);
  if (path.empty()) {
    print("no checkpoint in " + config_.checkpoint.dir + ": starting from scratch");
    return;
  }
  CheckpointState meta = read_checkpoint_file(path, {});
  if (meta.layout_hash != layout_hash()) {
    std::string detail;
    try {
      std::vector<FlatSpec> params;
      for (const FlatSpec& f : flat_specs())
        if (f.group.size() > 7 && f.group.compare(f.group.size() - 7, 7, "/params") == 0) params.push_back(f);
      read_checkpoint_file(path, params);
    } catch (const Error& e) {
      detail = std::string(": ") + e.what();
    }
    fail_input(path + ": saved from different networks (their layer layout differs from the config's [gan])" + detail);
  }
  restore(read_checkpoint_file(path, flat_specs()));
  print("resumed from " + path + " at step " + std::to_string(step_) + " (" +
        (discriminator_step(step_) ? "discriminator" : "generator") + " step " +
        std::to_string(step_ % cycle_ + 1 - (discriminator_step(step_) ? 0 : gan_.d_steps)) + " of its phase)");
}

}  // namespace dptrain
