#include "support/TestSupport.h"

#include "models/core/Philox.h"
#include "storage/checkpoint/CheckpointStore.h"
#include "storage/hdf5/H5.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace dptrain::test {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/dptrain-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::vector<std::string> TempDir::entries() const {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(path_)) out.push_back(e.path().filename().string());
  return out;
}

CliResult run_program(const std::vector<std::string>& argv, const std::string& cwd, double timeout_s) {
  int out_pipe[2], err_pipe[2];
  if (::pipe(out_pipe) || ::pipe(err_pipe)) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  posix_spawn_file_actions_addclose(&actions, out_pipe[0]);
  posix_spawn_file_actions_addclose(&actions, err_pipe[0]);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  CliResult r;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int open = 2;
  char buf[65536];
  while (open > 0) {
    int left = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count());
    if (left <= 0) {
      ::kill(pid, SIGKILL);
      break;
    }
    if (::poll(fds, 2, left) <= 0) continue;
    for (auto& f : fds) {
      if (f.fd < 0 || !(f.revents & (POLLIN | POLLHUP))) continue;
      ssize_t n = ::read(f.fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(f.fd);
        f.fd = -1;
        --open;
      } else {
        (f.fd == out_pipe[0] ? r.out : r.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

CliResult run_cli(const std::vector<std::string>& args, const std::string& cwd, double timeout_s) {
  std::vector<std::string> argv{dptrain_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, cwd, timeout_s);
}

BackgroundProcess::BackgroundProcess(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env,
                                     const std::string& output_file) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  for (const auto& e : extra_env) env_strings.push_back(e);
  std::vector<char*> envp, args;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const char* out = output_file.empty() ? "/dev/null" : output_file.c_str();
  posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid;
  int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  pid_ = pid;
}

BackgroundProcess::~BackgroundProcess() {
  if (!reaped_) {
    ::kill(pid_, SIGKILL);
    wait();
  }
}

void BackgroundProcess::kill(int signal) { ::kill(pid_, signal); }

bool BackgroundProcess::running() {
  if (reaped_) return false;
  if (::waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
  return !reaped_;
}

int BackgroundProcess::wait() {
  if (!reaped_) {
    ::waitpid(pid_, &status_, 0);
    reaped_ = true;
  }
  return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
}

namespace {
herr_t collect_float_dataset(hid_t file, const char* name, const H5O_info_t* info, void* out) {
  if (info->type != H5O_TYPE_DATASET) return 0;
  hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
  hid_t type = H5Dget_type(ds);
  if (H5Tget_class(type) == H5T_FLOAT) {
    hid_t space = H5Dget_space(ds);
    std::vector<float> v(static_cast<size_t>(H5Sget_simple_extent_npoints(space)));
    if (!v.empty()) H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
    (*static_cast<std::map<std::string, std::vector<float>>*>(out))[name] = std::move(v);
    H5Sclose(space);
  }
  H5Tclose(type);
  H5Dclose(ds);
  return 0;
}
}  // namespace

std::map<std::string, std::vector<float>> read_float_datasets(const std::string& path) {
  std::map<std::string, std::vector<float>> out;
  H5Id f = h5_open_read(path);
  H5Ovisit(f, H5_INDEX_NAME, H5_ITER_INC, collect_float_dataset, &out);
  return out;
}

std::string http_get(int port, const std::string& path) {
  CliResult r =
      run_program({"curl", "-s", "--max-time", "5", "http://127.0.0.1:" + std::to_string(port) + path}, "", 10);
  return r.exit_code == 0 ? r.out : "";
}

int status_port(const std::string& log) {
  const std::string mark = "status at http://";
  auto at = log.rfind(mark);
  if (at == std::string::npos) return -1;
  auto colon = log.find(':', at + mark.size());
  auto end = log.find("/status", at);
  if (colon == std::string::npos || end == std::string::npos || end < colon) return -1;
  return std::stoi(log.substr(colon + 1, end - colon - 1));
}

int train_until_killed(const std::string& config, const std::string& out_dir, int64_t kill_step,
                       int64_t checkpoint_step) {
  BackgroundProcess b({dptrain_binary(), "train", config, "--set", "out_dir=\"" + out_dir + "\""},
                      {"DPTRAIN_TEST_STALL=0:" + std::to_string(kill_step) + ":120"});
  const std::string expect = CheckpointStore::file_name(checkpoint_step);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (read_text(out_dir + "/checkpoints/latest").find(expect) == std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  b.kill(SIGKILL);
  return b.wait();
}

std::string newest_checkpoint(const std::string& out_dir) {
  auto all = CheckpointStore(out_dir + "/checkpoints", 3).list();
  if (all.empty()) throw std::runtime_error(out_dir + "/checkpoints holds no checkpoint");
  return all.front();
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string dptrain_binary() { return DPTRAIN_BINARY; }
std::string source_dir() { return DPTRAIN_SOURCE_DIR; }

DatasetContents small_classification(int64_t rows, int64_t dim, int64_t classes) {
  DatasetContents c;
  c.sample_shape = Shape{dim};
  c.label_kind = LabelKind::classes;
  c.num_classes = classes;
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < dim; ++j) c.x.push_back(static_cast<float>(std::sin(static_cast<double>(i + j))));
    c.labels.push_back(static_cast<int32_t>(i % classes));
  }
  return c;
}

std::string test_text(int64_t bytes, uint64_t seed) {
  static const char* const words[] = {"the",   "model", "learns", "a",    "small", "text",  "of",    "words",
                                      "and",   "each",  "rank",   "sees", "its",   "share", "batch", "step",
                                      "grows", "from",  "data",   "into", "order", "with",  "time",  "light"};
  Philox rng(seed, RandomPurpose::synth, 17);
  std::string text;
  bool capital = true;
  while (static_cast<int64_t>(text.size()) < bytes) {
    std::string w = words[rng.below(sizeof words / sizeof words[0])];
    if (capital) w[0] = static_cast<char>(w[0] - 'a' + 'A');
    text += w;
    const uint64_t r = rng.below(12);
    capital = r < 2;
    text += r == 0 ? ".\n" : r == 1 ? ". " : r == 2 ? ", " : " ";
  }
  text.resize(static_cast<size_t>(bytes));
  return text;
}

}  // namespace dptrain::test
