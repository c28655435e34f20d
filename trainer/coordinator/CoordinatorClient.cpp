#include "trainer/coordinator/CoordinatorClient.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>

#include "comm/control/BackgroundPriority.h"
#include "models/core/Error.h"
#include "models/core/StreamingCopy.h"
#include "models/kernels/KernelBackend.h"
#include "trainer/StopRequest.h"
#include "trainer/coordinator/CheckpointWire.h"
#include "trainer/coordinator/MetricsHistory.h"

namespace dptrain {

namespace {
// Slices go out in frames of at most this many floats (16 MiB), well under the bulk bound.
constexpr int64_t floats_per_frame = int64_t{4} << 20;
}  // namespace

bool CoordinatorEndpoint::from_environment(CoordinatorEndpoint& out) {
  const char* where = std::getenv("DPTRAIN_COORDINATOR");
  const char* token = std::getenv("DPTRAIN_JOB_TOKEN");
  if (!where || !*where) return false;
  std::string w = where;
  auto colon = w.rfind(':');
  if (colon == std::string::npos) fail_input("DPTRAIN_COORDINATOR must be host:port, got '" + w + "'");
  out.host = w.substr(0, colon);
  out.port = static_cast<uint16_t>(std::atoi(w.c_str() + colon + 1));
  if (!token || !*token) fail_input("DPTRAIN_COORDINATOR is set but DPTRAIN_JOB_TOKEN is not");
  out.token = token;
  return true;
}

CoordinatorClient::CoordinatorClient(const CoordinatorEndpoint& endpoint, int rank, int world,
                                     double heartbeat_interval_s)
    : rank_(rank), world_(world) {
  HelloInfo hello;
  hello.rank = rank;
  hello.world = world;
  hello.pid = static_cast<int>(::getpid());
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  hello.host = host;
  client_ = std::make_unique<ControlClient>(endpoint.host, endpoint.port, endpoint.token, hello, 60.0,
                                            [this](FrameType type, ByteReader& r) { on_frame(type, r); });
  heartbeat_ = std::thread([this, heartbeat_interval_s] { heartbeat_loop(heartbeat_interval_s); });
  sender_ = std::thread([this] { send_loop(); });
}

CoordinatorClient::~CoordinatorClient() { close(false); }

void CoordinatorClient::close(bool goodbye) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
  }
  cv_.notify_all();
  if (sender_.joinable()) sender_.join();  // a staged checkpoint is sent out first
  if (heartbeat_.joinable()) heartbeat_.join();
  if (!client_) return;
  if (goodbye && client_->connected()) {
    try {
      client_->send(FrameType::goodbye, {});
    } catch (const std::exception&) {  // gone already: it counts this rank as lost, as it may
    }
  }
  client_.reset();
}

void CoordinatorClient::on_frame(FrameType type, ByteReader& r) {
  try {
    if (type == FrameType::stop) {
      request_stop();
      return;
    }
    if (type == FrameType::checkpoint_done) {
      int64_t step = r.i64();
      bool ok = r.u8() != 0;
      std::string message = r.str();
      std::lock_guard<std::mutex> lock(mu_);
      done_[step] = {ok, message};
      if (done_.size() > 64) done_.erase(done_.begin());
      cv_.notify_all();
      return;
    }
    if (type == FrameType::schedule) {
      std::vector<uint8_t> bytes(r.left());
      if (!bytes.empty()) std::memcpy(bytes.data(), r.take(bytes.size()), bytes.size());
      std::lock_guard<std::mutex> lock(mu_);
      schedule_inbox_.push_back(std::move(bytes));
      cv_.notify_all();
    }
  } catch (const ProtocolError&) {
    // A malformed frame from our own coordinator: ignore it rather than kill training.
  }
}

void CoordinatorClient::heartbeat_loop(double interval_s) {
  using Clock = std::chrono::steady_clock;
  const auto interval = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval_s));
  auto next_beat = Clock::now();
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    std::deque<std::string> records;
    records.swap(records_);
    const bool closing = closing_;
    lock.unlock();
    // Records first, also when closing: the last ones (the test result) are logged just before.
    // A record rides on a metrics frame with step -1 (numbers absent); see Coordinator::on_frame.
    for (const std::string& json : records) {
      if (!client_->connected()) break;
      ByteWriter w;
      w.i64(-1).i64(0).f64(0).f64(0).f64(0).f64(0).str("").str(json);
      try {
        client_->send(FrameType::metrics, w.bytes());
      } catch (const Error&) {
        break;
      }
    }
    if (closing) return;
    if (Clock::now() >= next_beat) {
      ByteWriter w;
      w.i64(step_.load()).f64(samples_per_s_.load());
      try {
        client_->send(FrameType::heartbeat, w.bytes());
      } catch (const Error&) {
        // The coordinator is gone; the next checkpoint or the collective watchdog reports it.
      }
      next_beat = Clock::now() + interval;
    }
    lock.lock();
    cv_.wait_until(lock, next_beat, [&] { return closing_ || !records_.empty(); });
  }
}

void CoordinatorClient::report_record(std::string json) {
  if (json.size() > max_record_bytes) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closing_) return;
    if (records_.size() >= max_queued_records) records_.pop_front();
    records_.push_back(std::move(json));
  }
  cv_.notify_all();
}

void CoordinatorClient::set_progress(int64_t step, double samples_per_s) {
  step_.store(step, std::memory_order_relaxed);
  samples_per_s_.store(samples_per_s, std::memory_order_relaxed);
}

