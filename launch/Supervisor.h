// `dptrain launch`: runs the coordinator, starts the workers through a launcher (mpirun, srun, or
// one local process), and when the job fails — a worker killed, a non-zero exit, heartbeats lost
// — ends what is left of it and starts it again from the latest complete checkpoint, up to
// max_restarts times, saying why each time. SIGUSR1/SIGTERM ask the workers (through the
// coordinator) to checkpoint and exit with the requeue code, which the supervisor passes on.
#pragma once

#include <string>
#include <vector>

#include "trainer/TrainConfig.h"

namespace dptrain {

struct SupervisorOptions {
  int ranks = 1;
  std::string launcher = "mpirun";  // mpirun | srun | local
  int max_restarts = 3;
  std::string config_path;
  std::vector<std::string> overrides;      // --set values, passed to every worker
  std::vector<std::string> launcher_args;  // extra arguments for mpirun/srun
  double stop_grace_s = 600.0;             // after a stop request, how long the workers may take
};

class Supervisor {
 public:
  Supervisor(const SupervisorOptions& options, const TrainConfig& config);
  // Runs the job to its end; returns the exit code (0, 75 requeue, 2 bad input, 3 gave up, 4 diverged).
  int run();

 private:
  std::vector<std::string> worker_command() const;

  SupervisorOptions o_;
  TrainConfig config_;
};

}  // namespace dptrain
