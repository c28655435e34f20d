#include "trainer/coordinator/Coordinator.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "comm/control/BackgroundPriority.h"
#include "comm/control/Crypto.h"
#include "models/core/Error.h"
#include "trainer/coordinator/CheckpointWire.h"
#include "trainer/coordinator/DashboardPage.h"
#include "trainer/coordinator/HttpStatusServer.h"

namespace dptrain {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// A coordinator seeds its history from the last this many bytes of the run's metrics file.
constexpr size_t max_seed_bytes = size_t{8} << 20;
}  // namespace

Coordinator::Coordinator(const CoordinatorOptions& options, Logger log)
    : options_(options), log_(std::move(log)), started_(std::chrono::steady_clock::now()) {
  if (options_.token.empty()) options_.token = make_job_token();
  store_ = std::make_unique<CheckpointStore>(options_.checkpoint_dir, options_.checkpoint_keep);
  instance_ = std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count()) +
              "-" + std::to_string(::getpid());
  // Checkpoints of earlier attempts (a requeued job, a restarted supervisor) are events too.
  const std::vector<std::string> found = store_->list();
  for (auto it = found.rbegin(); it != found.rend(); ++it) {
    long long step = -1;
    if (std::sscanf(std::filesystem::path(*it).filename().c_str(), "ckpt-%lld", &step) != 1) continue;
    std::error_code ec;
    const auto written = std::filesystem::last_write_time(*it, ec);
    JsonRecord e;
    e.add("event", std::string("checkpoint")).add("step", static_cast<int64_t>(step)).add("path", *it);
    if (!ec)
      e.add("time", std::chrono::duration<double>(std::chrono::file_clock::to_sys(written).time_since_epoch()).count());
    history_.add_event(e.add("found_at_start", int64_t{1}));
  }
  writer_ = std::thread([this] { write_loop(); });
  ControlServer::Options so;
  so.bind_address = options_.bind_address;
  so.port = options_.port;
  so.token = options_.token;
  so.max_frame_bytes = options_.max_frame_bytes;
  so.max_bulk_frame_bytes = options_.max_bulk_frame_bytes;
  so.background = true;
  try {
    server_ = std::make_unique<ControlServer>(so, *this, log_);
    if (options_.http_port >= 0)
      http_ = std::make_unique<HttpStatusServer>(options_.bind_address, static_cast<uint16_t>(options_.http_port),
                                                 [this](const std::string& target, std::string& type) {
                                                   const std::string path = target.substr(0, target.find('?'));
                                                   if (path == "/status") {
                                                     type = "application/json";
                                                     return status_json();
                                                   }
                                                   if (path == "/metrics") {
                                                     type = "text/plain; version=0.0.4";
                                                     return metrics_text();
                                                   }
                                                   if (path == "/history") {
                                                     type = "application/json";
                                                     return history_json();
                                                   }
                                                   if (path == "/" || path == "/index.html") {
                                                     type = "text/html; charset=utf-8";
                                                     return std::string(dashboard_page());
                                                   }
                                                   return std::string();
                                                 });
  } catch (...) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_writer_ = true;
    }
    cv_.notify_all();
    writer_.join();
    throw;
  }
}

Coordinator::~Coordinator() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_writer_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();  // finishes the checkpoints already complete
  http_.reset();
  server_.reset();
}

uint16_t Coordinator::port() const { return server_->port(); }
int Coordinator::http_port() const { return http_ ? http_->port() : -1; }
uint64_t Coordinator::refused_connections() const { return server_->refused(); }

void Coordinator::request_stop(const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stop_reason_.empty()) return;
    stop_reason_ = reason;
    history_.add_event(JsonRecord().add("event", std::string("stop")).add("reason", reason));
  }
  log_("coordinator: asking every worker to stop and checkpoint (" + reason + ")");
  ByteWriter w;
  w.str(reason);
  server_->broadcast(FrameType::stop, w.bytes());
}

bool Coordinator::stop_requested() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !stop_reason_.empty();
}

