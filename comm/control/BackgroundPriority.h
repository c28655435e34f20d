// Threads that move checkpoints behind training (the client's sender, the coordinator's server and writer)
// run at a lower scheduling priority, so that on a busy node the training step wins the CPU and a
// checkpoint only delays itself. Linux gives each thread its own nice value.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

namespace dptrain {

inline void lower_this_thread_priority() {
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);  // best effort: failure changes nothing
}

}  // namespace dptrain
