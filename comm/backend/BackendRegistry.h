// Constructors of the optional backends. CMake compiles the real one (backend/mpi, backend/nccl)
// when its library is found and backend/Missing*.cpp otherwise, so no #ifdef reaches shared code.
#pragma once

#include <memory>

#include "comm/Communicator.h"

namespace dptrain {

bool mpi_backend_compiled();
std::unique_ptr<Communicator> make_mpi_communicator(double timeout_s);
bool nccl_backend_compiled();
std::unique_ptr<Communicator> make_nccl_communicator(double timeout_s);

}  // namespace dptrain
