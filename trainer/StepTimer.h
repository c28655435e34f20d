// Where each training step's time goes on this rank (docs/observability.md): waiting for its
// batch (data), forward and backward (compute: an adversarial attack and a distillation teacher
// included), waiting for the gradient all-reduce once backward is done (allreduce), and the
// optimizer update (optimizer). Host clocks: on a GPU a phase times the host's queueing unless it
// waits for the device. Optionally keeps every phase as a trace event, for `--trace`.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace dptrain {

class Communicator;

class StepTimer {
 public:
  enum Phase { data, compute, allreduce, optimizer, num_phases };
  static const char* name(Phase p);

  // Keeps up to `max_events` phases for a trace (0: none, the default).
  void keep_trace(size_t max_events) { max_events_ = max_events; }
  // The step begins now.
  void begin(int64_t step);
  // Phase `p` ran from the last mark (or begin) until now.
  void mark(Phase p);
  // Seconds per phase since the last take(), and the steps begun since.
  void take(double (&seconds)[num_phases], int64_t& steps);

  // Gathers every rank's trace events (a collective) and, on rank 0, writes them to `path` as
  // Chrome Trace Event JSON: one track per rank, wall-clock microseconds (Perfetto, chrome://tracing).
  void write_trace(Communicator& comm, const std::string& path) const;

 private:
  using Clock = std::chrono::system_clock;  // wall time: ranks on several hosts line up
  struct Event {
    int64_t step;
    Phase phase;
    int64_t begin_us, end_us;
  };
  Clock::time_point last_;
  int64_t step_ = 0, steps_ = 0;
  double seconds_[num_phases] = {};
  size_t max_events_ = 0;
  std::vector<Event> events_;
};

}  // namespace dptrain
