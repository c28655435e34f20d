// Resume exactness (docs/design.md rule 4): a run of S steps, and the same run killed with SIGKILL at a
// random step and resumed from its latest checkpoint, end with bitwise identical parameters and
// optimizer state — for SGD with momentum, Adam, and models with dropout (a Transformer's on its
// attention weights too).
#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "models/core/Philox.h"
#include "models/kernels/cpu/CpuEngine.h"
#include "storage/checkpoint/CheckpointStore.h"
#include "storage/dataset/Import.h"
#include "storage/dataset/Synthesize.h"
#include "support/TestSupport.h"

using namespace dptrain;
using namespace dptrain::test;

namespace {

// text: byte-level language-model data (per-step targets) instead of blobs (then not normalized).
// train_extra: more [train] keys.
void check_resume_exact(const std::string& model, const std::string& optim, uint32_t case_id, bool text = false,
                        const std::string& train_extra = "") {
  TempDir dir;
  if (text) {
    write_text(dir.file("text.txt"), test_text(8000, case_id));
    write_dataset_file(dir.file("data.h5"), import_text({dir.file("text.txt"), 16, 0.0}).train);
  } else {
    SynthOptions s;
    s.kind = "blobs";
    s.n = 800;
    s.dim = 6;
    s.classes = 3;
    write_dataset_file(dir.file("data.h5"), synthesize(s));
  }
  const int64_t steps = 120, every = 7;
  write_text(dir.file("c.toml"), "seed = 5\n[data]\ntrain = \"" + dir.file("data.h5") +
                                     "\"\nvalidation_fraction = 0.1\n" + (text ? "" : "normalize = \"zscore\"\n") +
                                     "[model]\n" + model + "\n[optim]\n" + optim +
                                     "\n[schedule]\nkind = \"cosine\"\nwarmup_steps = 10\n" +
                                     "[train]\nbatch_size = 20\nepochs = 5\nmax_steps = " + std::to_string(steps) +
                                     "\nprogress = false\nlog_every = 9\n" + train_extra +
                                     "[checkpoint]\nevery_steps = " + std::to_string(every) + "\n");
  // Uninterrupted.
  CliResult a = run_cli({"train", dir.file("c.toml"), "--set", "out_dir=\"" + dir.file("a") + "\""});
  INFO(a.err);
  REQUIRE(a.exit_code == 0);

  // Killed at a random step: the stall hook holds rank 0 there until SIGKILL arrives.
  Philox rng(99, RandomPurpose::synth, case_id);
  const int64_t kill_step = 15 + static_cast<int64_t>(rng.below(steps - 30));
  const std::string b_dir = dir.file("b");
  CHECK(train_until_killed(dir.file("c.toml"), b_dir, kill_step, kill_step / every * every) == 128 + SIGKILL);
  REQUIRE(!std::filesystem::exists(b_dir + "/model.h5"));  // it really died mid-run
  CliResult c = run_cli({"train", dir.file("c.toml"), "--set", "out_dir=\"" + b_dir + "\"", "--resume"});
  INFO(c.err);
  REQUIRE(c.exit_code == 0);
  CHECK(c.out.find("resumed from") != std::string::npos);
  CHECK(c.out.find("at step " + std::to_string(kill_step / every * every)) != std::string::npos);
  // The measured CPU plan comes back with the checkpoint: the resumed steps use the same engines.
  if (cpu_engine() == CpuEngine::automatic) {
    CHECK(a.out.find("cpu engines: ") != std::string::npos);
    CHECK(c.out.find("as the checkpoint recorded them") != std::string::npos);
  }

  auto fa = read_float_datasets(newest_checkpoint(dir.file("a")));
  auto fb = read_float_datasets(newest_checkpoint(b_dir));
  REQUIRE(fa.size() == fb.size());
  int compared = 0;
  for (const auto& [name, values] : fa) {
    INFO(name);
    REQUIRE(fb.count(name));
    CHECK(fb[name] == values);  // bitwise: float == on every element
    compared += name.rfind("params/", 0) == 0 || name.rfind("optimizer/", 0) == 0;
  }
  CHECK(compared >= 4);
  CHECK(read_float_datasets(dir.file("a/model.h5")) == read_float_datasets(b_dir + "/model.h5"));
}

}  // namespace

