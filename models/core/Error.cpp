#include "models/core/Error.h"

#include <atomic>
#include <cstring>

namespace dptrain {

namespace {
std::atomic<int> g_rank{-1};
}

void fail_input(const std::string& message) { throw Error(ErrorKind::bad_input, message); }
void fail_internal(const std::string& message) { throw Error(ErrorKind::internal, message); }

void set_error_rank(int rank) { g_rank.store(rank); }
int error_rank() { return g_rank.load(); }

std::string error_origin(const char* file, int line) {
  const char* base = std::strrchr(file, '/');
  std::string out = std::string(base ? base + 1 : file) + ":" + std::to_string(line);
  if (int r = g_rank.load(); r >= 0) out += " (rank " + std::to_string(r) + ")";
  return out + ": ";
}

}  // namespace dptrain
