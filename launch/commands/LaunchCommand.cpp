// `dptrain launch -n N CONFIG`: a supervised job that restarts from checkpoints when a worker dies.
#include <cstdio>

#include "launch/ArgParser.h"
#include "launch/Supervisor.h"
#include "launch/commands/Commands.h"
#include "models/core/Error.h"
#include "models/kernels/KernelBackend.h"
#include "models/kernels/cuda/CudaBackend.h"

namespace dptrain {

int launch_command(const Args& raw) {
  Args args;
  for (const auto& a : raw) args.push_back(a == "-n" ? "--ranks" : a);
  ArgParser p("dptrain launch",
              "Runs a training job under a supervisor: it starts the coordinator and N workers, and restarts the job\n"
              "from the latest complete checkpoint when a worker dies (non-zero exit, signal, lost heartbeats).\n"
              "SIGUSR1/SIGTERM: the workers checkpoint at the next step and the job exits 75 (requeue); running\n"
              "the same command again continues from there.");
  p.positional("CONFIG", "the run's TOML config")
      .option("ranks", "N", "number of ranks (also -n)", "1")
      .option("launcher", "NAME", "mpirun, srun (inside a SLURM allocation) or local (one process)", "mpirun")
      .option("max-restarts", "R", "restarts after failures before giving up (exit code 3)", "3")
      .option("gpus", "all", "one rank per visible GPU on this machine")
      .repeated("set", "KEY=VALUE", "override a config key in every worker")
      .repeated("launcher-arg", "ARG", "an extra argument for mpirun/srun, e.g. --launcher-arg=--hostfile=hosts")
      .epilog(
          "Exit codes: 0 done, 75 stopped on request after a checkpoint (requeue), 2 bad input, 3 failed after "
          "the allowed restarts.");
  if (!p.parse(args)) return 0;
  SupervisorOptions o;
  o.ranks = static_cast<int>(p.get_int("ranks"));
  o.launcher = p.get("launcher");
  o.max_restarts = static_cast<int>(p.get_int("max-restarts"));
  o.config_path = p.get("CONFIG");
  o.overrides = p.all("set");
  o.launcher_args = p.all("launcher-arg");
  if (p.has("gpus")) {
    if (p.get("gpus") != "all") fail_input("dptrain launch: --gpus takes 'all'");
    if (!cuda_available()) fail_input("dptrain launch: --gpus all, but no CUDA device is usable in this build/machine");
    if (!p.has("ranks")) o.ranks = cuda_devices();
    o.overrides.push_back("device=\"cuda\"");
  }
  ConfigNode root = ConfigNode::parse_file(o.config_path);
  for (const auto& s : o.overrides) root.apply_override(s);
  TrainConfig config = read_train_config(root, o.config_path);
  Supervisor supervisor(o, config);
  return supervisor.run();
}

}  // namespace dptrain
