// Catch2's main for the single-process test binary (compiled once: it is the slow part). Tests
// that start mpirun need Open MPI's consent to run as root (CI runs as root); it is given here,
// for the processes the tests start, rather than asked of the user's shell.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdlib>

int main(int argc, char** argv) {
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  return Catch::Session().run(argc, argv);
}