void Coordinator::reset_workers() {
  std::lock_guard<std::mutex> lock(mu_);
  workers_.clear();
  lost_.clear();
  assemblies_.clear();  // slices of a failed attempt never count
}

void Coordinator::note_restart(const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  ++restarts_;
  last_restart_reason_ = why;
  history_.add_event(JsonRecord()
                         .add("event", std::string("restart"))
                         .add("restart", static_cast<int64_t>(restarts_))
                         .add("reason", why)
                         .add("checkpoint_step", last_.step));
}

std::vector<Coordinator::WorkerStatus> Coordinator::workers() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<WorkerStatus> out;
  for (const auto& [rank, w] : workers_)
    out.push_back({rank, w.hello.pid, w.hello.host, w.step, w.samples_per_s, seconds_since(w.last_heartbeat)});
  return out;
}

Coordinator::LastCheckpoint Coordinator::last_checkpoint() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_;
}

bool Coordinator::wait_checkpoint(int64_t step, double timeout_s) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::duration<double>(timeout_s), [&] { return finished_.count(step) > 0; });
  return finished_.count(step) && finished_[step];
}

void Coordinator::finish_checkpoint(int64_t step, double idle_s) {
  std::unique_lock<std::mutex> lock(mu_);
  int64_t seen = -1;
  while (true) {
    if (finished_.count(step)) return;
    // Complete but not yet written, or still gathering from ranks that are all connected.
    bool pending = writing_ == step;
    for (const auto& s : to_write_) pending |= s->step == step;
    auto it = assemblies_.find(step);
    if (!pending && it == assemblies_.end() && seen >= 0) return;  // superseded or abandoned
    if (it != assemblies_.end() && !pending)
      for (int r = 0; r < it->second.world; ++r)
        if (!it->second.ended[static_cast<size_t>(r)] && !workers_.count(r)) return;  // left without its share
    if (received_frames_ == seen && !pending) return;                                 // nothing arrived for idle_s
    seen = received_frames_;
    cv_.wait_for(lock, std::chrono::duration<double>(idle_s),
                 [&] { return received_frames_ != seen || finished_.count(step) > 0; });
  }
}

void Coordinator::set_schedule_service(ScheduleService* service) {
  std::lock_guard<std::mutex> lock(mu_);
  schedule_ = service;
}

void Coordinator::send_schedule(int rank, std::vector<uint8_t> payload) {
  uint64_t session = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = workers_.find(rank);
    if (it == workers_.end()) return;
    session = it->second.session;
  }
  server_->send(session, FrameType::schedule, std::move(payload));
}

void Coordinator::broadcast_schedule(const std::vector<uint8_t>& payload) {
  server_->broadcast(FrameType::schedule, payload);
}

int Coordinator::rank_of(uint64_t session) const {
  for (const auto& [rank, w] : workers_)
    if (w.session == session) return rank;
  return -1;
}

void Coordinator::on_connect(uint64_t session, const HelloInfo& hello) {
  std::string stop;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Worker& w = workers_[hello.rank];
    w = Worker{};  // a rank that reconnects starts afresh (no goodbye yet)
    w.session = session;
    w.hello = hello;
    w.last_heartbeat = std::chrono::steady_clock::now();
    w.step = -1;
    stop = stop_reason_;
  }
  if (!stop.empty()) {  // joined after the stop request: it must stop too
    ByteWriter w;
    w.str(stop);
    server_->send(session, FrameType::stop, w.take());
  }
}

void Coordinator::on_disconnect(uint64_t session, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  int rank = rank_of(session);
  if (rank < 0) return;
  const Worker& w = workers_[rank];
  if (lost_.empty() && !w.goodbye) {
    lost_at_ = std::chrono::steady_clock::now();
    lost_ = "rank " + std::to_string(rank) + " (pid " + std::to_string(w.hello.pid) + " on " + w.hello.host +
            ") disconnected at step " + std::to_string(w.step) + " (" + reason + ")";
  }
  workers_.erase(rank);
  cv_.notify_all();  // a checkpoint waiting for its share cannot complete (finish_checkpoint)
}

std::string Coordinator::lost_worker() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lost_;
}

