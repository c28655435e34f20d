#include "launch/Supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "models/core/Error.h"
#include "trainer/StopRequest.h"
#include "trainer/coordinator/Coordinator.h"
#include "trainer/tasks/PseudoLabelService.h"

extern char** environ;

namespace dptrain {

namespace {

void say(const std::string& line) {
  std::printf("launch: %s\n", line.c_str());
  std::fflush(stdout);
}

std::string exe_path() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) fail_internal("cannot find the dptrain executable (/proc/self/exe)");
  return p.string();
}

// Starts argv in a process group of its own (so the whole job can be ended at once) with extra
// environment entries that never appear on a command line; `quiet`: its output goes to /dev/null.
pid_t spawn_job(const std::vector<std::string>& argv, const std::vector<std::string>& env_extra, bool quiet = false) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    std::string s = *e;
    bool replaced = false;
    for (const auto& x : env_extra) replaced |= s.compare(0, s.find('=') + 1, x, 0, x.find('=') + 1) == 0;
    if (!replaced) env_strings.push_back(s);
  }
  env_strings.insert(env_strings.end(), env_extra.begin(), env_extra.end());
  std::vector<char*> envp, args;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none, defaults;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGUSR1);
  sigaddset(&defaults, SIGTERM);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  if (quiet) {  // and no input: a probe in a background process group must not read a terminal
    posix_spawn_file_actions_addopen(&files, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&files, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&files, 1, 2);
  }
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &files, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&files);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) fail_input("launch: cannot start " + argv[0] + ": " + std::strerror(rc));
  return pid;
}

// Ends the process group led by `leader` (SIGTERM, 5 s to exit, then SIGKILL), reaps the leader
// and returns its wait status; what is left of the group is killed.
int end_group(pid_t leader) {
  int status = 0;
  ::kill(-leader, SIGTERM);
  for (int i = 0; i < 50; ++i) {
    if (::waitpid(leader, &status, WNOHANG) == leader) {
      ::kill(-leader, SIGKILL);
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ::kill(-leader, SIGKILL);
  ::waitpid(leader, &status, 0);
  return status;
}

std::string this_host() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return name;
}

std::string describe_exit(int status) {
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  int code = WEXITSTATUS(status);
  // mpirun and srun report a worker killed by signal N as 128 + N.
  if (code > 128 && code < 128 + 65)
    return "exited with code " + std::to_string(code) + " (a worker was killed by signal " +
           std::to_string(code - 128) + ")";
  return "exited with code " + std::to_string(code);
}

}  // namespace

Supervisor::Supervisor(const SupervisorOptions& options, const TrainConfig& config) : o_(options), config_(config) {
  if (o_.ranks < 1) fail_input("dptrain launch: -n must be at least 1");
  if (o_.launcher != "mpirun" && o_.launcher != "srun" && o_.launcher != "local")
    fail_input("dptrain launch: --launcher must be mpirun, srun or local, got '" + o_.launcher + "'");
  if (o_.launcher == "local" && o_.ranks > 1)
    fail_input("dptrain launch: --launcher local starts one process; use mpirun or srun for " +
               std::to_string(o_.ranks) + " ranks");
  if (o_.max_restarts < 0) fail_input("dptrain launch: --max-restarts must be >= 0");
  ranks_ = o_.ranks;
  if (o_.min_ranks == 0) o_.min_ranks = o_.ranks;
  if (o_.min_ranks < 1 || o_.min_ranks > o_.ranks)
    fail_input("dptrain launch: --min-ranks must be between 1 and -n (" + std::to_string(o_.ranks) + "), got " +
               std::to_string(o_.min_ranks));
  if (!o_.hostfile.empty()) {
    if (o_.launcher != "mpirun")
      fail_input("dptrain launch: --hostfile is mpirun's; with --launcher " + o_.launcher +
                 " the allocation names the hosts");
    hosts_ = HostList::read(o_.hostfile);
    hostfile_ = o_.hostfile;
  }
  if (o_.min_ranks < o_.ranks && !hosts_)
    fail_input(
        "dptrain launch: --min-ranks restarts on the hosts that remain: it needs --launcher mpirun and "
        "--hostfile FILE, to know the hosts");
  if (o_.min_ranks < o_.ranks) hosts_->require_slots(o_.hostfile, o_.ranks, "--min-ranks");
  const std::string& bind = config_.coordinator.bind;
  if (hosts_ && hosts_->names_other_hosts(this_host()) && (bind == "localhost" || bind.rfind("127.", 0) == 0))
    fail_input("dptrain launch: " + o_.hostfile + " names other hosts (" + hosts_->names() +
               ") but coordinator.bind is \"" + bind +
               "\", which they cannot reach; set it to this machine's address on their network, or \"0.0.0.0\"");
}

