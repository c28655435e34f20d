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

}  // namespace

GanTrainer::GanTrainer(const TrainConfig& config, const ConfigNode& root, Communicator& comm)
    : session_(config, comm),
      config_(session_.config()),
      gan_(read_gan_config(root, config)),
      comm_(comm),
      root_(root),
      loss_(gan_.loss) {
  if (config_.data.normalize)
    root.child("data").fail("normalize", "task gan learns the data as it is; generated samples would be z-scores");

  splits_ = make_splits(config_.data);
  const DatasetFile& train = *splits_.train.file;
  device_ = session_.device();
  GanNetworks nets = build_gan_networks(root, gan_, gan_sample_shape(root, train.sample_shape()), device_);
  g_ = std::move(nets.generator);
  d_ = std::move(nets.discriminator);
  g_kind_ = nets.generator_kind;
  d_kind_ = nets.discriminator_kind;
  g_->initialize(config_.seed);
  d_->initialize(config_.seed + discriminator_seed_offset);
  root.check_unused();
  cycle_ = gan_.d_steps + gan_.g_steps;
  if (config_.train.accumulate > 1)
    fail_input("config: train.accumulate = " + std::to_string(config_.train.accumulate) +
               ": task = \"gan\" trains each network on whole batches (set train.batch_size instead)");

  reader_ = std::make_unique<ShardedReader>(splits_.train.file, splits_.train.rows,
                                            session_.training_reader_options(train.sample_shape(), FeatureScaler{}));
  real_width_ = std::max<int64_t>(1, train.target_dim());
  check_pack();

  opt_[G] = std::make_unique<Optimizer>(gan_.optim_g, g_->flat_size(), device_);
  opt_[D] = std::make_unique<Optimizer>(gan_.optim_d, d_->flat_size(), device_);
  // Both rates follow [schedule] over the global step; an "epoch" there is one pass of the
  // discriminator over the real data.
  const int64_t steps_per_epoch = std::max<int64_t>(1, reader_->steps_per_epoch() * cycle_ / gan_.d_steps);
  schedule_[G] = std::make_unique<LrSchedule>(config_.schedule, gan_.optim_g.lr, total_steps(), steps_per_epoch);
  schedule_[D] = std::make_unique<LrSchedule>(config_.schedule, gan_.optim_d.lr, total_steps(), steps_per_epoch);
  session_.agree_on_start(layout_hash(), g_->parameter_count() + d_->parameter_count(), {g_.get(), d_.get()});
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

  mixture_ = is_gaussian_mixture(train) && g_->output_shape() == train.sample_shape();
  if (mixture_) modes_ = measure_modes(train, splits_.train.rows);

  session_.open();
  if (logs()) {
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

GanTrainer::~GanTrainer() { session_.close(); }

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

uint64_t GanTrainer::layout_hash() const {
  const uint64_t g = g_->layout_hash(), d = d_->layout_hash();
  return stable_hash(&d, sizeof d, stable_hash(&g, sizeof g, stable_hash("gan")));
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
  const int64_t step = session_.step();
  d.zero_grad();
  session_.begin_step(*reducer_[D]);
  const Tensor* x = &real.x;  // on a GPU already there (staged in train_step)
  step_stats_.fill(0.0f);
  StepContext dctx{.mode = Mode::train,
                   .seed = config_.seed + discriminator_seed_offset,
                   .step = static_cast<uint64_t>(step),
                   .row0 = real.row0,
                   .cross_rank = cross_rank_.get()};
  // Real rows first, without the reducer: the generated rows' backward adds to the same gradients
  // and starts the all-reduce as D's layers become final.
  dctx.row0 /= gan_.pack;  // D's draws are keyed by packed row
  const Tensor& real_scores = d.forward(packed(*x), dctx);
  loss_.evaluate(GanRole::real, real_scores, 1.0f, &dscore_, step_stats_.data());
  d.backward(dscore_, dctx);

  StepContext gctx{.mode = Mode::train,
                   .seed = config_.seed,
                   .step = static_cast<uint64_t>(step),
                   .parameter_gradients = false,
                   .cross_rank = cross_rank_.get()};
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
    comm_.set_operation("discriminator loss all-reduce", step);
    comm_.allreduce_sum(sums, 2);
    const double loss = sums[0] / std::max(1.0, 0.5 * sums[1]);  // real mean + generated mean (over packs)
    skip = loss < gan_.d_skip_below;
  }
  if (!skip) {
    dctx.on_gradients_ready = &on_ready_[D];
    d.backward(dscore_, dctx);
  }
  session_.end_step(*reducer_[D]);
  k.axpy(num_loss_stats, 1.0f, step_stats_.data(), stats_[D].data());
  if (skip) {
    ++d_skipped_;
    ++interval_skipped_;
    return;
  }
  opt_[D]->step(d.params(), d.grads(), static_cast<float>(schedule_[D]->lr(step)),
                mean_gradient_scale(d.grads(), real.global_rows / gan_.pack, gan_.optim_d.clip_norm));
  if (gan_.clip > 0.0)
    k.clamp(d.flat_size(), -static_cast<float>(gan_.clip), static_cast<float>(gan_.clip), d.params().data());
  ++updates_[D];
}

void GanTrainer::g_step() {
  Model& g = *g_;
  const int64_t step = session_.step();
  g.zero_grad();
  session_.begin_step(*reducer_[G]);
  const int64_t batch = config_.train.batch_size;
  StepContext gctx{.mode = Mode::train,
                   .seed = config_.seed,
                   .step = static_cast<uint64_t>(step),
                   .on_gradients_ready = &on_ready_[G],
                   .cross_rank = cross_rank_.get()};
  const Tensor& fake = generate(batch, Mode::train, gctx);
  // The discriminator only passes the gradient through: its parameters get none in this step.
  StepContext dctx{.mode = Mode::train,
                   .seed = config_.seed + discriminator_seed_offset,
                   .step = static_cast<uint64_t>(step),
                   .row0 = (batch + gctx.row0) / gan_.pack,
                   .parameter_gradients = false,
                   .cross_rank = cross_rank_.get()};
  const Tensor& scores = d_->forward(packed(fake), dctx);
  loss_.evaluate(GanRole::generator, scores, 1.0f, &dscore_, stats_[G].data());
  d_->backward(dscore_, dctx, &dfake_);
  g.backward(dfake_.reshaped(fake.shape()), gctx);  // d/d(pack) viewed back as d/d(sample)
  session_.end_step(*reducer_[G]);
  opt_[G]->step(g.params(), g.grads(), static_cast<float>(schedule_[G]->lr(step)),
                mean_gradient_scale(g.grads(), batch / gan_.pack, gan_.optim_g.clip_norm));
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
    StepContext ctx{.mode = Mode::train,
                    .seed = config_.seed,
                    .step = static_cast<uint64_t>(b),
                    .parameter_gradients = false,
                    .cross_rank = cross_rank_.get()};
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

void GanTrainer::log_interval(int64_t epoch) {
  double sums[2 * num_loss_stats];
  for (int n : {G, D}) {
    float host[num_loss_stats];
    copy_memory(host, Device::cpu, stats_[n].data(), device_, sizeof host);
    stats_[n].fill(0.0f);
    for (int i = 0; i < num_loss_stats; ++i) sums[n * num_loss_stats + i] = host[i];
  }
  const int64_t step = session_.step();
  comm_.set_operation("metrics all-reduce", step);
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
  const double samples_per_s = dt > 0 ? samples / dt : 0.0;
  session_.set_samples_per_s(samples_per_s);
  interval_start_ = now;
  const int64_t skipped = interval_skipped_;
  interval_skipped_ = 0;
  if (auto* client = session_.coordination().client(); client && comm_.rank() == 0)
    client->report_metrics(step, epoch + 1, last_loss_[D], 0.0, samples_per_s, schedule_[G]->lr(step - 1),
                           session_.cpu_planner().summary());
  if (!logs()) return;
  const double since_start = session_.seconds_running();
  if (config_.train.progress) {
    char line[256];
    std::snprintf(line, sizeof line,
                  "step %lld/%lld (epoch %lld): d_loss %.4f g_loss %.4f | %lld D / %lld G updates%s | %.0f samples/s",
                  static_cast<long long>(step), static_cast<long long>(total_steps()),
                  static_cast<long long>(std::min(epoch + 1, config_.train.epochs)), last_loss_[D], last_loss_[G],
                  static_cast<long long>(updates_[D]), static_cast<long long>(updates_[G]),
                  skipped ? (", " + std::to_string(skipped) + " D skipped").c_str() : "", samples_per_s);
    print(line);
  }
  session_.log(JsonRecord()
                   .add("event", std::string("step"))
                   .add("step", step)
                   .add("epoch", epoch + 1)
                   .add("d_loss", last_loss_[D])
                   .add("g_loss", last_loss_[G])
                   .add("d_updates", updates_[D])
                   .add("g_updates", updates_[G])
                   .add("d_skipped", d_skipped_)
                   .add("lr_g", schedule_[G]->lr(step - 1))
                   .add("lr_d", schedule_[D]->lr(step - 1))
                   .add("samples_per_s", samples_per_s)
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
  rec.add("event", std::string("epoch")).add("epoch", epoch + 1).add("step", session_.step());
  rec.add("d_loss", d_loss).add("g_loss", g_loss);
  if (mixture_ && gan_.eval_every_epoch) {  // a few thousand small forward passes: cheap
    ModeCoverage c = evaluate_coverage();
    std::snprintf(line + len, sizeof line - len, " | %s", describe(c).c_str());
    rec.add("modes_covered", c.covered).add("modes", c.modes).add("high_quality", c.high_quality);
  }
  print(line);
  session_.log(rec);
}

ModeCoverage GanTrainer::evaluate_coverage() {
  std::vector<float> samples;
  generate_samples(*g_, gan_, config_.seed, gan_.eval_samples, samples);
  return score_mode_coverage(modes_, samples.data(), gan_.eval_samples, gan_.quality_sigmas, gan_.mode_min_samples);
}

bool GanTrainer::train_step() {
  updated_d_ = discriminator_step(session_.step());
  epoch_ = reader_->cursor().epoch;
  if (updated_d_) {
    DeviceBatchStager* stager = session_.stager();
    const Batch& real = stager ? stager->stage(reader_->next(), real_width_) : reader_->next();
    if (stager) stager->ready();
    d_step(real);
  } else {
    g_step();
  }
  return !updated_d_;  // the CPU plan covers both networks' steps once a G step ran
}

void GanTrainer::end_step() {
  const int64_t step = session_.step();
  // An epoch ends with the discriminator step that takes its last real batch.
  const bool epoch_done = updated_d_ && reader_->cursor().epoch != epoch_;
  if (step % config_.train.log_every == 0 || step == total_steps() || epoch_done) log_interval(epoch_);
  if (epoch_done) end_epoch(epoch_);
}

GanResult GanTrainer::run() {
  interval_start_ = std::chrono::steady_clock::now();
  result_.requeue = !session_.run(*this);
  result_.steps = session_.step();
  return result_;
}

void GanTrainer::finish() {
  GanResult& result = result_;
  use_weight_average();
  result.steps = session_.step();
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
      session_.log(JsonRecord()
                       .add("event", std::string("coverage"))
                       .add("step", session_.step())
                       .add("modes_covered", result.coverage.covered)
                       .add("modes", result.coverage.modes)
                       .add("high_quality", result.coverage.high_quality)
                       .add("samples", result.coverage.samples));
    }
  }
}

}  // namespace dptrain
