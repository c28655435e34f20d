// The process-wide "stop at the next step boundary" request: set by SIGUSR1/SIGTERM (SLURM's
// warning before a time limit or pre-emption) or by the coordinator, read by the step loop, which
// agrees on it with the other ranks through the gradient all-reduce's control lane.
#pragma once

#include <cstdint>
#include <string>

namespace dptrain {

// Exit code of a run that stopped on request after writing its checkpoint: the job should be
// requeued (EX_TEMPFAIL, "try again later").
constexpr int requeue_exit_code = 75;

void request_stop();  // async-signal-safe
bool stop_requested();
void clear_stop_request();
// Makes SIGUSR1 and SIGTERM request a stop instead of killing the process.
void install_stop_signal_handlers();

// When the job first asked to stop. Each step posts this rank's request in the all-reduce's
// control lane and reads back the sum, so every rank stops after the same step even when the
// signal reached the ranks at different times (mpirun forwards it one rank after another).
class StopSighting {
 public:
  // Before step `step`'s all-reduce: the value this rank posts.
  float post(int64_t step);
  // After it, with the summed lane: true from the first step in which any rank asked.
  bool agree(int64_t step, float lane);
  bool agreed() const { return agreed_ >= 0; }
  // What rank 0 prints after checkpointing step `stopped_after`.
  std::string requeue_message(int64_t stopped_after) const;

 private:
  int64_t here_ = -1;    // the step before which this rank saw the request
  int64_t agreed_ = -1;  // the first step whose control lane carried a request
};

}  // namespace dptrain
