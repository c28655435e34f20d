// What the MPI tests share: the process's MPI communicator (created by tests/mpi_main.cpp) and a
// temporary directory whose path rank 0 chooses and broadcasts.
#pragma once

#include <memory>
#include <string>

#include "comm/Communicator.h"
#include "support/TestSupport.h"

namespace dptrain::test {

Communicator& mpi_comm();

// A directory visible to every rank (same machine): rank 0 creates it; removed by rank 0 at the end.
class SharedTempDir {
 public:
  explicit SharedTempDir(Communicator& comm);
  ~SharedTempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  Communicator& comm_;
  std::unique_ptr<TempDir> owned_;
  std::string path_;
};

}  // namespace dptrain::test
