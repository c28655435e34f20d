#include "trainer/tasks/GanTrainer.h"

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "models/core/Error.h"
#include "models/core/Hash.h"
#include "models/kernels/cpu/CpuKernels.h"
#include "models/layers/MinibatchStddev.h"
#include "models/layers/Sequential.h"
#include "storage/checkpoint/ModelFile.h"
#include "trainer/CommCrossRankSum.h"
#include "trainer/StopRequest.h"
#include "trainer/TestHooks.h"
#include "trainer/tasks/GanNetworks.h"
#include "trainer/tasks/GanSampling.h"

namespace dptrain {

namespace {

// The discriminator's draws (dropout) use their own seed, so its masks never repeat the
// generator's for the same step and sample.
constexpr uint64_t discriminator_seed_offset = 0x9E3779B97F4A7C15ull;

std::string in_dir(const std::string& dir, const std::string& file) {
  if (file.empty() || file[0] == '/') return file;
  return (std::filesystem::path(dir) / file).string();
}

std::string with_commas(int64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

}  // namespace

GanTrainer::GanTrainer(const TrainConfig& config, const ConfigNode& root, Communicator& comm)
    : config_(config), gan_(read_gan_config(root, config)), comm_(comm), root_(root), loss_(gan_.loss) {
  apply_cpu_settings(config_, comm_);
  if (config_.data.normalize)
    root.child("data").fail("normalize", "task gan learns the data as it is; generated samples would be z-scores");

  splits_ = make_splits(config_.data);
  const DatasetFile& train = *splits_.train.file;
  device_ = choose_training_device(config_, comm_);  // one rank per GPU, as in Trainer
  GanNetworks nets = build_gan_networks(root, gan_, gan_sample_shape(root, train.sample_shape()), device_);
  g_ = std::move(nets.generator);
  d_ = std::move(nets.discriminator);
  g_kind_ = nets.generator_kind;
  d_kind_ = nets.discriminator_kind;
  g_->initialize(config_.seed);
  d_->initialize(config_.seed + discriminator_seed_offset);
  root.check_unused();
  cycle_ = gan_.d_steps + gan_.g_steps;

  ReaderOptions ro;
  ro.global_batch = config_.train.batch_size;
  ro.rank = comm_.rank();
  ro.world = comm_.size();
  ro.seed = config_.seed;
  ro.shuffle = config_.data.shuffle;
  ro.drop_last = config_.train.drop_last;
  ro.prefetch = config_.data.prefetch;
  ro.memory_budget_bytes = config_.data.memory_budget_mb << 20;
  if (config_.data.augment.enabled()) {
    auto augment = std::make_shared<Augmentation>(config_.data.augment, train.sample_shape(), config_.seed);
    ro.transform = [augment](float* x, int64_t rows, int64_t step, int64_t row0) {
      augment->apply(x, rows, step, row0);
    };
  }
  reader_ = std::make_unique<ShardedReader>(splits_.train.file, splits_.train.rows, ro);
  check_pack();

  opt_[G] = std::make_unique<Optimizer>(gan_.optim_g, g_->flat_size(), device_);
  opt_[D] = std::make_unique<Optimizer>(gan_.optim_d, d_->flat_size(), device_);
  // Both rates follow [schedule] over the global step; an "epoch" there is one pass of the
  // discriminator over the real data.
  const int64_t steps_per_epoch = std::max<int64_t>(1, reader_->steps_per_epoch() * cycle_ / gan_.d_steps);
  schedule_[G] = std::make_unique<LrSchedule>(config_.schedule, gan_.optim_g.lr, total_steps(), steps_per_epoch);
  schedule_[D] = std::make_unique<LrSchedule>(config_.schedule, gan_.optim_d.lr, total_steps(), steps_per_epoch);
  agree_on_start();
  if (gan_.ema > 0.0) {
    g_average_ = Tensor::zeros({g_->flat_size()}, device_);
    g_average_.copy_from(g_->params());
  }

  // One reducer per network: each step all-reduces the gradients of the network it updates.
  Model* nets_by_index[2] = {g_.get(), d_.get()};
  for (int n : {G, D}) {
    Model& m = *nets_by_index[n];
    std::vector<int64_t> offsets;
    for (const auto& p : m.param_infos()) offsets.push_back(p.offset);
    reducer_[n] = std::make_unique<GradientReducer>(comm_, m.grads().data(), m.flat_size(), offsets,
                                                    static_cast<int64_t>(config_.comm.bucket_mb * 1024 * 1024));
    on_ready_[n] = [this, n](int64_t offset) { reducer_[n]->ready_from(offset); };
    stats_[n] = Tensor::zeros({num_loss_stats}, device_);
  }
  step_stats_ = Tensor::zeros({num_loss_stats}, device_);
  if (comm_.size() > 1) cross_rank_ = std::make_unique<CommCrossRankSum>(comm_);
  last_checkpoint_time_ = std::chrono::steady_clock::now();
  coordination_ = std::make_unique<JobCoordination>(config_, comm_, [this](const std::string& line) { print(line); });
  cpu_planner_ = std::make_unique<CpuPlanner>(
      comm_, device_ == Device::cpu, [this](const std::string& line) { print(line); },
      comm_.rank() == 0 ? config_.out_dir : "");

  mixture_ = is_gaussian_mixture(train) && g_->output_shape() == train.sample_shape();
  if (mixture_) modes_ = measure_modes(train, splits_.train.rows);

  if (logs()) {
    std::filesystem::create_directories(config_.out_dir);
    log_ = std::make_unique<MetricsLog>(in_dir(config_.out_dir, config_.train.metrics_file));
    char head[640];
    std::snprintf(head, sizeof head,
                  "dptrain gan: %s generator (%s parameters, latent %lld %s) vs %s discriminator (%s parameters) | "
                  "loss %s, %lld discriminator : %lld generator steps | %s: %lld rows | global batch %lld on %d "
                  "rank%s (%s, %s) | %lld real batches/epoch",
                  g_kind_.c_str(), with_commas(g_->parameter_count()).c_str(), static_cast<long long>(gan_.latent),
                  gan_.distribution == LatentDistribution::normal ? "normal" : "uniform", d_kind_.c_str(),
                  with_commas(d_->parameter_count()).c_str(), GanLoss::name(gan_.loss).c_str(),
                  static_cast<long long>(gan_.d_steps), static_cast<long long>(gan_.g_steps), train.path().c_str(),
                  static_cast<long long>(splits_.train.rows.size()), static_cast<long long>(config_.train.batch_size),
                  comm_.size(), comm_.size() > 1 ? "s" : "", comm_.backend().c_str(), device_name(device_),
                  static_cast<long long>(reader_->steps_per_epoch()));
    print(head);
    for (auto [name, model] : {std::pair<const char*, Model*>{"generator", g_.get()}, {"discriminator", d_.get()}})
      if (auto* seq = dynamic_cast<Sequential*>(&model->root()))
        for (const auto& line : seq->summary()) print(std::string("  ") + name + " " + line);
    if (mixture_)
      print("  2-D mixture: " + std::to_string(modes_.count()) + " modes, sigma " + std::to_string(modes_.sigma[0]) +
            " (measured from the labelled training rows)");
  }
}

GanTrainer::~GanTrainer() = default;

void GanTrainer::check_pack() const {
  const int64_t m = gan_.pack, b = config_.train.batch_size;
  // D's minibatch_stddev groups are consecutive rows (packs) of what one rank holds; like the
  // packs, they must not depend on the number of ranks.
  const int64_t group = minibatch_stddev_group(d_->root());
  if (m == 1 && group == 1) return;
  // The global batches a step can see: the full one (real and generated) and, without drop_last,
  // the shorter last batch of an epoch.
  std::vector<int64_t> batches{b};
  const int64_t tail = static_cast<int64_t>(splits_.train.rows.size()) % b;
  if (config_.data.shuffle != Shuffle::shard && !config_.train.drop_last && tail > 0) batches.push_back(tail);
  for (int64_t rows : batches)
    for (int r = 0; r < comm_.size(); ++r) {
      auto [begin, end] = ShardedReader::rank_slice(rows, r, comm_.size());
      const std::string what = rows == b ? "train.batch_size " + std::to_string(b)
                                         : "the last batch of an epoch (" + std::to_string(rows) + " of " +
                                               std::to_string(splits_.train.rows.size()) +
                                               " rows; train.drop_last = true drops it)";
      const std::string gives = " gives rank " + std::to_string(r) + " of " + std::to_string(comm_.size()) + " rows " +
                                std::to_string(begin) + ".." + std::to_string(end - 1);
      if (begin % m != 0 || end % m != 0)
        fail_input("gan.pack = " + std::to_string(m) +
                   " needs every rank's share of the global batch to be whole packs, but " + what + gives +
                   ": choose a train.batch_size that is a multiple of gan.pack times the number of ranks");
      const int64_t unit = m * group;
      if (begin % unit != 0 || end % unit != 0)
        fail_input("group = " + std::to_string(group) + " of the minibatch_stddev layer in gan.discriminator needs " +
                   "every rank's share of the global batch to be whole groups of " + std::to_string(group) +
                   (m > 1 ? " packs (" + std::to_string(unit) + " rows)" : " rows") + ", but " + what + gives +
                   ": choose a train.batch_size that is a multiple of the group" + (m > 1 ? " times gan.pack" : "") +
                   " times the number of ranks, or a group that divides each rank's share");
    }
}

void GanTrainer::agree_on_start() {
  if (comm_.size() == 1) return;
  struct Fingerprint {
    uint64_t config, layout;
    int64_t params, batch;
  };
  Fingerprint mine{config_.hash, layout_hash(), g_->parameter_count() + d_->parameter_count(),
                   config_.train.batch_size};
  std::vector<Fingerprint> all(static_cast<size_t>(comm_.size()));
  comm_.set_operation("start-up check", -1);
  comm_.allgather(&mine, sizeof mine, all.data());
  std::string problems;
  for (int r = 1; r < comm_.size(); ++r) {
    const Fingerprint& f = all[static_cast<size_t>(r)];
    std::string what;
    if (f.config != all[0].config) what += " config text (file or --set overrides)";
    if (f.layout != all[0].layout) what += " network layouts";
    if (!what.empty())
      problems +=
          (problems.empty() ? "" : "; ") + std::string("rank ") + std::to_string(r) + " differs from rank 0 in" + what;
  }
  if (!problems.empty()) fail_input("ranks were started with different configurations: " + problems);
  comm_.set_operation("initial parameter broadcast", -1);
  for (Model* m : {g_.get(), d_.get()}) {
    std::vector<float> host(static_cast<size_t>(m->flat_size()));
    copy_memory(host.data(), Device::cpu, m->params().data(), m->device(), host.size() * sizeof(float));
    comm_.broadcast(host.data(), host.size() * sizeof(float), 0);
    copy_memory(m->params().data(), m->device(), host.data(), Device::cpu, host.size() * sizeof(float));
  }
}

uint64_t GanTrainer::layout_hash() const {
  const uint64_t g = g_->layout_hash(), d = d_->layout_hash();
  return stable_hash(&d, sizeof d, stable_hash(&g, sizeof g, stable_hash("gan")));
}

void GanTrainer::print(const std::string& line) {
  if (!logs()) return;
  std::printf(
      "%s%s\n",
      comm_.size() > 1 && config_.train.all_ranks_log ? ("[rank " + std::to_string(comm_.rank()) + "] ").c_str() : "",
      line.c_str());
  std::fflush(stdout);
}

int64_t GanTrainer::discriminator_steps_before(int64_t step) const {
  return step / cycle_ * gan_.d_steps + std::min(step % cycle_, gan_.d_steps);
}

int64_t GanTrainer::total_steps() const {
  // Enough whole cycles for the discriminator to see `epochs` epochs of real batches.
  const int64_t real_batches = config_.train.epochs * reader_->steps_per_epoch();
  int64_t total = (real_batches + gan_.d_steps - 1) / gan_.d_steps * cycle_;
  if (config_.train.max_steps > 0) total = std::min(total, config_.train.max_steps);
  return total;
}

void GanTrainer::begin_step(GradientReducer& reducer) {
  const float control[GradientReducer::control_lanes] = {stop_.post(step_), checkpoint_time_due() ? 1.0f : 0.0f};
  reducer.begin_step(step_, control);
}

void GanTrainer::end_step(GradientReducer& reducer) {
  reducer.finish();
  stop_.agree(step_, reducer.control(0));
  checkpoint_due_ = checkpoint_due_ || reducer.control(1) > 0.0f;
}

const Tensor& GanTrainer::generate(int64_t global_rows, Mode mode, StepContext& ctx, LatentStream stream) {
  auto [begin, end] = ShardedReader::rank_slice(global_rows, comm_.rank(), comm_.size());
  const int64_t n = end - begin;
  latent_host_.resize(static_cast<size_t>(n * gan_.latent));  // keeps its capacity
  draw_latent(gan_.distribution, config_.seed, stream, static_cast<uint64_t>(ctx.step), begin, n, gan_.latent,
              latent_host_.data());
  latent_.resize(Shape{n, gan_.latent}, device_);
  latent_.copy_from(Tensor::view(latent_host_.data(), Shape{n, gan_.latent}));
  ctx.mode = mode;
  ctx.row0 = begin;
  return g_->forward(latent_, ctx);
}

void GanTrainer::d_step(const Batch& real) {
  KernelBackend& k = kernels(device_);
  Model& d = *d_;
  d.zero_grad();
  begin_step(*reducer_[D]);
  const Tensor* x = &real.x;
  if (device_ != Device::cpu) {
    x_device_.resize(real.x.shape(), device_);
    x_device_.copy_from(real.x);
    x = &x_device_;
  }
  step_stats_.fill(0.0f);
  StepContext dctx{Mode::train,
                   config_.seed + discriminator_seed_offset,
                   static_cast<uint64_t>(step_),
                   real.row0,
                   nullptr,
                   true,
                   cross_rank_.get()};
  // Real rows first, without the reducer: the generated rows' backward adds to the same gradients
  // and starts the all-reduce as D's layers become final.
  dctx.row0 /= gan_.pack;  // D's draws are keyed by packed row
  const Tensor& real_scores = d.forward(packed(*x), dctx);
  loss_.evaluate(GanRole::real, real_scores, 1.0f, &dscore_, step_stats_.data());
  d.backward(dscore_, dctx);

  StepContext gctx{Mode::train, config_.seed, static_cast<uint64_t>(step_), 0, nullptr, false, cross_rank_.get()};
  const Tensor& fake = generate(real.global_rows, Mode::train, gctx);
  dctx.row0 = (real.global_rows + gctx.row0) / gan_.pack;  // generated rows get draws of their own
  const Tensor& fake_scores = d.forward(packed(fake), dctx);
  loss_.evaluate(GanRole::fake, fake_scores, 1.0f, &dscore_, step_stats_.data());

  // The adaptive rule: skip this update when the all-reduced loss says the discriminator is
  // already far ahead; every rank computes the same sum, so all skip together.
  bool skip = false;
  if (gan_.d_skip_below > 0.0) {
    float host[num_loss_stats];
    copy_memory(host, Device::cpu, step_stats_.data(), device_, sizeof host);
    double sums[2] = {host[stat_loss], host[stat_count]};
    comm_.set_operation("discriminator loss all-reduce", step_);
    comm_.allreduce_sum(sums, 2);
    const double loss = sums[0] / std::max(1.0, 0.5 * sums[1]);  // real mean + generated mean (over packs)
    skip = loss < gan_.d_skip_below;
  }
  if (!skip) {
    dctx.on_gradients_ready = &on_ready_[D];
    d.backward(dscore_, dctx);
  }
  end_step(*reducer_[D]);
  k.axpy(num_loss_stats, 1.0f, step_stats_.data(), stats_[D].data());
  if (skip) {
    ++d_skipped_;
    ++interval_skipped_;
    return;
  }
  opt_[D]->step(d.params(), d.grads(), static_cast<float>(schedule_[D]->lr(step_)),
                mean_gradient_scale(d, gan_.optim_d.clip_norm, real.global_rows / gan_.pack));
  if (gan_.clip > 0.0)
    k.clamp(d.flat_size(), -static_cast<float>(gan_.clip), static_cast<float>(gan_.clip), d.params().data());
  ++updates_[D];
}

void GanTrainer::g_step() {
  Model& g = *g_;
  g.zero_grad();
  begin_step(*reducer_[G]);
  const int64_t batch = config_.train.batch_size;
  StepContext gctx{Mode::train, config_.seed, static_cast<uint64_t>(step_), 0, &on_ready_[G], true, cross_rank_.get()};
  const Tensor& fake = generate(batch, Mode::train, gctx);
  // The discriminator only passes the gradient through: its parameters get none in this step.
  StepContext dctx{Mode::train,
                   config_.seed + discriminator_seed_offset,
                   static_cast<uint64_t>(step_),
                   (batch + gctx.row0) / gan_.pack,
                   nullptr,
                   false,
                   cross_rank_.get()};
  const Tensor& scores = d_->forward(packed(fake), dctx);
  loss_.evaluate(GanRole::generator, scores, 1.0f, &dscore_, stats_[G].data());
  d_->backward(dscore_, dctx, &dfake_);
  g.backward(dfake_.reshaped(fake.shape()), gctx);  // d/d(pack) viewed back as d/d(sample)
  end_step(*reducer_[G]);
  opt_[G]->step(g.params(), g.grads(), static_cast<float>(schedule_[G]->lr(step_)),
                mean_gradient_scale(g, gan_.optim_g.clip_norm, batch / gan_.pack));
  ++updates_[G];
  update_weight_average();
}

void GanTrainer::update_weight_average() {
  if (gan_.ema <= 0.0) return;
  KernelBackend& k = kernels(device_);
  const double t = static_cast<double>(updates_[G]);
  const auto decay = static_cast<float>(std::min(gan_.ema, (1.0 + t) / (10.0 + t)));
  k.scale(g_->flat_size(), decay, g_average_.data());
  k.axpy(g_->flat_size(), 1.0f - decay, g_->params().data(), g_average_.data());
}

void GanTrainer::use_weight_average() {
  if (gan_.ema <= 0.0) return;
  kernels(device_).copy(g_->flat_size(), g_average_.data(), g_->params().data());
  // The running statistics belong to the last live weights: measure the average's own, in
  // training-mode forward passes over batches of the calibration stream (synchronized batch norm
  // makes them the same on any number of ranks). The layer's momentum forgets the old values.
  for (int64_t b = 0; b < gan_.ema_calibration_batches; ++b) {
    StepContext ctx{Mode::train, config_.seed, static_cast<uint64_t>(b), 0, nullptr, false, cross_rank_.get()};
    generate(config_.train.batch_size, Mode::train, ctx, LatentStream::calibration);
  }
}

const Tensor& GanTrainer::packed(const Tensor& rows) {
  // Consecutive rows are contiguous, so m of them side by side along the first sample dimension
  // are the same memory: a zero-copy view. It stays alive as D's last input for the backward.
  Shape s = rows.shape();
  DPT_ASSERT(s[0] % gan_.pack == 0,
             "a rank's rows " + s.str() + " are not whole packs of " + std::to_string(gan_.pack));
  s[0] /= gan_.pack;
  s[1] *= gan_.pack;
  d_input_ = rows.reshaped(s);
  return d_input_;
}

float GanTrainer::mean_gradient_scale(Model& m, double clip_norm, int64_t global_rows) const {
  double scale = 1.0 / static_cast<double>(global_rows);
  if (clip_norm > 0.0) {
    const double norm = scale * std::sqrt(kernels(device_).sum_squares(m.flat_size(), m.grads().data()));
    if (norm > clip_norm) scale *= clip_norm / norm;
  }
  return static_cast<float>(scale);
}

void GanTrainer::log_interval(int64_t epoch) {
  double sums[2 * num_loss_stats];
  for (int n : {G, D}) {
    float host[num_loss_stats];
    copy_memory(host, Device::cpu, stats_[n].data(), device_, sizeof host);
    stats_[n].fill(0.0f);
    for (int i = 0; i < num_loss_stats; ++i) sums[n * num_loss_stats + i] = host[i];
  }
  comm_.set_operation("metrics all-reduce", step_);
  comm_.allreduce_sum(sums, 2 * num_loss_stats);
  for (int n : {G, D})
    for (int i = 0; i < num_loss_stats; ++i) epoch_sums_[n][i] += sums[n * num_loss_stats + i];
  const double* gs = sums;
  const double* ds = sums + num_loss_stats;
  // D's count holds real and generated rows: its loss is their two means added.
  last_loss_[G] = gs[stat_count] > 0 ? gs[stat_loss] / gs[stat_count] : last_loss_[G];
  last_loss_[D] = ds[stat_count] > 0 ? ds[stat_loss] / (0.5 * ds[stat_count]) : last_loss_[D];
  auto now = std::chrono::steady_clock::now();
  const double dt = std::chrono::duration<double>(now - interval_start_).count();
  const double samples = (gs[stat_count] + ds[stat_count]) * gan_.pack;  // generated and real rows processed
  last_samples_per_s_ = dt > 0 ? samples / dt : 0.0;
  interval_start_ = now;
  const int64_t skipped = interval_skipped_;
  interval_skipped_ = 0;
  if (coordination_->client() && comm_.rank() == 0)
    coordination_->client()->report_metrics(step_, epoch + 1, last_loss_[D], 0.0, last_samples_per_s_,
                                            schedule_[G]->lr(step_ - 1), cpu_planner_->summary());
  if (!logs()) return;
  const double since_start = std::chrono::duration<double>(now - run_start_).count();
  if (config_.train.progress) {
    char line[256];
    std::snprintf(line, sizeof line,
                  "step %lld/%lld (epoch %lld): d_loss %.4f g_loss %.4f | %lld D / %lld G updates%s | %.0f samples/s",
                  static_cast<long long>(step_), static_cast<long long>(total_steps()),
                  static_cast<long long>(std::min(epoch + 1, config_.train.epochs)), last_loss_[D], last_loss_[G],
                  static_cast<long long>(updates_[D]), static_cast<long long>(updates_[G]),
                  skipped ? (", " + std::to_string(skipped) + " D skipped").c_str() : "", last_samples_per_s_);
    print(line);
  }
  log_->write(JsonRecord()
                  .add("event", std::string("step"))
                  .add("step", step_)
                  .add("epoch", epoch + 1)
                  .add("d_loss", last_loss_[D])
                  .add("g_loss", last_loss_[G])
                  .add("d_updates", updates_[D])
                  .add("g_updates", updates_[G])
                  .add("d_skipped", d_skipped_)
                  .add("lr_g", schedule_[G]->lr(step_ - 1))
                  .add("lr_d", schedule_[D]->lr(step_ - 1))
                  .add("samples_per_s", last_samples_per_s_)
                  .add("time_s", since_start));
}

void GanTrainer::end_epoch(int64_t epoch) {
  const double* gs = epoch_sums_[G];
  const double* ds = epoch_sums_[D];
  const double g_loss = gs[stat_count] > 0 ? gs[stat_loss] / gs[stat_count] : 0.0;
  const double d_loss = ds[stat_count] > 0 ? ds[stat_loss] / (0.5 * ds[stat_count]) : 0.0;
  for (auto& s : epoch_sums_) std::fill(std::begin(s), std::end(s), 0.0);
  if (!logs()) return;
  char line[256];
  int len =
      std::snprintf(line, sizeof line, "epoch %lld/%lld: d_loss %.4f g_loss %.4f", static_cast<long long>(epoch + 1),
                    static_cast<long long>(config_.train.epochs), d_loss, g_loss);
  JsonRecord rec;
  rec.add("event", std::string("epoch")).add("epoch", epoch + 1).add("step", step_);
  rec.add("d_loss", d_loss).add("g_loss", g_loss);
  if (mixture_ && gan_.eval_every_epoch) {  // a few thousand small forward passes: cheap
    ModeCoverage c = evaluate_coverage();
    std::snprintf(line + len, sizeof line - len, " | %s", describe(c).c_str());
    rec.add("modes_covered", c.covered).add("modes", c.modes).add("high_quality", c.high_quality);
  }
  print(line);
  log_->write(rec);
}

ModeCoverage GanTrainer::evaluate_coverage() {
  std::vector<float> samples;
  generate_samples(*g_, gan_, config_.seed, gan_.eval_samples, samples);
  return score_mode_coverage(modes_, samples.data(), gan_.eval_samples, gan_.quality_sigmas, gan_.mode_min_samples);
}

GanResult GanTrainer::run() {
  GanResult result;
  const int64_t total = total_steps();
  run_start_ = interval_start_ = std::chrono::steady_clock::now();
  while (step_ < total) {
    TestHooks::get().before_step(comm_.rank(), step_);
    const bool is_d = discriminator_step(step_);
    const int64_t epoch = reader_->cursor().epoch;
    cpu_planner_->before_step();
    if (is_d)
      d_step(reader_->next());
    else
      g_step();
    cpu_planner_->after_step(/*complete=*/!is_d);  // the plan covers both networks' steps
    ++step_;
    if (auto* client = coordination_->client()) client->set_progress(step_, last_samples_per_s_);
    // An epoch ends with the discriminator step that takes its last real batch.
    const bool epoch_done = is_d && reader_->cursor().epoch != epoch;
    if (step_ % config_.train.log_every == 0 || step_ == total || epoch_done) log_interval(epoch);
    if (epoch_done) end_epoch(epoch);
    if (stop_.agreed()) {
      // Every rank saw the request in this step's control lane: all checkpoint here and leave.
      maybe_checkpoint(true);
      print(stop_.requeue_message(step_));
      result.requeue = true;
      result.steps = step_;
      return result;
    }
    maybe_checkpoint(false);
  }
  if (config_.checkpoint.at_end) maybe_checkpoint(true);
  finish(result);
  return result;
}

void GanTrainer::finish(GanResult& result) {
  use_weight_average();
  result.steps = step_;
  result.epochs = reader_->cursor().epoch;
  result.d_updates = updates_[D];
  result.g_updates = updates_[G];
  result.d_skipped = d_skipped_;
  result.d_loss = last_loss_[D];
  result.g_loss = last_loss_[G];
  if (comm_.rank() != 0) return;
  std::filesystem::create_directories(config_.out_dir);
  const Shape& shape = g_->output_shape();
  // Both networks as model files: `dptrain sample` rebuilds the generator from the config text.
  result.generator_path = (std::filesystem::path(config_.out_dir) / "generator.h5").string();
  result.discriminator_path = (std::filesystem::path(config_.out_dir) / "discriminator.h5").string();
  save_model_file(result.generator_path, *g_,
                  {config_.text, TaskInfo{false, 2, shape.numel()}, {}, {}, g_->input_shape().to_vector()});
  save_model_file(result.discriminator_path, *d_,
                  {config_.text, TaskInfo{false, 2, 1}, {}, {}, d_->input_shape().to_vector()});
  print("generator saved to " + result.generator_path + ", discriminator to " + result.discriminator_path);

  const int64_t count = mixture_ ? std::max(gan_.samples, gan_.eval_samples) : gan_.samples;
  if (count > 0) {
    std::vector<float> samples;
    generate_samples(*g_, gan_, config_.seed, count, samples);
    result.samples_path = (std::filesystem::path(config_.out_dir) / "samples.h5").string();
    write_samples_file(result.samples_path, samples, count, shape);
    std::vector<float> real;
    if (shape == Shape{2}) {
      const DatasetFile& f = *splits_.train.file;
      real.resize(splits_.train.rows.size() * 2);
      f.read_row_list(splits_.train.rows.data(), static_cast<int64_t>(splits_.train.rows.size()), real.data());
    }
    const std::string png = (std::filesystem::path(config_.out_dir) / "samples.png").string();
    const bool tanh_output = root_.child("gan").child("generator").get_string("output_activation", "") == "tanh";
    std::string what = write_samples_picture(png, samples, count, shape, real, tanh_output ? -1.0f : 0.0f, 1.0f);
    if (!what.empty()) result.picture_path = png;
    print(std::to_string(count) + " samples written to " + result.samples_path +
          (what.empty() ? std::string() : "; " + what + " to " + png));
    if (mixture_) {
      result.coverage =
          score_mode_coverage(modes_, samples.data(), gan_.eval_samples, gan_.quality_sigmas, gan_.mode_min_samples);
      result.has_coverage = true;
      print("mode coverage: " + describe(result.coverage));
      if (log_)
        log_->write(JsonRecord()
                        .add("event", std::string("coverage"))
                        .add("step", step_)
                        .add("modes_covered", result.coverage.covered)
                        .add("modes", result.coverage.modes)
                        .add("high_quality", result.coverage.high_quality)
                        .add("samples", result.coverage.samples));
    }
  }
}

void GanTrainer::maybe_checkpoint(bool force) {
  const CheckpointConfig& c = config_.checkpoint;
  // The every_seconds decision is rank 0's clock, carried to every rank by the control lane.
  bool due = force || checkpoint_due_ || (c.every_steps > 0 && step_ % c.every_steps == 0);
  checkpoint_due_ = false;
  if (!due || step_ == last_checkpoint_step_) return;
  last_checkpoint_step_ = step_;
  last_checkpoint_time_ = std::chrono::steady_clock::now();
  std::string path = coordination_->checkpoint([this](bool with_data) { return checkpoint_state(with_data); },
                                               flat_pointers(), device_, force);
  if (!path.empty() && logs() && config_.train.progress) print("checkpoint " + path);
}

bool GanTrainer::checkpoint_time_due() const {
  const double every = config_.checkpoint.every_seconds;
  return comm_.rank() == 0 && every > 0 &&
         std::chrono::duration<double>(std::chrono::steady_clock::now() - last_checkpoint_time_).count() >= every;
}

}  // namespace dptrain