std::vector<std::string> Supervisor::worker_command() const {
  std::vector<std::string> cmd;
  const std::string n = std::to_string(ranks_);
  if (o_.launcher == "mpirun") {
    cmd = {"mpirun", "-np", n, "--bind-to", "none", "-x", "DPTRAIN_COORDINATOR", "-x", "DPTRAIN_JOB_TOKEN"};
    if (!hostfile_.empty()) {
      cmd.push_back("--hostfile");
      cmd.push_back(hostfile_);
    } else if (static_cast<unsigned>(ranks_) > std::thread::hardware_concurrency()) {
      cmd.push_back("--oversubscribe");
    }
  } else if (o_.launcher == "srun") {
    // --export=ALL: the workers need DPTRAIN_COORDINATOR and DPTRAIN_JOB_TOKEN even in a job submitted
    // with `sbatch --export=NONE` (or a list), whose SLURM_EXPORT_ENV srun would otherwise obey; without
    // them rank 0 would run a coordinator of its own, out of the supervisor's reach.
    cmd = {"srun", "-n", n, "--kill-on-bad-exit=1", "--export=ALL"};
  }
  cmd.insert(cmd.end(), o_.launcher_args.begin(), o_.launcher_args.end());
  for (const auto& a : {exe_path(), std::string("train"), o_.config_path}) cmd.push_back(a);
  for (const auto& s : o_.overrides) {
    cmd.push_back("--set");
    cmd.push_back(s);
  }
  cmd.push_back("--resume");  // the latest complete checkpoint, if there is one
  return cmd;
}

int Supervisor::run() {
  CoordinatorOptions co;
  co.job = std::filesystem::path(config_.out_dir).filename().string();
  co.bind_address = config_.coordinator.bind;
  co.port = static_cast<uint16_t>(config_.coordinator.port);
  co.http_port = static_cast<int>(config_.coordinator.http_port);
  co.checkpoint_dir = config_.checkpoint.dir;
  co.checkpoint_keep = config_.checkpoint.keep;
  co.max_bulk_frame_bytes = static_cast<size_t>(config_.coordinator.max_bulk_frame_mb) << 20;
  std::unique_ptr<ScheduleService> schedule;  // declared first: it outlives the coordinator calling it
  Coordinator coordinator(co, say);
  schedule = make_schedule_service(config_, coordinator);  // self-training selections
  if (schedule) coordinator.set_schedule_service(schedule.get());
  // Workers on this machine reach a wildcard address through loopback; on other machines (a
  // hostfile naming other hosts, an allocation of several nodes) they need this machine's name.
  const char* nodes = std::getenv("SLURM_JOB_NUM_NODES");
  const bool elsewhere =
      hosts_ ? hosts_->names_other_hosts(this_host()) : o_.launcher == "srun" && nodes && std::atoi(nodes) > 1;
  const std::string reach = co.bind_address == "0.0.0.0" ? (elsewhere ? this_host() : "127.0.0.1") : co.bind_address;
  const std::vector<std::string> env = {"DPTRAIN_COORDINATOR=" + reach + ":" + std::to_string(coordinator.port()),
                                        "DPTRAIN_JOB_TOKEN=" + coordinator.token()};
  if (coordinator.http_port() >= 0)
    say("status at http://" + reach + ":" + std::to_string(coordinator.http_port()) + "/status");
  install_stop_signal_handlers();

  for (int attempt = 0;; ++attempt) {
    auto cmd = worker_command();
    say("starting " + std::to_string(ranks_) + " rank" + (ranks_ > 1 ? "s" : "") + " with " + o_.launcher +
        (hosts_ ? " on " + hosts_->names() : std::string()) +
        (attempt ? " (restart " + std::to_string(attempt) + " of " + std::to_string(o_.max_restarts) + ")" : ""));
    pid_t pid = spawn_job(cmd, env);
    std::string failure;
    int status = 0;
    bool stop_sent = false, ended = false;  // ended: end_group reaped the launcher
    auto stop_time = std::chrono::steady_clock::now();
    while (!ended) {
      pid_t done = ::waitpid(pid, &status, WNOHANG);
      if (done == pid) break;
      if (stop_requested() && !stop_sent) {
        coordinator.request_stop("the supervisor received SIGUSR1 or SIGTERM");
        stop_sent = true;
        stop_time = std::chrono::steady_clock::now();
      }
      if (stop_sent && std::chrono::steady_clock::now() - stop_time > std::chrono::duration<double>(o_.stop_grace_s)) {
        say("the workers did not stop within " + std::to_string(static_cast<int>(o_.stop_grace_s)) + " s; ending them");
        status = end_group(pid);
        ended = true;
      }
      // A rank failed (it left without a goodbye) and the launcher is still waiting, e.g. mpirun on
      // the daemon of a host it can no longer reach.
      if (failure.empty() && !stop_sent && coordinator.seconds_since_lost() > o_.lost_grace_s) {
        failure = o_.launcher + " did not end the job " + std::to_string(static_cast<int>(o_.lost_grace_s)) +
                  " s after a rank failed";
        status = end_group(pid);
        ended = true;
      }
      if (failure.empty() && !stop_sent)
        for (const auto& w : coordinator.workers())
          if (w.heartbeat_age_s > config_.coordinator.heartbeat_timeout_s) {
            failure = "rank " + std::to_string(w.rank) + " (pid " + std::to_string(w.pid) + ") sent no heartbeat for " +
                      std::to_string(static_cast<int>(w.heartbeat_age_s)) + " s";
            status = end_group(pid);
            ended = true;
            break;
          }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(-pid, SIGKILL);  // leftovers of the group, if any
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code == 0 && failure.empty()) {
      say("job finished");
      return 0;
    }
    if (code == requeue_exit_code || (stop_sent && failure.empty())) {
      auto last = coordinator.last_checkpoint();
      say("stopped on request after the checkpoint of step " + std::to_string(last.step) + "; exit code " +
          std::to_string(requeue_exit_code) + " (requeue)");
      return requeue_exit_code;
    }
    if (code == 2) {
      say("the workers rejected their input (exit code 2); not restarting");
      return 2;
    }
    if (code == 4) {  // a restart would meet the same step again
      say("the run diverged: its summed gradient stopped being finite (exit code 4); not restarting");
      return 4;
    }
    if (failure.empty()) failure = o_.launcher + " " + describe_exit(status);
    std::string lost = coordinator.lost_worker();
    if (!lost.empty()) failure += "; " + lost;
    if (attempt >= o_.max_restarts) {
      say("job failed: " + failure + "; no restarts left (--max-restarts " + std::to_string(o_.max_restarts) + ")");
      return 3;
    }
    coordinator.note_restart(failure);
    coordinator.reset_workers();
    auto last = coordinator.last_checkpoint();
    say("job failed: " + failure + "; restarting from " +
        (last.step >= 0 ? "the checkpoint of step " + std::to_string(last.step)
                        : std::string("the latest checkpoint")));
    if (ranks_ > o_.min_ranks && !drop_lost_hosts()) return 3;
  }
}

