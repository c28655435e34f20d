// Built when MPI is absent: asking for the mpi backend is a clear configuration error.
#include "comm/backend/BackendRegistry.h"
#include "models/core/Error.h"

namespace dptrain {

bool mpi_backend_compiled() { return false; }
std::unique_ptr<Communicator> make_mpi_communicator(double) {
  fail_input("comm.backend = \"mpi\" but this dptrain was built without MPI (install libopenmpi-dev and rebuild)");
}

}  // namespace dptrain