void CoordinatorClient::report_metrics(int64_t step, int64_t epoch, double loss, double accuracy, double samples_per_s,
                                       double lr, const std::string& cpu_engines) {
  ByteWriter w;
  w.i64(step).i64(epoch).f64(loss).f64(accuracy).f64(samples_per_s).f64(lr).str(cpu_engines);
  try {
    client_->send(FrameType::metrics, w.bytes());
  } catch (const Error&) {
  }
}

void CoordinatorClient::stage_checkpoint(const CheckpointState& meta, const std::vector<const float*>& flats,
                                         Device device, const std::vector<bool>& until_update) {
  DPT_ASSERT(flats.size() == meta.flats.size(), "one pointer per flat buffer");
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !job_ || !send_error_.empty(); });  // the previous one is still going out
  if (!send_error_.empty()) throw Error(ErrorKind::peer, "checkpoint streaming failed: " + send_error_);
  auto job = std::make_unique<Job>();
  job->step = meta.step;
  ByteWriter w;
  w.i64(meta.step).i32(world_);
  encode_checkpoint_meta(meta, w);
  job->begin = w.take();
  int64_t total = 0;
  for (const FlatEntry& f : meta.flats) {
    auto range = checkpoint_slice(f.length(), rank_, world_);
    job->ranges.push_back(range);
    total += range.second - range.first;
  }
  staging_.resize(static_cast<size_t>(total));  // grows once; later checkpoints reuse it
  job->deferred.assign(flats.size(), nullptr);
  int64_t at = 0;
  for (size_t i = 0; i < flats.size(); ++i) {
    auto [b, e] = job->ranges[i];
    const bool later = device == Device::cpu && i < until_update.size() && until_update[i];
    if (later) {
      job->deferred[i] = flats[i] + b;
      copying_ = true;
    } else if (device == Device::cpu)
      streaming_copy(staging_.data() + at, flats[i] + b, e - b);
    else
      copy_memory(staging_.data() + at, Device::cpu, flats[i] + b, device, static_cast<size_t>(e - b) * sizeof(float));
    at += e - b;
  }
  job_ = std::move(job);
  cv_.notify_all();
}

void CoordinatorClient::copy_deferred(Job& job) {
  int64_t at = 0;
  for (size_t i = 0; i < job.ranges.size(); ++i) {
    auto [b, e] = job.ranges[i];
    if (job.deferred[i]) streaming_copy(staging_.data() + at, job.deferred[i], e - b);
    at += e - b;
  }
}

void CoordinatorClient::wait_staged() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !copying_; });
}

void CoordinatorClient::send_loop() {
  lower_this_thread_priority();
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return closing_ || job_; });
    if (!job_) return;
    Job& job = *job_;
    const bool copy = copying_;
    lock.unlock();
    if (copy) {
      copy_deferred(job);
      lock.lock();
      copying_ = false;
      cv_.notify_all();
      lock.unlock();
    }
    try {
      client_->send(FrameType::checkpoint_begin, job.begin);
      int64_t at = 0;
      ByteWriter w;
      for (size_t g = 0; g < job.ranges.size(); ++g) {
        auto [b, e] = job.ranges[g];
        for (int64_t off = b; off < e; off += floats_per_frame) {
          int64_t n = std::min(floats_per_frame, e - off);
          w = ByteWriter();
          w.reserve(static_cast<size_t>(n) * 4 + 32);
          w.i64(job.step).u32(static_cast<uint32_t>(g)).i64(off).u64(static_cast<uint64_t>(n));
          w.raw(staging_.data() + at + (off - b), static_cast<size_t>(n) * sizeof(float));
          client_->send(FrameType::checkpoint_slice, w.bytes());
        }
        at += e - b;
      }
      ByteWriter end;
      end.i64(job.step);
      client_->send(FrameType::checkpoint_end, end.bytes());
      sent_step_ = job.step;
      lock.lock();
    } catch (const std::exception& e) {
      lock.lock();
      send_error_ = e.what();
    }
    job_.reset();
    cv_.notify_all();
  }
}

std::string CoordinatorClient::wait_checkpoint(int64_t step, double timeout_s) {
  std::unique_lock<std::mutex> lock(mu_);
  bool got = cv_.wait_for(lock, std::chrono::duration<double>(timeout_s),
                          [&] { return done_.count(step) || !send_error_.empty() || !client_->connected(); });
  if (done_.count(step)) {
    auto [ok, message] = done_[step];
    if (!ok)
      throw Error(ErrorKind::internal,
                  "the coordinator could not write the checkpoint of step " + std::to_string(step) + ": " + message);
    return message;
  }
  if (!send_error_.empty()) throw Error(ErrorKind::peer, "checkpoint streaming failed: " + send_error_);
  if (!got)
    throw Error(ErrorKind::peer, "the checkpoint of step " + std::to_string(step) + " was not confirmed within " +
                                     std::to_string(static_cast<int>(timeout_s)) + " s");
  throw Error(ErrorKind::peer,
              "lost the coordinator before the checkpoint of step " + std::to_string(step) + " was confirmed");
}

void CoordinatorClient::send_schedule(const std::vector<uint8_t>& payload) {
  client_->send(FrameType::schedule, payload);
}

std::vector<uint8_t> CoordinatorClient::receive_schedule(double timeout_s) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, std::chrono::duration<double>(timeout_s),
                    [&] { return !schedule_inbox_.empty() || !client_->connected(); }) ||
      schedule_inbox_.empty())
    throw Error(ErrorKind::peer, "no schedule decision from the coordinator within " +
                                     std::to_string(static_cast<int>(timeout_s)) + " s");
  auto out = std::move(schedule_inbox_.front());
  schedule_inbox_.pop_front();
  return out;
}

}  // namespace dptrain