TEST_CASE("killed and resumed equals uninterrupted: SGD with momentum, dropout", "[checkpoint][resume]") {
  check_resume_exact("kind = \"mlp\"\nhidden = [24, 24]\ndropout = 0.3", "kind = \"momentum\"\nlr = 0.05", 1);
}

TEST_CASE("killed and resumed equals uninterrupted: Adam, dropout", "[checkpoint][resume]") {
  check_resume_exact("kind = \"mlp\"\nhidden = [24]\ndropout = 0.2", "kind = \"adam\"\nlr = 0.01", 2);
}

TEST_CASE("killed and resumed equals uninterrupted: AdamW with clipping, maxout", "[checkpoint][resume]") {
  check_resume_exact("kind = \"mlp\"\nhidden = [16]\nactivation = \"maxout\"",
                     "kind = \"adamw\"\nlr = 0.01\nclip_norm = 0.5", 3);
}

TEST_CASE("killed and resumed equals uninterrupted: frozen layer, accumulation, PGD adversarial rows",
          "[checkpoint][resume]") {
  check_resume_exact("kind = \"mlp\"\nhidden = [24, 24]\ndropout = 0.2\nfreeze = [\"02_dense\"]",
                     "kind = \"adam\"\nlr = 0.01\n[adversarial]\nmethod = \"pgd\"\nepsilon = 0.2\nsteps = 2", 5, false,
                     "accumulate = 2\n");
}

// Integers are saved as int64 (storage/checkpoint/StateFields.h): seeds that a double cannot
// hold (2^53 + 1) and those at the ends of the range round-trip, and resume accepts them.
TEST_CASE("killed and resumed equals uninterrupted: Transformer LM, attention dropout", "[checkpoint][resume]") {
  check_resume_exact("kind = \"transformer_lm\"\nlayers = 1\nwidth = 16\nheads = 2\ndropout = 0.1",
                     "kind = \"adamw\"\nlr = 0.003\nclip_norm = 1.0", 4, true);
}

TEST_CASE("resume keeps every seed exactly: -1, 0, 2^53 + 1, 2^63 - 1", "[checkpoint][resume]") {
  TempDir dir;
  SynthOptions s;
  s.kind = "blobs";
  s.n = 200;
  s.dim = 4;
  s.classes = 2;
  write_dataset_file(dir.file("data.h5"), synthesize(s));
  write_text(dir.file("c.toml"), "[data]\ntrain = \"" + dir.file("data.h5") +
                                     "\"\n[model]\nkind = \"mlp\"\nhidden = [8]\n[train]\nbatch_size = 20\n"
                                     "epochs = 1\nprogress = false\n[checkpoint]\nevery_steps = 3\n");
  for (const char* seed : {"-1", "0", "9007199254740993", "9223372036854775807"}) {
    INFO("seed " << seed);
    const std::string out = dir.file(std::string("run") + seed);
    const std::vector<std::string> common = {"train", dir.file("c.toml"),       "--set", std::string("seed=") + seed,
                                             "--set", "out_dir=\"" + out + "\""};
    auto with = [&](std::vector<std::string> extra) {
      std::vector<std::string> args = common;
      args.insert(args.end(), extra.begin(), extra.end());
      return run_cli(args);
    };
    CliResult a = with({"--set", "train.max_steps=6"});
    INFO(a.err);
    REQUIRE(a.exit_code == 0);
    const CheckpointState saved = read_checkpoint_file(newest_checkpoint(out), {});
    CHECK(saved.version == CheckpointState::format_version);
    CHECK(std::to_string(saved.integer("generator_seed")) == seed);
    CliResult b = with({"--set", "train.max_steps=9", "--resume"});
    INFO(b.err);
    CHECK(b.exit_code == 0);
    CHECK(b.out.find("resumed from") != std::string::npos);
    CHECK(b.err.find("seed") == std::string::npos);
  }
}
