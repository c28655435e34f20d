// The one error type of dptrain and the check macros every C API call goes through.
// Library code throws; only the CLI turns an Error into a line and an exit code, so the kind of
// failure (bad input, a lost peer, a bug) travels with the exception rather than as status codes.
#pragma once

#include <stdexcept>
#include <string>

namespace dptrain {

enum class ErrorKind {
  internal = 1,   // anything else: exit code 1
  bad_input = 2,  // bad config, data file, checkpoint or command line: exit code 2
  peer = 3,       // a peer failed, stalled or disagreed: exit code 3
  diverged = 4,   // the summed gradient stopped being finite (train.nonfinite = "stop"): exit code 4
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }
  int exit_code() const { return static_cast<int>(kind_); }

 private:
  ErrorKind kind_;
};

// Throws a bad-input error (exit code 2); the message must name the file, key or dataset.
[[noreturn]] void fail_input(const std::string& message);
// Throws an internal error (exit code 1).
[[noreturn]] void fail_internal(const std::string& message);

// The rank this process reports in error messages; -1 until a communicator sets it.
void set_error_rank(int rank);
int error_rank();

// "file.cpp:123 (rank 2): " prefix used by the check macros.
std::string error_origin(const char* file, int line);

}  // namespace dptrain

// Throws an internal error when a condition the code relies on does not hold.
#define DPT_ASSERT(cond, msg)                                                        \
  do {                                                                               \
    if (!(cond))                                                                     \
      ::dptrain::fail_internal(::dptrain::error_origin(__FILE__, __LINE__) +         \
                               "assertion '" #cond "' failed: " + std::string(msg)); \
  } while (0)
