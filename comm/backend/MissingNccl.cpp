// Built when NCCL or CUDA is absent: asking for the nccl backend is a clear configuration error.
#include "comm/backend/BackendRegistry.h"
#include "models/core/Error.h"

namespace dptrain {

bool nccl_backend_compiled() { return false; }
std::unique_ptr<Communicator> make_nccl_communicator(double) {
  fail_input("comm.backend = \"nccl\" but this dptrain was built without CUDA and NCCL");
}

}  // namespace dptrain