double Coordinator::seconds_since_lost() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lost_.empty() ? -1.0 : seconds_since(lost_at_);
}

void Coordinator::on_frame(uint64_t session, FrameType type, ByteReader& r) {
  int rank;
  {
    std::lock_guard<std::mutex> lock(mu_);
    rank = rank_of(session);
  }
  if (rank < 0) throw ProtocolError("frame from a session that is no longer registered");
  switch (type) {
    case FrameType::heartbeat: {
      int64_t step = r.i64();
      double sps = r.f64();
      r.expect_end();
      std::lock_guard<std::mutex> lock(mu_);
      Worker& w = workers_[rank];
      w.last_heartbeat = std::chrono::steady_clock::now();
      w.step = step;
      w.samples_per_s = sps;
      return;
    }
    case FrameType::goodbye: {
      r.expect_end();
      std::lock_guard<std::mutex> lock(mu_);
      auto it = workers_.find(rank);  // still this session's (not reset for a restart meanwhile)
      if (it != workers_.end() && it->second.session == session) it->second.goodbye = true;
      return;
    }
    case FrameType::metrics: {
      // step, epoch, loss, accuracy, samples/s, lr, CPU plan [, one logged record as JSON]; a frame
      // with step -1 carries only the record (CoordinatorClient::report_record).
      int64_t step = r.i64(), epoch = r.i64();
      double loss = r.f64(), acc = r.f64(), sps = r.f64(), lr = r.f64();
      std::string engines = r.str(1 << 12);
      std::string record = r.left() ? r.str(max_record_bytes) : std::string();
      r.expect_end();
      std::lock_guard<std::mutex> lock(mu_);
      if (!record.empty()) add_logged_record(record);
      if (step < 0) return;
      step_ = step;
      epoch_ = epoch;
      loss_ = loss;
      accuracy_ = acc;
      samples_per_s_ = sps;
      lr_ = lr;
      if (!engines.empty()) cpu_engines_ = std::move(engines);
      return;
    }
    case FrameType::checkpoint_begin:
      return begin_checkpoint(rank, r);
    case FrameType::checkpoint_slice:
      return add_slice(rank, r);
    case FrameType::checkpoint_end:
      return end_checkpoint(rank, r);
    case FrameType::schedule: {
      ScheduleService* s;
      {
        std::lock_guard<std::mutex> lock(mu_);
        s = schedule_;
      }
      if (!s) throw ProtocolError("schedule frame, but this job runs no schedule");
      s->on_schedule(rank, r);
      return;
    }
    default:
      throw ProtocolError(std::string("unexpected ") + frame_type_name(static_cast<uint16_t>(type)));
  }
}

void Coordinator::begin_checkpoint(int rank, ByteReader& r) {
  const int64_t max_floats = static_cast<int64_t>(options_.max_bulk_frame_bytes / 4) * 1024;
  int64_t step = r.i64();
  int32_t world = r.i32();
  CheckpointState meta = decode_checkpoint_meta(r, max_floats);
  if (meta.step != step || world < 1 || rank >= world || meta.world_size != world)
    throw ProtocolError("inconsistent checkpoint_begin");
  std::lock_guard<std::mutex> lock(mu_);
  ++received_frames_;
  cv_.notify_all();
  // A rank sends its shares in step order and skips none, so an older checkpoint it has not ended
  // can no longer complete (it was restarted, or it failed to send); older ones it has ended wait
  // for the ranks that lag. At most max_assemblies are kept (a lagging rank cannot fall further
  // behind than one share: staging waits for its previous send).
  constexpr size_t max_assemblies = 8;
  for (auto it = assemblies_.begin(); it != assemblies_.end();) {
    const Assembly& old = it->second;
    const bool skipped = it->first < step && rank < old.world && !old.ended[static_cast<size_t>(rank)];
    it = skipped || (it->first < step && assemblies_.size() >= max_assemblies) ? assemblies_.erase(it) : ++it;
  }
  Assembly& a = assemblies_[step];
  if (!a.state) {
    a.state = std::make_unique<CheckpointState>(std::move(meta));
    a.world = world;
    a.ended.assign(static_cast<size_t>(world), false);
    a.received.assign(static_cast<size_t>(world), 0);
  } else if (a.world != world || a.state->layout_hash != meta.layout_hash || a.state->config_hash != meta.config_hash ||
             a.state->flats.size() != meta.flats.size()) {
    throw ProtocolError("rank " + std::to_string(rank) + "'s checkpoint metadata disagrees with the other ranks'");
  }
}

