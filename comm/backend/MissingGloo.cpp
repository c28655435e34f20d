// Built when Gloo (libgloo-dev) is absent: ranks started without MPI get a clear error.
#include "comm/backend/BackendRegistry.h"
#include "models/core/Error.h"

namespace dptrain {

bool gloo_backend_compiled() { return false; }
std::unique_ptr<Communicator> make_gloo_communicator(const RankEnvironment& env, double) {
  fail_input("started as rank " + std::to_string(env.rank) + " of " + std::to_string(env.world) + " by " + env.source +
             "'s variables, but this dptrain was built without Gloo (scripts/setup installs libgloo-dev)");
}

}  // namespace dptrain
