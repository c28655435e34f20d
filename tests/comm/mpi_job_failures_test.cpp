// Failures of a multi-rank job end it with a clear message instead of a hang: a rank that stalls
// inside training trips the collective watchdog (exit code 3, naming the rank), and ranks started
// with different configs stop at start-up (exit code 2, naming the ranks and what differs).
#include <catch2/catch.hpp>

#include <chrono>

#include "storage/dataset/Synthesize.h"
#include "support/JsonSupport.h"
#include "support/TestSupport.h"

using namespace dptrain;
using namespace dptrain::test;

namespace {

std::vector<std::string> mpirun(int ranks) {
  return {"mpirun", "-np", std::to_string(ranks), "--oversubscribe", "--bind-to", "none"};
}

std::string job_config(const TempDir& dir, const std::string& extra = "") {
  SynthOptions s;
  s.kind = "blobs";
  s.n = 2000;
  write_dataset_file(dir.file("blobs.h5"), synthesize(s));
  return "seed = 1\nout_dir = \"" + dir.file("run") + "\"\n[data]\ntrain = \"" + dir.file("blobs.h5") +
         "\"\n[model]\nkind = \"mlp\"\nhidden = [16]\n[train]\nepochs = 50\nbatch_size = 16\nprogress = false\n" +
         extra;
}

}  // namespace

TEST_CASE("a stalled rank trips the watchdog: exit code 3 naming the rank", "[mpi][watchdog]") {
  TempDir dir;
  write_text(dir.file("c.toml"), job_config(dir, "[comm]\ntimeout_s = 3\n"));
  std::vector<std::string> cmd = mpirun(3);
  for (const char* a : {"-x", "DPTRAIN_TEST_STALL=1:20:60", "-x", "OMP_NUM_THREADS=1"}) cmd.push_back(a);
  cmd.push_back(dptrain_binary());
  cmd.push_back("train");
  cmd.push_back(dir.file("c.toml"));
  auto t0 = std::chrono::steady_clock::now();
  CliResult r = run_program(cmd, "", 60);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO("stderr: " << r.err);
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("did not finish within comm.timeout_s = 3.0 s") != std::string::npos);
  CHECK(r.err.find("rank 1 (last seen at step 19) did not arrive") != std::string::npos);
  CHECK(r.err.find("at step 20") != std::string::npos);
  CHECK(secs < 3 + 10 + 5);  // timeout + 10 s, plus start-up of three processes
}

TEST_CASE("ranks started with different configs stop at start-up", "[mpi]") {
  TempDir dir;
  std::string base = job_config(dir);
  write_text(dir.file("a.toml"), base);
  write_text(dir.file("b.toml"), base + "[optim]\nlr = 0.5\n");
  std::vector<std::string> cmd = {"mpirun",         "--oversubscribe", "--bind-to",        "none", "-np", "1",
                                  dptrain_binary(), "train",           dir.file("a.toml"), ":",    "-np", "1",
                                  dptrain_binary(), "train",           dir.file("a.toml"), ":",    "-np", "1",
                                  dptrain_binary(), "train",           dir.file("b.toml")};
  CliResult r = run_program(cmd, "", 60);
  INFO("stderr: " << r.err);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("ranks were started with different configurations: rank 2 differs from rank 0 in config text") !=
        std::string::npos);
  CHECK(r.err.find("rank 1 differs") == std::string::npos);
}

TEST_CASE("mpirun training writes one model and matching metrics", "[mpi]") {
  TempDir dir;
  write_text(dir.file("c.toml"), job_config(dir) + "[comm]\nbackend = \"mpi\"\n");
  std::vector<std::string> cmd = mpirun(2);
  for (const auto& a : {dptrain_binary(), std::string("train"), dir.file("c.toml"), std::string("--set"),
                        std::string("train.epochs=2")})
    cmd.push_back(a);
  CliResult r = run_program(cmd, "", 120);
  INFO("stderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("on 2 ranks (mpi, cpu)") != std::string::npos);
  // Only rank 0 prints progress: each epoch summary appears once.
  size_t first = r.out.find("epoch 1/2:");
  REQUIRE(first != std::string::npos);
  CHECK(r.out.find("epoch 1/2:", first + 1) == std::string::npos);
  bool epoch_2 = false;
  for (const auto& record : read_json_lines(dir.file("run/metrics.jsonl"))) epoch_2 |= record.value("epoch", 0) == 2;
  CHECK(epoch_2);
}
