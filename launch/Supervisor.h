// `dptrain launch`: runs the coordinator, starts the workers through a launcher (mpirun, srun, or
// one local process), and when the job fails — a worker killed, a non-zero exit, heartbeats lost
// — ends what is left of it and starts it again from the latest complete checkpoint, up to
// max_restarts times, saying why each time; with --min-ranks, on the hosts that still answer.
// SIGUSR1/SIGTERM ask the workers (through the coordinator) to checkpoint and exit with the
// requeue code, which the supervisor passes on.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "launch/HostList.h"
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
  std::string hostfile;                    // mpirun's hostfile, or empty
  int min_ranks = 0;                       // restart on fewer ranks, down to this many (0: ranks)
  double probe_timeout_s = 30.0;           // how long a host may take to answer a probe
  double lost_grace_s = 10.0;              // a rank failed: how long the launcher has to end the job
};

class Supervisor {
 public:
  Supervisor(const SupervisorOptions& options, const TrainConfig& config);
  // Runs the job to its end; returns the exit code (0, 75 requeue, 2 bad input, 3 gave up, 4 diverged).
  int run();

 private:
  std::vector<std::string> worker_command() const;
  // After a failure, with --min-ranks below the ranks now running: starts a one-process mpirun on
  // each host in use and drops the hosts that do not answer; returns false (after saying why)
  // when fewer than min_ranks ranks would remain.
  bool drop_lost_hosts();

  SupervisorOptions o_;
  TrainConfig config_;
  int ranks_ = 0;                  // the ranks the next start runs (fewer after hosts are lost)
  std::optional<HostList> hosts_;  // the hostfile's hosts that remain (none without --hostfile)
  std::string hostfile_;           // the hostfile the next start passes to mpirun
};

}  // namespace dptrain
