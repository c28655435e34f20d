// A worker's link to the coordinator: registration and heartbeats (a background thread reporting
// the current step), rank 0's metrics, and checkpoints — at a checkpoint step the rank copies its
// 1/N slice of every flat buffer into a staging buffer and returns to training while a sender
// thread streams the slices; the coordinator writes the file and acknowledges it. A stop request
// from the coordinator raises the process-wide stop request.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "comm/control/ControlClient.h"
#include "models/core/Device.h"
#include "storage/checkpoint/CheckpointState.h"

namespace dptrain {

struct CoordinatorEndpoint {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string token;
  // From DPTRAIN_COORDINATOR=host:port and DPTRAIN_JOB_TOKEN; false when they are not set.
  static bool from_environment(CoordinatorEndpoint& out);
};

class CoordinatorClient {
 public:
  CoordinatorClient(const CoordinatorEndpoint& endpoint, int rank, int world, double heartbeat_interval_s);
  ~CoordinatorClient();
  CoordinatorClient(const CoordinatorClient&) = delete;
  CoordinatorClient& operator=(const CoordinatorClient&) = delete;

  void set_progress(int64_t step, double samples_per_s);
  void report_metrics(int64_t step, int64_t epoch, double loss, double accuracy, double samples_per_s, double lr,
                      const std::string& cpu_engines = "");

  // Streams this rank's share of a checkpoint: `meta` describes it (flats sized, data not held);
  // flats[i] points at flat buffer i on `device`. Returns once the share is staged; waits first if
  // the previous checkpoint is still being sent.
  void stage_checkpoint(const CheckpointState& meta, const std::vector<const float*>& flats, Device device);
  // Waits until the coordinator has written the checkpoint of `step`; throws a peer error naming
  // what went wrong (write failed, coordinator lost, timeout).
  std::string wait_checkpoint(int64_t step, double timeout_s);

  void send_schedule(const std::vector<uint8_t>& payload);
  // The next schedule frame from the coordinator (waits up to timeout_s; throws on timeout).
  std::vector<uint8_t> receive_schedule(double timeout_s);

 private:
  struct Job {
    int64_t step;
    std::vector<uint8_t> begin;
    std::vector<std::pair<int64_t, int64_t>> ranges;  // per flat: the slice [begin, end)
  };
  void on_frame(FrameType type, ByteReader& r);
  void heartbeat_loop(double interval_s);
  void send_loop();

  int rank_, world_;
  std::unique_ptr<ControlClient> client_;
  std::atomic<int64_t> step_{-1};
  std::atomic<double> samples_per_s_{0.0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool closing_ = false;
  std::unique_ptr<Job> job_;  // staged, not yet fully sent
  std::vector<float> staging_;
  std::map<int64_t, std::pair<bool, std::string>> done_;
  std::deque<std::vector<uint8_t>> schedule_inbox_;
  std::string send_error_;
  std::thread heartbeat_, sender_;
};

}  // namespace dptrain
