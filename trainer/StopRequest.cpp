#include "trainer/StopRequest.h"

#include <signal.h>

#include <atomic>

namespace dptrain {

namespace {
std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");
extern "C" void on_stop_signal(int) { g_stop.store(true); }
}  // namespace

void request_stop() { g_stop.store(true); }
bool stop_requested() { return g_stop.load(std::memory_order_relaxed); }
void clear_stop_request() { g_stop.store(false); }

void install_stop_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

float StopSighting::post(int64_t step) {
  if (!stop_requested()) return 0.0f;
  if (here_ < 0) here_ = step;
  return 1.0f;
}

bool StopSighting::agree(int64_t step, float lane) {
  if (lane > 0.0f && agreed_ < 0) agreed_ = step;
  return agreed();
}

std::string StopSighting::requeue_message(int64_t stopped_after) const {
  const int64_t seen = here_ >= 0 && here_ <= agreed_ ? here_ : agreed_;
  return "stop requested before step " + std::to_string(seen) + (seen == here_ ? "" : " (on another rank)") +
         "; stopped after step " + std::to_string(stopped_after) + " and checkpointed; exit code " +
         std::to_string(requeue_exit_code) + " asks for a requeue";
}

}  // namespace dptrain
