// Helpers shared by the tests: a fresh temporary directory per test, running the dptrain CLI and
// capturing its exit code and output, and small datasets written in the dataset layout.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "storage/dataset/DatasetFile.h"

namespace dptrain::test {

// A directory under $TMPDIR removed when the object goes away.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Names of the entries in the directory (for "nothing written next to it" checks).
  std::vector<std::string> entries() const;

 private:
  std::string path_;
};

struct CliResult {
  int exit_code = -1;
  std::string out, err;
};

// Runs the dptrain binary with arguments (no shell), in `cwd` if given; captures output.
CliResult run_cli(const std::vector<std::string>& args, const std::string& cwd = "", double timeout_s = 300);
// Runs any program the same way.
CliResult run_program(const std::vector<std::string>& argv, const std::string& cwd = "", double timeout_s = 300);

// A program running in the background (output discarded), killed with SIGKILL if still running
// when the object goes away.
class BackgroundProcess {
 public:
  // Output goes to `output_file` when given (stdout and stderr), else nowhere.
  BackgroundProcess(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env = {},
                    const std::string& output_file = "");
  ~BackgroundProcess();
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;
  int pid() const { return pid_; }
  void kill(int signal);
  // True while the process has not exited (reaps it when it has, without blocking).
  bool running();
  // Waits for the exit and returns the exit code (128 + signal when killed).
  int wait();

 private:
  int pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

// Every float dataset of an HDF5 file by path ("params/00_dense/weight"), for bitwise comparisons.
std::map<std::string, std::vector<float>> read_float_datasets(const std::string& path);

// GET http://127.0.0.1:PORT/PATH with curl (5 s at most); "" when it fails.
std::string http_get(int port, const std::string& path);
// The port of "status at http://HOST:PORT/status" in a job's output, or -1 before it is printed.
int status_port(const std::string& log);

// The newest checkpoint a run wrote under OUT_DIR/checkpoints; throws when there is none.
std::string newest_checkpoint(const std::string& out_dir);

// Starts `dptrain train CONFIG --set out_dir=OUT_DIR`, holds rank 0 at `kill_step` (the stall
// test hook), waits up to a minute for the checkpoint of `checkpoint_step` to be published, then
// kills it with SIGKILL; returns its wait status as BackgroundProcess::wait() does.
int train_until_killed(const std::string& config, const std::string& out_dir, int64_t kill_step,
                       int64_t checkpoint_step);

std::string read_text(const std::string& path);
void write_text(const std::string& path, const std::string& text);

// Path of the dptrain binary and the source tree.
std::string dptrain_binary();
std::string source_dir();

// A dataset of `rows` rows of `dim` features (feature j of row i = sin(i + j)) with labels i % classes.
DatasetContents small_classification(int64_t rows, int64_t dim, int64_t classes);

// About `bytes` bytes of English-like text (words from a small vocabulary in sentences and lines,
// chosen by a seeded Philox stream): language-model data for tests.
std::string test_text(int64_t bytes, uint64_t seed);

}  // namespace dptrain::test
