#include "trainer/Session.h"

#include <cstdio>
#include <filesystem>
#include <thread>

#include "models/core/Error.h"
#include "models/kernels/cpu/CpuKernels.h"
#include "models/kernels/cuda/CudaBackend.h"
#include "storage/reader/Augmentation.h"
#include "trainer/TestHooks.h"

namespace dptrain {

Device choose_training_device(const TrainConfig& config, Communicator& comm) {
  Device device = Device::cpu;
  if (config.device == "cuda" || (config.device == "auto" && cuda_available())) device = Device::cuda;
  if (device == Device::cuda) {
    if (comm.size() > 1 && comm.device() != Device::cuda && cuda_devices() > 0)
      cuda_set_device(cuda_device_for_local_rank(comm.local_rank()));
    kernels(device);  // fails clearly when there is no GPU
  }
  return device;
}

void apply_cpu_settings(const TrainConfig& config, const Communicator& comm) {
  int threads = config.threads;
  if (threads == 0)
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / std::max(1, comm.local_size()));
  set_cpu_threads(threads);
  set_cpu_engine(config.cpu_engine);
}

std::string with_commas(int64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

std::string in_dir(const std::string& dir, const std::string& file) {
  if (file.empty() || file[0] == '/') return file;
  return (std::filesystem::path(dir) / file).string();
}

Session::Session(const TrainConfig& config, Communicator& comm) : config_(config), comm_(comm) {
  apply_cpu_settings(config_, comm_);
  device_ = choose_training_device(config_, comm_);
  if (device_ == Device::cuda) stager_ = std::make_unique<DeviceBatchStager>();
  cpu_planner_ = std::make_unique<CpuPlanner>(
      comm_, device_ == Device::cpu, [this](const std::string& line) { print(line); },
      comm_.rank() == 0 ? config_.out_dir : "");
  last_checkpoint_time_ = run_start_ = std::chrono::steady_clock::now();
}

Session::~Session() { close(); }

void Session::close() { coordination_.reset(); }

void Session::print(const std::string& line) {
  if (!logs()) return;
  if (progress_) progress_->finish();
  std::printf(
      "%s%s\n",
      comm_.size() > 1 && config_.train.all_ranks_log ? ("[rank " + std::to_string(comm_.rank()) + "] ").c_str() : "",
      line.c_str());
  std::fflush(stdout);
}

void Session::open() {
  last_checkpoint_time_ = std::chrono::steady_clock::now();
  coordination_ = std::make_unique<JobCoordination>(config_, comm_, [this](const std::string& line) { print(line); });
  if (!logs()) return;
  std::filesystem::create_directories(config_.out_dir);
  MetricsLog::Paths paths;
  paths.jsonl = in_dir(config_.out_dir, config_.train.metrics_file);
  if (config_.logs.csv && !paths.jsonl.empty())
    paths.csv = std::filesystem::path(paths.jsonl).replace_extension(".csv").string();
  if (config_.logs.tensorboard && !paths.jsonl.empty())
    paths.tensorboard = (std::filesystem::path(config_.out_dir) / "tensorboard").string();
  log_ = std::make_unique<MetricsLog>(paths);
  progress_ = std::make_unique<ProgressLine>(config_.train.progress);
}

void Session::log(const JsonRecord& record) {
  if (log_) log_->write(record);
  // Rank 0's records also feed the coordinator's history (the dashboard); queued, never waits.
  if (CoordinatorClient* client = coordination_ && comm_.rank() == 0 ? coordination_->client() : nullptr)
    client->report_record(record.str());
}

ReaderOptions Session::evaluation_reader_options(const FeatureScaler& scaler) const {
  ReaderOptions ro;
  // With accumulation evaluation reads micro-batch-sized batches too (the memory bound).
  ro.global_batch = (config_.train.batch_size + config_.train.accumulate - 1) / config_.train.accumulate;
  ro.rank = comm_.rank();
  ro.world = comm_.size();
  ro.shuffle = Shuffle::none;
  ro.prefetch = config_.data.prefetch;
  ro.memory_budget_bytes = config_.data.memory_budget_mb << 20;
  if (!scaler.empty()) {
    ro.mean = scaler.mean;
    ro.inv_std = scaler.inv_std();
  }
  return ro;
}

ReaderOptions Session::training_reader_options(const Shape& sample, const FeatureScaler& scaler) const {
  ReaderOptions ro = evaluation_reader_options(scaler);
  ro.global_batch = config_.train.batch_size;
  ro.accumulate = config_.train.accumulate;
  ro.seed = config_.seed;
  ro.shuffle = config_.data.shuffle;
  ro.drop_last = config_.train.drop_last;
  if (config_.data.augment.enabled()) {  // training batches only
    auto augment = std::make_shared<Augmentation>(config_.data.augment, sample, config_.seed);
    ro.transform = [augment](float* x, int64_t rows, int64_t step, int64_t row0) {
      augment->apply(x, rows, step, row0);
    };
  }
  return ro;
}

void Session::agree_on_start(uint64_t layout_hash, int64_t parameters, const std::vector<Model*>& models) {
  if (comm_.size() == 1) return;
  struct Fingerprint {
    uint64_t config, layout;
    int64_t params, batch;
  };
  Fingerprint mine{config_.hash, layout_hash, parameters, config_.train.batch_size};
  std::vector<Fingerprint> all(static_cast<size_t>(comm_.size()));
  comm_.set_operation("start-up check", -1);
  comm_.allgather(&mine, sizeof mine, all.data());
  std::string problems;
  for (int r = 1; r < comm_.size(); ++r) {
    const Fingerprint& f = all[static_cast<size_t>(r)];
    std::string what;
    if (f.config != all[0].config) what += " config text (file or --set overrides)";
    if (f.layout != all[0].layout) what += " model layout";
    if (f.params != all[0].params)
      what += " parameter count (" + std::to_string(f.params) + " vs " + std::to_string(all[0].params) + ")";
    if (!what.empty())
      problems +=
          (problems.empty() ? "" : "; ") + std::string("rank ") + std::to_string(r) + " differs from rank 0 in" + what;
  }
  if (!problems.empty()) fail_input("ranks were started with different configurations: " + problems);
  comm_.set_operation("initial parameter broadcast", -1);
  for (Model* m : models) {
    std::vector<float> host(static_cast<size_t>(m->flat_size()));
    copy_memory(host.data(), Device::cpu, m->params().data(), m->device(), host.size() * sizeof(float));
    comm_.broadcast(host.data(), host.size() * sizeof(float), 0);
    copy_memory(m->params().data(), m->device(), host.data(), Device::cpu, host.size() * sizeof(float));
  }
}

void Session::begin_step(GradientReducer& reducer) {
  const float control[GradientReducer::control_lanes] = {stop_.post(step_), checkpoint_time_due() ? 1.0f : 0.0f};
  reducer.begin_step(step_, control);
}

void Session::end_step(GradientReducer& reducer) {
  reducer.finish();
  stop_.agree(step_, reducer.control(0));
  checkpoint_due_ = checkpoint_due_ || reducer.control(1) > 0.0f;
}

bool Session::checkpoint_time_due() const {
  const double every = config_.checkpoint.every_seconds;
  return comm_.rank() == 0 && every > 0 &&
         std::chrono::duration<double>(std::chrono::steady_clock::now() - last_checkpoint_time_).count() >= every;
}

void Session::checkpoint(Task& task, bool force) {
  const CheckpointConfig& c = config_.checkpoint;
  // The every_seconds decision is rank 0's clock, carried to every rank by the control lane.
  const bool due = force || checkpoint_due_ || (c.every_steps > 0 && step_ % c.every_steps == 0);
  checkpoint_due_ = false;
  if (!due) return;
  if (step_ == last_checkpoint_step_) {
    // Handed over already (a periodic one at this step, streamed without waiting); a forced one
    // (the run's end, a stop) must not end the run before it is written.
    if (force && !last_checkpoint_waited_) coordination_->wait_checkpoint(step_);
    last_checkpoint_waited_ |= force;
    return;
  }
  last_checkpoint_step_ = step_;
  last_checkpoint_waited_ = force;
  last_checkpoint_time_ = std::chrono::steady_clock::now();
  // Every rank hands over its 1/N share and trains on while it streams (a forced checkpoint waits
  // for the write); without a coordinator rank 0 writes alone.
  std::vector<bool> until_update;
  const std::vector<const float*> flats = task.flat_pointers(&until_update);
  const std::string path = coordination_->checkpoint(
      [&task](bool with_data) { return task.checkpoint_state(with_data); }, flats, device_, force, until_update);
  if (!path.empty() && logs() && config_.train.progress) print("checkpoint " + path);
}

void Session::restored_at(int64_t step) {
  step_ = step;
  last_checkpoint_step_ = step;
  last_checkpoint_waited_ = true;  // on disk already
}

void Session::resume(Task& task, const std::string& spec) {
  // Rank 0 picks the checkpoint, so every rank loads the same file even if a newer one appears.
  const std::string path = coordination_->choose_checkpoint(spec);
  if (path.empty()) {
    print("no checkpoint in " + config_.checkpoint.dir + ": starting from scratch");
    return;
  }
  const std::vector<FlatSpec> specs = task.flat_specs();
  CheckpointState meta = read_checkpoint_file(path, {});
  if (meta.layout_hash != task.layout_hash()) {
    // Reading the parameters alone names the first part that differs.
    std::string detail;
    try {
      read_checkpoint_file(path, task.parameter_specs());
    } catch (const Error& e) {
      detail = std::string(": ") + e.what();
    }
    fail_input(path + ": saved from " + task.other_layout() + detail);
  }
  task.restore(read_checkpoint_file(path, specs));
  print("resumed from " + path + " at step " + std::to_string(step_) + task.resume_detail());
  if (log_) log_->start_at(step_, path);  // what the run logged past its checkpoint goes
  logs_started_ = true;
}

double Session::seconds_running() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start_).count();
}

bool Session::run(Task& task) {
  run_start_ = std::chrono::steady_clock::now();
  run_start_step_ = step_;
  if (log_ && !logs_started_) log_->start_at(step_, "");  // a fresh run: its logs start empty
  logs_started_ = true;
  while (!task.done()) {
    TestHooks::get().before_step(comm_.rank(), step_);
    cpu_planner_->before_step();
    const bool complete = task.train_step();
    cpu_planner_->after_step(complete);
    ++step_;
    if (log_) log_->at_step(step_);
    if (auto* client = coordination_->client()) client->set_progress(step_, samples_per_s_);
    task.end_step();
    if (stop_.agreed()) {
      // Asked to stop (SIGUSR1/SIGTERM or the coordinator): every rank saw it in the same step's
      // control lane, so all checkpoint this step and leave together, to be requeued.
      checkpoint(task, true);
      print(stop_.requeue_message(step_));
      return false;
    }
    checkpoint(task, false);
  }
  if (config_.checkpoint.at_end) checkpoint(task, true);
  task.finish();
  return true;
}

}  // namespace dptrain
