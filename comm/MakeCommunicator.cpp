// The one place a communicator backend is chosen.
#include "comm/Communicator.h"
#include "comm/RankEnvironment.h"
#include "comm/backend/BackendRegistry.h"
#include "comm/backend/local/LocalCommunicator.h"
#include "models/core/Error.h"

namespace dptrain {

bool launched_as_multiple_ranks() {
  RankEnvironment env;
  return launched_by_mpi() || read_rank_environment(env);
}

std::unique_ptr<Communicator> make_communicator(const std::string& backend, double timeout_s, Device model_device) {
  const bool by_mpi = launched_by_mpi();
  RankEnvironment env;
  const bool by_variables = !by_mpi && read_rank_environment(env);
  std::string b = backend;
  if (b == "auto" && by_mpi) {
    if (model_device == Device::cuda && nccl_backend_compiled() && mpi_backend_compiled())
      b = "nccl";
    else if (mpi_backend_compiled())
      b = "mpi";
  }
  if (b == "auto" && by_variables)
    b = model_device == Device::cuda && nccl_backend_compiled() && gloo_backend_compiled() ? "nccl" : "gloo";
  if (b == "auto") b = "local";
  if (b == "local") {
    if (backend == "local" && (by_mpi || by_variables))
      fail_input("comm.backend = \"local\" but this process is one of several ranks; use \"auto\"");
    if (by_mpi && !mpi_backend_compiled())
      fail_input("started as one of several ranks by an MPI launcher, but this dptrain was built without MPI");
    return std::make_unique<LocalCommunicator>();
  }
  if (b == "mpi") return make_mpi_communicator(timeout_s);
  if (b == "nccl") return make_nccl_communicator(timeout_s);  // bootstraps over MPI or Gloo
  if (b == "gloo") {
    if (!by_variables)
      fail_input(by_mpi
                     ? "comm.backend = \"gloo\" but mpirun/srun started this process with MPI; use \"mpi\" or \"auto\""
                     : "comm.backend = \"gloo\" needs torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, "
                       "MASTER_PORT) or an srun task (SLURM_PROCID, SLURM_STEP_NUM_TASKS) describing several ranks");
    return make_gloo_communicator(env, timeout_s);
  }
  fail_input("unknown comm.backend '" + backend + "'; valid: auto, local, mpi, nccl, gloo");
}

}  // namespace dptrain