void Coordinator::add_slice(int rank, ByteReader& r) {
  int64_t step = r.i64();
  uint32_t group = r.u32();
  int64_t offset = r.i64();
  uint64_t count = r.u64();
  if (count > r.left() / sizeof(float)) throw ProtocolError("slice longer than its frame");
  const uint8_t* data = r.take(count * sizeof(float));
  r.expect_end();
  std::lock_guard<std::mutex> lock(mu_);
  ++received_frames_;
  cv_.notify_all();
  auto it = assemblies_.find(step);
  if (it == assemblies_.end()) return;  // superseded: drop quietly
  Assembly& a = it->second;
  if (rank >= a.world || group >= a.state->flats.size()) throw ProtocolError("slice for an unknown buffer");
  std::vector<float>& flat = a.state->flats[group].data;
  auto [begin, end] = checkpoint_slice(static_cast<int64_t>(flat.size()), rank, a.world);
  if (offset < begin || offset + static_cast<int64_t>(count) > end)
    throw ProtocolError("slice outside rank " + std::to_string(rank) + "'s share");
  std::memcpy(flat.data() + offset, data, count * sizeof(float));
  a.received[static_cast<size_t>(rank)] += static_cast<int64_t>(count);
}

void Coordinator::end_checkpoint(int rank, ByteReader& r) {
  int64_t step = r.i64();
  r.expect_end();
  std::lock_guard<std::mutex> lock(mu_);
  ++received_frames_;
  cv_.notify_all();
  auto it = assemblies_.find(step);
  if (it == assemblies_.end()) return;
  Assembly& a = it->second;
  if (rank >= a.world) throw ProtocolError("checkpoint_end from a rank outside the job");
  int64_t expected = 0;
  for (const FlatEntry& f : a.state->flats) {
    auto [b, e] = checkpoint_slice(static_cast<int64_t>(f.data.size()), rank, a.world);
    expected += e - b;
  }
  if (a.received[static_cast<size_t>(rank)] != expected)
    throw ProtocolError("rank " + std::to_string(rank) + " sent " +
                        std::to_string(a.received[static_cast<size_t>(rank)]) + " checkpoint values of its " +
                        std::to_string(expected));
  a.ended[static_cast<size_t>(rank)] = true;
  for (bool e : a.ended)
    if (!e) return;
  // Complete: hand it to the writer; only a written checkpoint counts.
  to_write_.push_back(std::move(a.state));
  assemblies_.erase(it);
  cv_.notify_all();
}

void Coordinator::write_loop() {
  lower_this_thread_priority();
  while (true) {
    std::unique_ptr<CheckpointState> state;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_writer_ || !to_write_.empty(); });
      if (to_write_.empty()) return;
      state = std::move(to_write_.front());
      to_write_.pop_front();
      writing_ = state->step;
    }
    ByteWriter w;
    w.i64(state->step);
    bool ok = true;
    std::string message;
    try {
      message = store_->save(*state);
    } catch (const std::exception& e) {
      ok = false;
      message = e.what();
      log_("coordinator: " + message + "; training goes on");
    }
    w.u8(ok ? 1 : 0).str(message);
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = -1;
      finished_[state->step] = ok;
      if (finished_.size() > 64) finished_.erase(finished_.begin());
      if (ok) {
        last_ = {state->step, message};
        ++checkpoints_written_;
        history_.add_event(
            JsonRecord().add("event", std::string("checkpoint")).add("step", state->step).add("path", message));
      } else {
        history_.add_event(
            JsonRecord().add("event", std::string("checkpoint_failed")).add("step", state->step).add("error", message));
      }
    }
    cv_.notify_all();
    if (server_) server_->broadcast(FrameType::checkpoint_done, w.bytes());
  }
}

