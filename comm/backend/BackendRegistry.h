// Constructors of the optional backends. CMake compiles the real one (backend/mpi, backend/nccl)
// when its library is found and backend/Missing*.cpp otherwise, so no #ifdef reaches shared code.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "comm/Communicator.h"
#include "comm/RankEnvironment.h"

namespace dptrain {

// The part of the MPI backend's watchdog another backend can borrow: the NCCL backend enters
// every collective here too, so that on a timeout it names the ranks that never arrived.
class CollectiveWatch {
 public:
  virtual ~CollectiveWatch() = default;
  // Records entry into the next collective (at the communicator's current operation and step)
  // and tells the other ranks; returns its sequence number.
  virtual uint64_t enter() = 0;
  // The ranks that have not announced collective `sequence`, as "rank 2 (last seen at step 14)"
  // or "ranks 1 (...), 3 (...)"; empty when every rank arrived.
  virtual std::string missing_ranks(uint64_t sequence) = 0;
};

bool mpi_backend_compiled();
// The MPI communicator also implements CollectiveWatch.
std::unique_ptr<Communicator> make_mpi_communicator(double timeout_s);
bool nccl_backend_compiled();
// TCP collectives through Gloo for ranks a torchrun-style or srun --mpi=none launch started.
bool gloo_backend_compiled();
std::unique_ptr<Communicator> make_gloo_communicator(const RankEnvironment& env, double timeout_s);
std::unique_ptr<Communicator> make_nccl_communicator(double timeout_s);

}  // namespace dptrain
