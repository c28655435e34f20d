#include "support/MpiTestSupport.h"

#include <cstring>

namespace dptrain::test {

SharedTempDir::SharedTempDir(Communicator& comm) : comm_(comm) {
  char buf[512] = {};
  if (comm.rank() == 0) {
    owned_ = std::make_unique<TempDir>();
    std::strncpy(buf, owned_->path().c_str(), sizeof buf - 1);
  }
  comm.broadcast(buf, sizeof buf, 0);
  path_ = buf;
}

SharedTempDir::~SharedTempDir() {
  try {
    comm_.barrier();  // nobody still reads from it when rank 0 removes it
  } catch (const std::exception&) {
    // A failed test already reported the collective mismatch; removal proceeds.
  }
}

}  // namespace dptrain::test
