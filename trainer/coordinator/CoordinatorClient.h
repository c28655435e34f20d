// A worker's link to the coordinator: registration and heartbeats (a background thread reporting
// the current step, which also forwards rank 0's logged records for the dashboard), rank 0's
// metrics, and checkpoints — at a checkpoint step the rank's 1/N slice
// of every flat buffer is copied into a staging buffer and a sender thread streams the slices
// while the rank trains on; the coordinator writes the file and acknowledges it. Flats that stay
// unchanged until the next parameter update (parameters, optimizer states) are copied by the
// sender thread while the next forward and backward run; the trainer calls wait_staged() before
// it updates them, so the snapshot is the checkpoint step's state and the step itself no longer
// waits for the copy. A stop request
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
  // Queues one logged record (a JSON object, JsonRecord::str) for the coordinator's history; the
  // heartbeat thread sends it, so the caller never waits on the network. Never fails: with the
  // coordinator gone, or more than `max_queued_records` waiting, records are dropped.
  void report_record(std::string json);
  static constexpr size_t max_queued_records = 1024;

  // Streams this rank's share of a checkpoint: `meta` describes it (flats sized, data not held);
  // flats[i] points at flat buffer i on `device`. Returns once the share is staged; waits first if
  // the previous checkpoint is still being sent.
  // `until_update[i]` (optional; false where absent): flat i does not change before the next
  // wait_staged(), so on the CPU it is copied in the background.
  void stage_checkpoint(const CheckpointState& meta, const std::vector<const float*>& flats, Device device,
                        const std::vector<bool>& until_update = {});
  // Returns once every flat of the staged checkpoint is copied: call before changing a flat that
  // was staged `until_update` (an optimizer step, restoring the best parameters).
  void wait_staged();
  // Waits until the coordinator has written the checkpoint of `step`; throws a peer error naming
  // what went wrong (write failed, coordinator lost, timeout).
  std::string wait_checkpoint(int64_t step, double timeout_s);
  // Sends out a staged checkpoint, stops the threads and, when `goodbye` (this rank's part of the
  // job ended cleanly: done, or stopped on request), tells the coordinator so, so that it does
  // not count the closing connection as a lost rank. The destructor closes without a goodbye.
  void close(bool goodbye);
  // The step of the last checkpoint share sent out whole, or -1.
  int64_t last_sent_step() const { return sent_step_.load(); }

  void send_schedule(const std::vector<uint8_t>& payload);
  // The next schedule frame from the coordinator (waits up to timeout_s; throws on timeout).
  std::vector<uint8_t> receive_schedule(double timeout_s);

 private:
  struct Job {
    int64_t step;
    std::vector<uint8_t> begin;
    std::vector<std::pair<int64_t, int64_t>> ranges;  // per flat: the slice [begin, end)
    std::vector<const float*> deferred;               // per flat: where to copy it from later, or null
  };
  void copy_deferred(Job& job);
  void on_frame(FrameType type, ByteReader& r);
  void heartbeat_loop(double interval_s);
  void send_loop();

  int rank_, world_;
  std::unique_ptr<ControlClient> client_;
  std::atomic<int64_t> step_{-1};
  std::atomic<int64_t> sent_step_{-1};
  std::atomic<double> samples_per_s_{0.0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool closing_ = false;
  std::unique_ptr<Job> job_;  // staged, not yet fully sent
  std::vector<float> staging_;
  bool copying_ = false;  // a staged job's deferred flats are not yet in staging_
  std::map<int64_t, std::pair<bool, std::string>> done_;
  std::deque<std::vector<uint8_t>> schedule_inbox_;
  std::deque<std::string> records_;  // logged records not yet sent (report_record)
  std::string send_error_;
  std::thread heartbeat_, sender_;
};

}  // namespace dptrain
