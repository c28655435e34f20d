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

// What rank 0 prints when a run stops on request: `seen_step` is the step before which this
// process saw the request (-1 when another rank did), `step` the step it checkpointed after.
std::string requeue_message(int64_t seen_step, int64_t step);

void request_stop();  // async-signal-safe
bool stop_requested();
void clear_stop_request();
// Makes SIGUSR1 and SIGTERM request a stop instead of killing the process.
void install_stop_signal_handlers();

}  // namespace dptrain
