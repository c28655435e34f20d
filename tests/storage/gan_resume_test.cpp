// GAN resume exactness (docs/design.md rule 4) mid-alternation: a run with d_steps = 2, g_steps = 1
// and checkpoints every 7 steps (so they fall inside a phase), killed with SIGKILL at a random step
// and resumed from its latest checkpoint, ends bitwise identical to the run never interrupted —
// both networks' parameters and batch-norm buffers, both Adam states, the generator's weight
// average (gan.ema), the saved generator file.
// And SIGUSR1 stops a GAN run at a step boundary with a checkpoint and exit code 75.
#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "models/core/Philox.h"
#include "storage/checkpoint/CheckpointStore.h"
#include "storage/dataset/Synthesize.h"
#include "support/TestSupport.h"

using namespace dptrain;
using namespace dptrain::test;

namespace {

// The generator has batch norm (buffers in the checkpoint), the discriminator dropout (draws keyed
// by step and sample).
std::string write_config(const TempDir& dir, int64_t every) {
  SynthOptions s;
  s.kind = "ring";
  s.n = 800;
  s.seed = 2;
  write_dataset_file(dir.file("ring.h5"), synthesize(s));
  write_text(
      dir.file("gan.toml"),
      "seed = 4\ntask = \"gan\"\nthreads = 1\n[data]\ntrain = \"" + dir.file("ring.h5") +
          "\"\n[gan]\nlatent = 3\nloss = \"non_saturating\"\nd_steps = 2\ng_steps = 1\neval_samples = 500\nema = 0.9\n"
          "[gan.generator]\nkind = \"layers\"\nlayers = [{ type = \"dense\", units = 24 }, { type = "
          "\"batchnorm\" }, { type = \"relu\" }, { type = \"dense\", units = 2 }]\n"
          "[gan.discriminator]\nkind = \"mlp\"\nhidden = [24]\ndropout = 0.2\n"
          "[gan.optim_g]\nlr = 0.002\n[gan.optim_d]\nlr = 0.002\n"
          "[train]\nbatch_size = 20\nepochs = 3\nprogress = false\nlog_every = 10\n"
          "[checkpoint]\nevery_steps = " +
          std::to_string(every) + "\n");
  return dir.file("gan.toml");
}

void check_same_final_state(const std::string& a_dir, const std::string& b_dir) {
  auto fa = read_float_datasets(newest_checkpoint(a_dir));
  auto fb = read_float_datasets(newest_checkpoint(b_dir));
  REQUIRE(fa.size() == fb.size());
  int compared = 0;
  for (const auto& [name, values] : fa) {
    INFO(name);
    REQUIRE(fb.count(name));
    CHECK(fb[name] == values);  // bitwise: float == on every element
    compared += name.rfind("generator/", 0) == 0 || name.rfind("discriminator/", 0) == 0;
  }
  CHECK(compared >= 12);  // params, buffers, adam m and v of both networks
  CHECK(fa.count("generator/buffers/01_batchnorm/running_mean"));
  CHECK(fa.count("discriminator/optimizer/adam_m/00_dense/weight"));
  // gan.ema: the checkpoint holds the weight average; generator.h5 is that average, with batch-norm
  // statistics measured for it, not the live generator the checkpoint also holds.
  REQUIRE(fa.count("generator/weight_average/00_dense/weight"));
  auto saved = read_float_datasets(a_dir + "/generator.h5");
  REQUIRE(saved.count("params/00_dense/weight"));
  CHECK(saved["params/00_dense/weight"] == fa["generator/weight_average/00_dense/weight"]);
  CHECK(saved["params/00_dense/weight"] != fa["generator/params/00_dense/weight"]);
  CHECK(saved["buffers/01_batchnorm/running_mean"] != fa["generator/buffers/01_batchnorm/running_mean"]);
  CHECK(read_float_datasets(a_dir + "/generator.h5") == read_float_datasets(b_dir + "/generator.h5"));
  CHECK(read_float_datasets(a_dir + "/discriminator.h5") == read_float_datasets(b_dir + "/discriminator.h5"));
}

}  // namespace

TEST_CASE("a GAN killed mid-alternation and resumed equals the uninterrupted run", "[checkpoint][resume][gan]") {
  TempDir dir;
  const int64_t every = 7, steps = 180;  // 3 epochs of 40 real batches in 60 cycles of D, D, G
  const std::string config = write_config(dir, every);
  CliResult a = run_cli({"train", config, "--set", "out_dir=\"" + dir.file("a") + "\""});
  INFO(a.out << a.err);
  REQUIRE(a.exit_code == 0);
  CHECK(a.out.find("mode coverage:") != std::string::npos);

  Philox rng(99, RandomPurpose::synth, 61);
  int64_t kill_step = 15 + static_cast<int64_t>(rng.below(steps - 30));
  if ((kill_step / every * every) % 3 == 0) kill_step += every;  // the checkpoint falls inside a phase
  const int64_t resumed_at = kill_step / every * every;
  const std::string b_dir = dir.file("b");
  CHECK(train_until_killed(config, b_dir, kill_step, resumed_at) == 128 + SIGKILL);
  REQUIRE(!std::filesystem::exists(b_dir + "/generator.h5"));  // it really died mid-run
  CliResult c = run_cli({"train", config, "--set", "out_dir=\"" + b_dir + "\"", "--resume"});
  INFO(c.out << c.err);
  REQUIRE(c.exit_code == 0);
  CHECK(c.out.find("resumed from") != std::string::npos);
  CHECK(c.out.find("at step " + std::to_string(resumed_at) + " (") != std::string::npos);
  check_same_final_state(dir.file("a"), b_dir);
}

TEST_CASE("SIGUSR1 stops a GAN run with a checkpoint and exit code 75, and the rerun finishes identically",
          "[checkpoint][resume][gan]") {
  TempDir dir;
  const std::string config = write_config(dir, 7);
  CliResult a = run_cli({"train", config, "--set", "out_dir=\"" + dir.file("a") + "\""});
  REQUIRE(a.exit_code == 0);
  const std::string b_dir = dir.file("b");
  {
    BackgroundProcess b({dptrain_binary(), "train", config, "--set", "out_dir=\"" + b_dir + "\""},
                        {"DPTRAIN_TEST_STEP_MS=20"}, dir.file("b.log"));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!std::filesystem::exists(b_dir + "/checkpoints/latest") && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    b.kill(SIGUSR1);
    CHECK(b.wait() == 75);
  }
  INFO(read_text(dir.file("b.log")));
  CHECK(read_text(dir.file("b.log")).find("asks for a requeue") != std::string::npos);
  REQUIRE(!std::filesystem::exists(b_dir + "/generator.h5"));
  CliResult c = run_cli({"train", config, "--set", "out_dir=\"" + b_dir + "\"", "--resume"});
  INFO(c.out << c.err);
  REQUIRE(c.exit_code == 0);
  check_same_final_state(dir.file("a"), b_dir);
}
