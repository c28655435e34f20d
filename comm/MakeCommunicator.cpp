// The one place a communicator backend is chosen.
#include <cstdlib>

#include "comm/Communicator.h"
#include "comm/backend/BackendRegistry.h"
#include "comm/backend/local/LocalCommunicator.h"
#include "models/core/Error.h"

namespace dptrain {

bool launched_as_multiple_ranks() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS", "MPI_LOCALNRANKS"}) {
    const char* v = std::getenv(var);
    if (v && std::atoi(v) > 1) return true;
  }
  return false;
}

std::unique_ptr<Communicator> make_communicator(const std::string& backend, double timeout_s, Device model_device) {
  std::string b = backend;
  if (b == "auto" && launched_as_multiple_ranks()) {
    if (model_device == Device::cuda && nccl_backend_compiled() && mpi_backend_compiled())
      b = "nccl";
    else if (mpi_backend_compiled())
      b = "mpi";
  }
  if (b == "auto") b = "local";
  if (b == "auto" || b == "local") {
    if (backend == "local" && launched_as_multiple_ranks())
      fail_input("comm.backend = \"local\" but this process is one of several ranks; use \"mpi\" or \"auto\"");
    if (launched_as_multiple_ranks() && !mpi_backend_compiled())
      fail_input("started as one of several ranks, but this dptrain was built without MPI");
    return std::make_unique<LocalCommunicator>();
  }
  if (b == "mpi") return make_mpi_communicator(timeout_s);
  if (b == "nccl") return make_nccl_communicator(timeout_s);
  fail_input("unknown comm.backend '" + backend + "'; valid: auto, local, mpi, nccl");
}

}  // namespace dptrain
