// Main of the MPI test binary: one MPI communicator for the whole run (tests reach it through
// mpi_comm()), Catch2 on every rank, and a non-zero exit on any rank failing any test.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "comm/Communicator.h"
#include "support/MpiTestSupport.h"

namespace dptrain::test {
namespace {
Communicator* g_comm = nullptr;
}
Communicator& mpi_comm() { return *g_comm; }
}  // namespace dptrain::test

int main(int argc, char** argv) {
  auto comm = dptrain::make_communicator("mpi", 120.0);
  dptrain::test::g_comm = comm.get();
  Catch::Session session;
  int rc = session.applyCommandLine(argc, argv);
  if (rc == 0) rc = session.run();
  // Every rank must agree on the outcome, so a failure on one rank fails the CTest test.
  double failed = rc != 0 ? 1.0 : 0.0;
  comm->allreduce_max(&failed, 1);
  dptrain::test::g_comm = nullptr;
  comm.reset();
  return failed > 0 ? 1 : 0;
}
