// The GAN trainer's side of checkpoints: both networks' parameters and buffers and both
// optimizers' states as flat buffers under distinct groups ("generator/params",
// "discriminator/optimizer/adam_m", ...), the alternation state (step, update and skip counters,
// d_steps and g_steps), the data cursor, the generator keys (seed; draws are counter-based) and
// the partial metric sums — so that a resumed run ends bitwise identical to one never interrupted.
#include <filesystem>

#include "models/core/Error.h"
#include "models/core/Hash.h"
#include "trainer/tasks/GanTrainer.h"

namespace dptrain {

namespace {

const char* const net_names[2] = {"generator", "discriminator"};

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
  const ReaderCursor c = reader_->cursor();
  s.scalars = {{"cursor_epoch", static_cast<double>(c.epoch)},
               {"cursor_step", static_cast<double>(c.step_in_epoch)},
               {"generator_seed", static_cast<double>(config_.seed)},
               {"gan_d_steps", static_cast<double>(gan_.d_steps)},
               {"gan_g_steps", static_cast<double>(gan_.g_steps)},
               {"gan_cycle_position", static_cast<double>(step_ % cycle_)},
               {"gan_d_updates", static_cast<double>(updates_[D])},
               {"gan_g_updates", static_cast<double>(updates_[G])},
               {"gan_d_skipped", static_cast<double>(d_skipped_)},
               {"gan_interval_skipped", static_cast<double>(interval_skipped_)},
               {"generator_optimizer_steps", static_cast<double>(opt_[G]->steps())},
               {"discriminator_optimizer_steps", static_cast<double>(opt_[D]->steps())},
               {"last_d_loss", last_loss_[D]},
               {"last_g_loss", last_loss_[G]}};
  for (int n : {G, D})
    for (int i = 0; i < num_loss_stats; ++i)
      s.scalars.emplace_back(std::string(net_names[n]) + "_metrics_epoch_" + std::to_string(i), epoch_sums_[n][i]);
  s.floats.emplace_back("generator_metrics_interval", to_host(stats_[G]));
  s.floats.emplace_back("discriminator_metrics_interval", to_host(stats_[D]));
  cpu_planner_->save(s);
  s.strings.emplace_back("task", "gan");
  s.strings.emplace_back("gan_loss", GanLoss::name(gan_.loss));
  return s;
}

void GanTrainer::restore(const CheckpointState& s) {
  const std::string& src = s.source;
  if (!s.has_scalar("gan_d_steps"))
    fail_input(src + ": is not a GAN checkpoint (it has no alternation state); task = \"gan\" needs one");
  if (static_cast<uint64_t>(s.scalar("generator_seed")) != config_.seed)
    fail_input(src + ": saved with seed " + std::to_string(static_cast<uint64_t>(s.scalar("generator_seed"))) +
               ", the config has seed " + std::to_string(config_.seed));
  const auto saved_d = static_cast<int64_t>(s.scalar("gan_d_steps")),
             saved_g = static_cast<int64_t>(s.scalar("gan_g_steps"));
  if (saved_d != gan_.d_steps || saved_g != gan_.g_steps)
    fail_input(src + ": saved with gan.d_steps = " + std::to_string(saved_d) +
               ", gan.g_steps = " + std::to_string(saved_g) + "; the config has " + std::to_string(gan_.d_steps) +
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
    if (s.has_float_array(net + "_metrics_interval") &&
        static_cast<int64_t>(s.float_array(net + "_metrics_interval").size()) == stats_[n].numel())
      from_host(stats_[n], s.float_array(net + "_metrics_interval"));
    for (int i = 0; i < num_loss_stats; ++i) epoch_sums_[n][i] = s.scalar(net + "_metrics_epoch_" + std::to_string(i));
  }
  if (gan_.ema > 0.0) {
    if (!s.has_flat("generator/weight_average"))
      fail_input(src + ": has no generator/weight_average: it was saved without gan.ema, which the config sets");
    from_host(g_average_, s.flat("generator/weight_average").data);
  }
  opt_[G]->set_steps(static_cast<int64_t>(s.scalar("generator_optimizer_steps")));
  opt_[D]->set_steps(static_cast<int64_t>(s.scalar("discriminator_optimizer_steps")));
  updates_[G] = static_cast<int64_t>(s.scalar("gan_g_updates"));
  updates_[D] = static_cast<int64_t>(s.scalar("gan_d_updates"));
  d_skipped_ = static_cast<int64_t>(s.scalar("gan_d_skipped"));
  interval_skipped_ = static_cast<int64_t>(s.scalar("gan_interval_skipped"));
  last_loss_[D] = s.scalar("last_d_loss");
  last_loss_[G] = s.scalar("last_g_loss");
  step_ = s.step;
  last_checkpoint_step_ = s.step;
  cpu_planner_->restore(s);
  ReaderCursor c{static_cast<int64_t>(s.scalar("cursor_epoch")), static_cast<int64_t>(s.scalar("cursor_step"))};
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