std::string Coordinator::status_json() const {
  using Json = nlohmann::ordered_json;  // keys in the order written here
  std::lock_guard<std::mutex> lock(mu_);
  Json ranks = Json::array();
  for (const auto& [rank, w] : workers_) {
    Json entry = {{"rank", rank},
                  {"pid", w.hello.pid},
                  {"host", w.hello.host},
                  {"step", w.step},
                  {"heartbeat_age_s", std::round(seconds_since(w.last_heartbeat) * 1e3) / 1e3}};
    // Its step phases over the last log interval, in ms (as rank 0 gathered them).
    if (rank >= 0 && static_cast<size_t>(rank) < phases_ms_.size())
      for (int p = 0; p < StepTimer::num_phases; ++p)
        entry[std::string(StepTimer::name(static_cast<StepTimer::Phase>(p))) + "_ms"] =
            std::round(phases_ms_[static_cast<size_t>(rank)][static_cast<size_t>(p)] * 1e3) / 1e3;
    entry["straggler"] = std::find(stragglers_.begin(), stragglers_.end(), rank) != stragglers_.end();
    ranks.push_back(std::move(entry));
  }
  // Numbers go out as nlohmann writes them (NaN and infinities as null); ages keep the
  // millisecond and tenth-of-a-second resolution they are meaningful to.
  Json status = {{"job", options_.job},
                 {"control_port", server_ ? static_cast<int>(server_->port()) : -1},
                 {"phase", stop_reason_.empty() ? "training" : "stopping"},
                 {"step", step_},
                 {"epoch", epoch_},
                 {"loss", loss_},
                 {"accuracy", accuracy_},
                 {"samples_per_s", samples_per_s_},
                 {"lr", lr_},
                 {"ranks_alive", static_cast<int>(workers_.size())},
                 {"restarts", restarts_},
                 {"uptime_s", std::round(seconds_since(started_) * 10) / 10},
                 {"last_checkpoint", {{"step", last_.step}, {"path", last_.path}}},
                 {"cpu_engines", cpu_engines_},
                 {"stragglers", stragglers_},
                 {"skipped_steps", skipped_steps_},
                 {"ranks", std::move(ranks)}};
  // Paths and host names are bytes, not always UTF-8: replace what is not rather than fail.
  return status.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

void Coordinator::add_logged_record(const std::string& json) {
  // Rank 0 announces each start of the run with its metrics file: a coordinator that knows
  // nothing of the run yet (a restarted supervisor, a requeued job) reads what was logged before.
  // A malformed record is dropped (MetricsHistory::add_record refuses it); the worker is not blamed.
  const nlohmann::json record = nlohmann::json::parse(json, nullptr, false);
  if (record.is_object() && record.contains("skipped_steps") && record["skipped_steps"].is_number_integer())
    skipped_steps_ = record["skipped_steps"].get<int64_t>();
  if (record.is_object() && record.value("event", "") == "timing") {
    take_timing(record);
    return;
  }
  if (!record.is_object() || record.find("event") == record.end() || record["event"] != "start") {
    history_.add_record(json);
    return;
  }
  const auto file = record.find("metrics_file");
  const auto world = record.find("world");
  int64_t seeded = 0;
  if (!seeded_ && !history_.has_records() && file != record.end() && file->is_string())
    seeded = history_.seed_from_file(file->get<std::string>(), max_seed_bytes);
  seeded_ = true;
  JsonRecord e;
  e.add("event", std::string("start"))
      .add("world", world != record.end() && world->is_number_integer() ? world->get<int64_t>() : int64_t{0});
  if (seeded > 0) e.add("records_from_file", seeded);
  history_.add_event(e);
}

void Coordinator::take_timing(const nlohmann::json& record) {
  // Rank 0's view of every rank's step phases at a log interval (trainer/StepTimer.h), and the
  // ranks it counts as stragglers; a record of another shape is ignored.
  const auto phases = record.find("phases_ms");
  const auto stragglers = record.find("stragglers");
  if (phases == record.end() || !phases->is_array() || stragglers == record.end() || !stragglers->is_array()) return;
  phases_ms_.clear();
  for (const auto& rank : *phases) {
    std::array<double, StepTimer::num_phases> p{};
    if (!rank.is_array() || rank.size() != p.size()) return;
    for (size_t i = 0; i < p.size(); ++i) p[i] = rank[i].is_number() ? rank[i].get<double>() : 0.0;
    phases_ms_.push_back(p);
  }
  stragglers_.clear();
  for (const auto& r : *stragglers)
    if (r.is_number_integer()) stragglers_.push_back(r.get<int>());
}

std::string Coordinator::history_json() const {
  std::lock_guard<std::mutex> lock(mu_);
  return history_.json(options_.job, instance_);
}

std::string Coordinator::metrics_text() const {
  std::lock_guard<std::mutex> lock(mu_);
  char buf[2048];
  std::snprintf(
      buf, sizeof buf,
      "# HELP dptrain_step Optimizer steps completed (rank 0).\n# TYPE dptrain_step gauge\ndptrain_step %lld\n"
      "# HELP dptrain_loss Training loss over the last log interval.\n# TYPE dptrain_loss gauge\n"
      "dptrain_loss %.9g\n"
      "# HELP dptrain_accuracy Training accuracy over the last log interval.\n# TYPE dptrain_accuracy gauge\n"
      "dptrain_accuracy %.9g\n"
      "# HELP dptrain_samples_per_second Global training throughput.\n"
      "# TYPE dptrain_samples_per_second gauge\ndptrain_samples_per_second %.9g\n"
      "# HELP dptrain_ranks_alive Workers registered with the coordinator.\n"
      "# TYPE dptrain_ranks_alive gauge\ndptrain_ranks_alive %zu\n"
      "# HELP dptrain_restarts_total Times the supervisor restarted the job.\n"
      "# TYPE dptrain_restarts_total counter\ndptrain_restarts_total %d\n"
      "# HELP dptrain_checkpoints_total Checkpoints written.\n# TYPE dptrain_checkpoints_total counter\n"
      "dptrain_checkpoints_total %lld\n"
      "# HELP dptrain_last_checkpoint_step Step of the newest complete checkpoint.\n"
      "# TYPE dptrain_last_checkpoint_step gauge\ndptrain_last_checkpoint_step %lld\n"
      "# HELP dptrain_refused_connections_total Control connections refused or closed for a violation.\n"
      "# TYPE dptrain_refused_connections_total counter\ndptrain_refused_connections_total %llu\n",
      static_cast<long long>(step_), loss_, accuracy_, samples_per_s_, workers_.size(), restarts_,
      static_cast<long long>(checkpoints_written_), static_cast<long long>(last_.step),
      static_cast<unsigned long long>(server_ ? server_->refused() : 0));
  std::string text = buf;
  if (!phases_ms_.empty()) {
    text +=
        "# HELP dptrain_step_phase_seconds Seconds per step in each phase over the last log interval, by rank.\n"
        "# TYPE dptrain_step_phase_seconds gauge\n";
    for (size_t r = 0; r < phases_ms_.size(); ++r)
      for (int p = 0; p < StepTimer::num_phases; ++p) {
        std::snprintf(buf, sizeof buf, "dptrain_step_phase_seconds{rank=\"%zu\",phase=\"%s\"} %.9g\n", r,
                      StepTimer::name(static_cast<StepTimer::Phase>(p)), phases_ms_[r][static_cast<size_t>(p)] / 1e3);
        text += buf;
      }
    text +=
        "# HELP dptrain_straggler 1 for a rank persistently slower than the ranks' median.\n"
        "# TYPE dptrain_straggler gauge\n";
    for (size_t r = 0; r < phases_ms_.size(); ++r) {
      const bool slow = std::find(stragglers_.begin(), stragglers_.end(), static_cast<int>(r)) != stragglers_.end();
      std::snprintf(buf, sizeof buf, "dptrain_straggler{rank=\"%zu\"} %d\n", r, slow ? 1 : 0);
      text += buf;
    }
  }
  return text;
}

}  // namespace dptrain