bool Supervisor::drop_lost_hosts() {
  const std::vector<int> on = hosts_->placement(ranks_);
  // One probe per host in use, all at once: the same launcher path as the job (agent, daemon,
  // its connection back), starting this dptrain there.
  std::vector<pid_t> probes(on.size(), -1);
  for (size_t i = 0; i < on.size(); ++i) {
    if (on[i] == 0) continue;
    std::vector<std::string> cmd = {"mpirun", "-np", "1", "--host", hosts_->hosts()[i].name + ":1"};
    cmd.insert(cmd.end(), o_.launcher_args.begin(), o_.launcher_args.end());
    cmd.push_back(exe_path());
    cmd.push_back("--version");
    probes[i] = spawn_job(cmd, {}, true);
  }
  std::vector<std::string> why(on.size());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(o_.probe_timeout_s);
  for (bool waiting = true; waiting;) {
    waiting = false;
    for (size_t i = 0; i < probes.size(); ++i) {
      if (probes[i] < 0) continue;
      int status = 0;
      if (::waitpid(probes[i], &status, WNOHANG) == probes[i]) {
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) why[i] = "the probe " + describe_exit(status);
        probes[i] = -1;
      } else {
        waiting = true;
      }
    }
    if (waiting && std::chrono::steady_clock::now() > deadline) {
      for (pid_t p : probes)  // all at once, then reap them one by one
        if (p > 0) ::kill(-p, SIGTERM);
      for (size_t i = 0; i < probes.size(); ++i)
        if (probes[i] > 0) {
          end_group(probes[i]);
          why[i] = "no answer to the probe in " + std::to_string(static_cast<int>(o_.probe_timeout_s)) + " s";
          probes[i] = -1;
        }
      waiting = false;
    }
    if (waiting) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::vector<size_t> lost;
  int remaining = ranks_;
  for (size_t i = 0; i < on.size(); ++i)
    if (!why[i].empty()) {
      lost.push_back(i);
      remaining -= on[i];
      say("host " + hosts_->hosts()[i].name + " (" + std::to_string(on[i]) + " rank" + (on[i] > 1 ? "s" : "") +
          ") is lost: " + why[i]);
    }
  if (lost.empty()) return true;  // every host answers: restart as before
  if (remaining < o_.min_ranks) {
    say("job failed: " + std::to_string(remaining) + " rank" + (remaining == 1 ? "" : "s") +
        " would remain on the hosts that answer, fewer than --min-ranks " + std::to_string(o_.min_ranks));
    return false;
  }
  hosts_ = hosts_->without(lost);
  hostfile_ = (std::filesystem::path(config_.out_dir) / "launch-hostfile").string();
  std::filesystem::create_directories(config_.out_dir);
  hosts_->write(hostfile_);
  say("restarting on the " + std::to_string(remaining) + " ranks that remain (--min-ranks " +
      std::to_string(o_.min_ranks) + "), hosts " + hosts_->names() + "; the run resumes on the smaller world size");
  ranks_ = remaining;
  return true;
}

}  // namespace dptrain
