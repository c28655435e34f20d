// `dptrain launch -n N CONFIG`: a supervised job that restarts from checkpoints when a worker dies.
#include <cstdio>
#include <cstdlib>

#include "comm/backend/BackendRegistry.h"
#include "launch/ArgParser.h"
#include "launch/Supervisor.h"
#include "launch/commands/Commands.h"
#include "models/core/Error.h"
#include "models/kernels/cuda/CudaBackend.h"

namespace dptrain {

namespace {

// --gpus all|N: one rank per GPU on this machine, each on the GPU its local rank picks, all-reducing
// over NCCL. Several ranks are started by mpirun (which shares NCCL's unique id); one GPU needs no MPI.
void apply_gpus(const std::string& value, bool ranks_given, bool launcher_given, SupervisorOptions& o) {
  const int visible = cuda_devices();
  int gpus = 0;
  if (value == "all") {
    gpus = visible;
  } else {
    char* end = nullptr;
    long n = std::strtol(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0' || n < 1 || n > 4096)
      fail_input("dptrain launch: --gpus takes 'all' or a number of GPUs (1 or more), got '" + value + "'");
    gpus = static_cast<int>(n);
  }
  if (visible == 0)
    fail_input(cuda_compiled() ? "dptrain launch: --gpus " + value + ", but no CUDA device is visible on this machine"
                               : "dptrain launch: --gpus " + value + ", but this dptrain was built without CUDA");
  if (gpus > visible)
    fail_input("dptrain launch: --gpus " + value + ", but only " + std::to_string(visible) + " GPU" +
               (visible > 1 ? "s are" : " is") + " visible on this machine");
  if (ranks_given && o.ranks != gpus)
    fail_input("dptrain launch: -n " + std::to_string(o.ranks) + " and --gpus " + value + " (" + std::to_string(gpus) +
               " GPU" + (gpus > 1 ? "s" : "") + ") disagree; give one of them");
  o.ranks = gpus;
  if (!launcher_given && gpus == 1 && !mpi_backend_compiled()) o.launcher = "local";
  if (gpus > 1 && !mpi_backend_compiled())
    fail_input("dptrain launch: --gpus " + value + " starts " + std::to_string(gpus) +
               " ranks through mpirun, and this dptrain was built without MPI");
  o.overrides.push_back("device=\"cuda\"");
  if (nccl_backend_compiled()) o.overrides.push_back("comm.backend=\"nccl\"");
}

}  // namespace

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
      .option("gpus", "all|N", "one rank per GPU on this machine: every visible GPU, or the first N")
      .option("hostfile", "FILE", "mpirun's hostfile (its hosts and slots)")
      .option("min-ranks", "M",
              "after a failure, drop the hosts that no longer answer and restart on the ranks that remain, "
              "down to M (needs --hostfile)")
      .repeated("set", "KEY=VALUE", "override a config key in every worker")
      .repeated("launcher-arg", "ARG", "an extra argument for mpirun/srun, e.g. --launcher-arg=--hostfile=hosts")
      .epilog(
          "Exit codes: 0 done, 75 stopped on request after a checkpoint (requeue), 2 bad input, 3 failed after "
          "the allowed restarts, 4 the run diverged (not restarted).");
  if (!p.parse(args)) return 0;
  SupervisorOptions o;
  o.ranks = static_cast<int>(p.get_int("ranks"));
  o.launcher = p.get("launcher");
  o.max_restarts = static_cast<int>(p.get_int("max-restarts"));
  o.config_path = p.get("CONFIG");
  o.overrides = p.all("set");
  o.launcher_args = p.all("launcher-arg");
  if (p.has("hostfile")) o.hostfile = p.get("hostfile");
  if (p.has("min-ranks")) o.min_ranks = static_cast<int>(p.get_int("min-ranks"));
  if (p.has("gpus")) apply_gpus(p.get("gpus"), p.has("ranks"), p.has("launcher"), o);
  ConfigNode root = ConfigNode::parse_file(o.config_path);
  for (const auto& s : o.overrides) root.apply_override(s);
  TrainConfig config = read_train_config(root, o.config_path);
  Supervisor supervisor(o, config);
  return supervisor.run();
}

}  // namespace dptrain
