// `dptrain launch` under failure: three workers killed with SIGKILL at random steps in one run,
// and a SIGUSR1 pre-emption followed by the same command again — both must end bitwise identical
// to an uninterrupted run. /status and /metrics are read with a real HTTP client (curl) while
// the job runs.
#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "models/core/Philox.h"
#include "models/kernels/cpu/CpuEngine.h"
#include "storage/checkpoint/CheckpointStore.h"
#include "storage/dataset/Synthesize.h"
#include "support/JsonSupport.h"
#include "support/TestSupport.h"

using namespace dptrain;
using namespace dptrain::test;

namespace {

// A /status body parsed, or a discarded value when there is none (the job is not serving yet).
nlohmann::json parse_status(const std::string& body) { return nlohmann::json::parse(body, nullptr, false); }

struct Job {
  TempDir dir;
  int http_port = -1;  // read from the job's output: the config asks for any free port
  std::string config;
};

void make_job(Job& job) {
  SynthOptions s;
  s.kind = "blobs";
  s.n = 1200;
  s.dim = 6;
  write_dataset_file(job.dir.file("data.h5"), synthesize(s));
  job.config = job.dir.file("c.toml");
  write_text(job.config, "seed = 9\n[data]\ntrain = \"" + job.dir.file("data.h5") +
                             "\"\nnormalize = \"zscore\"\n[model]\nkind = \"mlp\"\nhidden = [32]\ndropout = 0.1\n" +
                             "[optim]\nkind = \"adam\"\nlr = 0.005\n[train]\nbatch_size = 20\nepochs = 4\n" +
                             "progress = false\nlog_every = 10\n[checkpoint]\nevery_steps = 10\n" +
                             "[coordinator]\nheartbeat_s = 0.05\nhttp_port = 0\n");
}

std::vector<std::string> launch_args(const Job& job, const std::string& out, int restarts) {
  return {dptrain_binary(),
          "launch",
          "-n",
          "2",
          "--max-restarts",
          std::to_string(restarts),
          job.config,
          "--set",
          "out_dir=\"" + job.dir.file(out) + "\""};
}

// Waits until /status shows two ranks, none of them in `dead`, both past `step`; returns their pids.
// Fails early, with the job's output, when the job exits first.
std::vector<int64_t> wait_for_ranks(Job& job, int64_t step, const std::set<int64_t>& dead, BackgroundProcess& run,
                                    const std::string& log) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  std::string status;
  while (std::chrono::steady_clock::now() < deadline && run.running()) {
    job.http_port = status_port(read_text(log));
    status = job.http_port > 0 ? http_get(job.http_port, "/status") : "";
    nlohmann::json parsed = parse_status(status);
    std::vector<int64_t> pids, steps;
    if (parsed.is_object() && parsed.contains("ranks"))
      for (const auto& rank : parsed["ranks"]) {
        pids.push_back(rank.at("pid").get<int64_t>());
        steps.push_back(rank.at("step").get<int64_t>());
      }
    bool ok = pids.size() == 2 && steps.size() == 2;
    for (size_t i = 0; ok && i < pids.size(); ++i) ok = !dead.count(pids[i]) && steps[i] >= step;
    if (ok) return pids;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const bool exited = !run.running();
  FAIL("the job did not reach step " << step << " with two live ranks"
                                     << (exited ? " (it exited with " + std::to_string(run.wait()) + ")" : "")
                                     << "\nlast /status: " << status << "\njob output:\n"
                                     << read_text(log));
  return {};
}

void check_same_result(const Job& job, const std::string& a, const std::string& b) {
  CheckpointStore sa(job.dir.file(a + "/checkpoints"), 3), sb(job.dir.file(b + "/checkpoints"), 3);
  REQUIRE(!sa.list().empty());
  REQUIRE(!sb.list().empty());
  CHECK(sa.list().front().substr(sa.list().front().rfind('/')) ==
        sb.list().front().substr(sb.list().front().rfind('/')));
  auto fa = read_float_datasets(sa.list().front()), fb = read_float_datasets(sb.list().front());
  REQUIRE(fa.size() == fb.size());
  for (const auto& [name, values] : fa) {
    INFO(name);
    CHECK(fb[name] == values);  // bitwise
  }
  CHECK(read_float_datasets(job.dir.file(a + "/model.h5")) == read_float_datasets(job.dir.file(b + "/model.h5")));
}

}  // namespace

