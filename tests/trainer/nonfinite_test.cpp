// A run whose summed gradient stops being finite (train.nonfinite): by default it stops at that
// step with exit code 4, naming the step and the first parameter at fault, and writes nothing from
// that state; "skip" leaves that step out and counts it (saved in checkpoints); "off" trains on.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <string>

#include "tests/support/TestSupport.h"

using namespace dptrain::test;
using Catch::Contains;

namespace {

std::string write_config(const TempDir& dir, const std::string& extra) {
  CliResult data =
      run_cli({"data", "synth", "blobs", "--n", "400", "--dim", "6", "--seed", "5", "--out", dir.file("data.h5")});
  REQUIRE(data.exit_code == 0);
  const std::string config = dir.file("run.toml");
  write_text(config, "seed = 3\nout_dir = \"" + dir.file("out") + "\"\n[data]\ntrain = \"" + dir.file("data.h5") +
                         "\"\n[model]\nkind = \"mlp\"\nhidden = [16]\n[train]\nbatch_size = 20\nepochs = 2\n"
                         "progress = false\nlog_every = 5\n[checkpoint]\nevery_steps = 1\n" +
                         extra);
  return config;
}

bool all_finite(const std::string& h5) {
  for (const auto& [name, values] : read_float_datasets(h5))
    for (float v : values)
      if (!std::isfinite(v)) return false;
  return true;
}

// The last "skipped_steps" in the run's metrics.jsonl, or -1.
int skipped_in_log(const std::string& metrics) {
  const std::string text = read_text(metrics);
  const size_t at = text.rfind("\"skipped_steps\":");
  return at == std::string::npos ? -1 : std::stoi(text.substr(at + 16));
}

}  // namespace

TEST_CASE("a diverging run stops at the step its gradient stops being finite", "[nonfinite][cli]") {
  TempDir dir;
  const std::string config = write_config(dir, "[optim]\nkind = \"sgd\"\nlr = 1e8\n");
  CliResult r = run_cli({"train", config});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 4);
  CHECK_THAT(r.err, Contains("the summed gradient is not finite (first in 00_dense/weight)"));
  const size_t at = r.err.find("step ");
  REQUIRE(at != std::string::npos);
  const int step = std::stoi(r.err.substr(at + 5));
  CHECK(step >= 2);
  // Nothing from the non-finite state: no model, and the newest checkpoint is the step before.
  CHECK_FALSE(std::filesystem::exists(dir.file("out/model.h5")));
  const std::string latest = newest_checkpoint(dir.file("out"));
  CHECK_THAT(latest, Contains("ckpt-" + std::string(10 - std::to_string(step - 1).size(), '0') +
                              std::to_string(step - 1) + ".h5"));
  CHECK(all_finite(latest));
}

TEST_CASE("train.nonfinite = skip leaves out a step with a non-finite gradient and counts it", "[nonfinite][cli]") {
  TempDir dir;
  const std::string config = write_config(dir, "[optim]\nkind = \"adam\"\nlr = 0.01\n");
  CliResult r = run_program({"env", "DPTRAIN_TEST_NONFINITE=0:7", dptrain_binary(), "train", config, "--set",
                             "train.nonfinite=\"skip\"", "--set", "train.epochs=1"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Contains("step 8: the summed gradient is not finite (first in 00_dense/weight); step skipped "
                             "(1 so far)"));
  CHECK(skipped_in_log(dir.file("out/metrics.jsonl")) == 1);
  CHECK(all_finite(dir.file("out/model.h5")));
  CHECK(read_text(dir.file("out/metrics.jsonl")).find("\"loss\":null") == std::string::npos);
  // The count is saved: a resumed run goes on from it.
  CliResult resumed = run_cli({"train", config, "--set", "train.nonfinite=\"skip\"", "--resume"});
  INFO(resumed.out << resumed.err);
  REQUIRE(resumed.exit_code == 0);
  CHECK_THAT(resumed.out, Contains("resumed from"));
  CHECK(skipped_in_log(dir.file("out/metrics.jsonl")) == 1);

  // Without the check the same fault poisons the parameters: the check is what kept them finite.
  TempDir off;
  const std::string unchecked = write_config(off, "[optim]\nkind = \"adam\"\nlr = 0.01\n");
  CliResult o = run_program({"env", "DPTRAIN_TEST_NONFINITE=0:7", dptrain_binary(), "train", unchecked, "--set",
                             "train.nonfinite=\"off\"", "--set", "train.epochs=1"});
  CHECK(o.exit_code == 0);
  CHECK_FALSE(all_finite(off.file("out/model.h5")));
}
