// The coordinator service (docs/design.md "Coordinator"): it registers a job's workers over the
// control channel, tracks their heartbeats and metrics, assembles checkpoints from the ranks'
// 1/N slices and writes them (atomic, sealed) on its own thread, tells workers to stop for a
// pre-emption, and answers /status and /metrics. It also keeps a bounded history of what rank 0
// logs and of its own events and serves it, with a live dashboard page, at GET /history and GET /
// (docs/observability.md). `dptrain launch` runs it in the supervisor; a plain
// `mpirun dptrain train` runs it on a thread of rank 0.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "comm/control/ControlServer.h"
#include "storage/checkpoint/CheckpointStore.h"
#include "trainer/StepTimer.h"
#include "trainer/coordinator/MetricsHistory.h"

namespace dptrain {

class HttpStatusServer;

struct CoordinatorOptions {
  std::string job = "dptrain";
  std::string bind_address = "127.0.0.1";
  uint16_t port = 0;
  int http_port = 0;  // 0: any free port; negative: no HTTP
  std::string token;  // empty: a fresh random one
  std::string checkpoint_dir;
  int64_t checkpoint_keep = 3;
  size_t max_frame_bytes = size_t{64} << 10;
  size_t max_bulk_frame_bytes = size_t{64} << 20;
};

// Schedule traffic (self-training, GAN) is handled by a plug-in; see trainer/tasks.
class ScheduleService {
 public:
  virtual ~ScheduleService() = default;
  // A schedule frame from `rank`; reply through `send` (to that worker) or `broadcast`.
  virtual void on_schedule(int rank, ByteReader& payload) = 0;
};

class Coordinator final : public ControlServer::Handler {
 public:
  using Logger = std::function<void(const std::string&)>;
  Coordinator(const CoordinatorOptions& options, Logger log);
  ~Coordinator() override;

  uint16_t port() const;
  int http_port() const;
  const std::string& token() const { return options_.token; }
  const CoordinatorOptions& options() const { return options_; }

  // Tells every worker (now and any that connect later) to stop at the next step boundary,
  // checkpoint and exit with the requeue code.
  void request_stop(const std::string& reason);
  bool stop_requested() const;
  // Forgets the workers of a failed attempt (the supervisor restarts the job).
  void reset_workers();
  // The first worker lost since the last reset ("rank 1 (pid 42 on node3) lost at step 57: ..."),
  // or "" when none was: one whose connection closed without a goodbye (it failed or was killed).
  std::string lost_worker() const;
  // Seconds since that worker was lost, or -1 when none was.
  double seconds_since_lost() const;
  void note_restart(const std::string& why);

  struct WorkerStatus {
    int rank = 0, pid = 0;
    std::string host;
    int64_t step = -1;
    double samples_per_s = 0.0;
    double heartbeat_age_s = 0.0;
  };
  std::vector<WorkerStatus> workers() const;
  struct LastCheckpoint {
    int64_t step = -1;
    std::string path;
  };
  LastCheckpoint last_checkpoint() const;
  // Blocks until the checkpoint of `step` is written (or failed, or timeout); true if written.
  bool wait_checkpoint(int64_t step, double timeout_s);
  // For a coordinator about to stop with its job (the one rank 0 hosts): waits until the
  // checkpoint of `step`, whose shares are on their way, is written or cannot be (a rank left
  // before sending its share), giving up once nothing has arrived for `idle_s` (a stalled rank).
  void finish_checkpoint(int64_t step, double idle_s);
  // The GET /status body (docs/design.md "Coordinator"): one JSON object ending in a newline; a
  // NaN or infinite number is null.
  std::string status_json() const;
  std::string metrics_text() const;
  // The GET /history body (MetricsHistory::json): the records rank 0 logged and this
  // coordinator's events (checkpoints, restarts, starts, stop requests), bounded.
  std::string history_json() const;
  uint64_t refused_connections() const;

  // Sends a schedule frame to one rank or to all.
  void send_schedule(int rank, std::vector<uint8_t> payload);
  void broadcast_schedule(const std::vector<uint8_t>& payload);
  void set_schedule_service(ScheduleService* service);

  // ControlServer::Handler (I/O thread)
  void on_connect(uint64_t session, const HelloInfo& hello) override;
  void on_frame(uint64_t session, FrameType type, ByteReader& payload) override;
  void on_disconnect(uint64_t session, const std::string& reason) override;

 private:
  struct Worker {
    uint64_t session = 0;
    HelloInfo hello;
    std::chrono::steady_clock::time_point last_heartbeat;
    int64_t step = -1;
    double samples_per_s = 0.0;
    bool goodbye = false;  // it said its part ended cleanly
  };
  struct Assembly {
    std::unique_ptr<CheckpointState> state;
    int world = 0;
    std::vector<bool> ended;
    std::vector<int64_t> received;  // floats received per rank
  };
  void begin_checkpoint(int rank, ByteReader& r);
  void add_slice(int rank, ByteReader& r);
  void end_checkpoint(int rank, ByteReader& r);
  void write_loop();
  void add_logged_record(const std::string& json);
  // A "timing" record: every rank's step phases and the stragglers (for /status and /metrics).
  void take_timing(const nlohmann::json& record);
  int rank_of(uint64_t session) const;

  CoordinatorOptions options_;
  Logger log_;
  std::unique_ptr<CheckpointStore> store_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, Worker> workers_;
  std::string stop_reason_;
  int restarts_ = 0;
  std::string lost_;
  std::chrono::steady_clock::time_point lost_at_;
  std::string last_restart_reason_;
  // latest metrics from rank 0
  int64_t step_ = -1, epoch_ = 0;
  double loss_ = 0.0, accuracy_ = 0.0, samples_per_s_ = 0.0, lr_ = 0.0;
  int64_t skipped_steps_ = 0;  // train.nonfinite = "skip": steps skipped so far (rank 0's step records)
  std::string cpu_engines_;    // rank 0's CPU product plan, in one line (CpuPlan::summary)
  MetricsHistory history_;
  std::vector<std::array<double, StepTimer::num_phases>> phases_ms_;  // per rank, the last timing record's
  std::vector<int> stragglers_;
  std::string instance_;  // tells the dashboard a restarted coordinator from this one
  bool seeded_ = false;   // the history was read from the run's metrics file (once)
  std::chrono::steady_clock::time_point started_;
  std::map<int64_t, Assembly> assemblies_;
  std::deque<std::unique_ptr<CheckpointState>> to_write_;
  LastCheckpoint last_;
  std::map<int64_t, bool> finished_;  // step -> written ok
  int64_t received_frames_ = 0;       // checkpoint frames so far: finish_checkpoint's sign of progress
  int64_t writing_ = -1;              // the step the writer is saving, or -1
  int64_t checkpoints_written_ = 0;
  bool stopping_writer_ = false;
  ScheduleService* schedule_ = nullptr;
  std::thread writer_;
  std::unique_ptr<ControlServer> server_;
  std::unique_ptr<HttpStatusServer> http_;
};

}  // namespace dptrain