TEST_CASE("launch: three workers killed at random steps, the job ends as if uninterrupted", "[launch][mpi]") {
  Job job;
  make_job(job);
  CliResult ref = run_program(launch_args(job, "ref", 0), "", 300);
  INFO(ref.out << ref.err);
  REQUIRE(ref.exit_code == 0);

  const std::string log_file = job.dir.file("killed.log");
  BackgroundProcess run(launch_args(job, "killed", 5), {"DPTRAIN_TEST_STEP_MS=15"}, log_file);
  Philox rng(77, RandomPurpose::synth, 1);
  std::set<int64_t> dead;
  for (int k = 0; k < 3; ++k) {
    int64_t target = 15 + 50 * k + static_cast<int64_t>(rng.below(30));
    auto pids = wait_for_ranks(job, target, dead, run, log_file);
    if (k == 0) {
      std::string metrics = http_get(job.http_port, "/metrics");
      CHECK(metrics.find("# TYPE dptrain_step gauge") != std::string::npos);
      CHECK(metrics.find("dptrain_ranks_alive 2") != std::string::npos);
      // Rank 0's measured CPU plan (CpuPlan.h), reported with the metrics every 10 steps.
      if (cpu_engine() == CpuEngine::automatic) {
        const std::string status = http_get(job.http_port, "/status");
        INFO(status);
        nlohmann::json parsed = parse_status(status);
        REQUIRE(parsed.is_object());
        REQUIRE(parsed["cpu_engines"].is_string());
        CHECK(parsed["cpu_engines"].get<std::string>().find(" products: ") != std::string::npos);
      }
    }
    int64_t victim = pids[rng.below(2)];
    ::kill(static_cast<pid_t>(victim), SIGKILL);
    dead.insert(pids.begin(), pids.end());  // the other rank dies with the job
  }
  CHECK(run.wait() == 0);
  std::string log = read_text(log_file);
  INFO(log);
  size_t restarts = 0;
  for (size_t at = log.find("restarting from"); at != std::string::npos; at = log.find("restarting from", at + 1))
    ++restarts;
  CHECK(restarts == 3);
  CHECK(log.find("was killed by signal 9") != std::string::npos);
  CHECK(log.find("disconnected at step") != std::string::npos);  // names the rank it lost
  CHECK(log.find("launch: job finished") != std::string::npos);
  std::string status = http_get(job.http_port, "/status");
  CHECK(status.empty());  // the supervisor has exited
  check_same_result(job, "ref", "killed");
}

TEST_CASE("launch: SIGUSR1 checkpoints within 2 steps and exits 75, and rerunning finishes identically",
          "[launch][mpi]") {
  Job job;
  make_job(job);
  CliResult ref = run_program(launch_args(job, "ref", 0), "", 300);
  REQUIRE(ref.exit_code == 0);

  CliResult first;
  {
    const std::string log_file = job.dir.file("preempted.log");
    BackgroundProcess run(launch_args(job, "preempted", 0), {"DPTRAIN_TEST_STEP_MS=15"}, log_file);
    wait_for_ranks(job, 57, {}, run, log_file);
    std::string status = http_get(job.http_port, "/status");
    nlohmann::json parsed = parse_status(status);
    REQUIRE(parsed.is_object());
    CHECK(parsed["ranks_alive"] == 2);
    auto t0 = std::chrono::steady_clock::now();
    run.kill(SIGUSR1);
    CHECK(run.wait() == 75);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20));
  }
  CheckpointStore store(job.dir.file("preempted/checkpoints"), 3);
  REQUIRE(!store.list().empty());
  CHECK(!std::filesystem::exists(job.dir.file("preempted/model.h5")));
  // The same command again continues from that checkpoint to the end.
  CliResult again = run_program(launch_args(job, "preempted", 0), "", 300);
  INFO(again.out << again.err);
  REQUIRE(again.exit_code == 0);
  CHECK(again.out.find("resumed from") != std::string::npos);
  check_same_result(job, "ref", "preempted");
}

TEST_CASE("train under mpirun: SIGUSR1 to mpirun stops every rank within 2 steps of the request", "[launch][mpi]") {
  Job job;
  make_job(job);
  std::vector<std::string> cmd = {"mpirun",
                                  "-np",
                                  "2",
                                  "--oversubscribe",
                                  "--bind-to",
                                  "none",
                                  "-x",
                                  "DPTRAIN_TEST_STEP_MS=15",
                                  dptrain_binary(),
                                  "train",
                                  job.config,
                                  "--set",
                                  "out_dir=\"" + job.dir.file("m") + "\""};
  // Captured output: run in the background through a shell so the test can signal mpirun.
  const std::string log = job.dir.file("m.log");
  std::string line;
  for (const auto& a : cmd) line += "'" + a + "' ";
  BackgroundProcess run({"sh", "-c", "exec " + line + " > " + log + " 2>&1"});
  wait_for_ranks(job, 40, {}, run, log);
  run.kill(SIGUSR1);
  int code = run.wait();
  std::string out = read_text(log);
  INFO(out);
  CHECK(code == 75);
  auto at = out.find("stop requested before step ");
  REQUIRE(at != std::string::npos);
  int64_t seen = std::stoll(out.substr(at + 27));
  int64_t stopped = std::stoll(out.substr(out.find("stopped after step ") + 19));
  CHECK(stopped - seen <= 2);
  CHECK(stopped >= 40);
}
