// Self-training: the pseudo-label selection rules, the gains over the labelled rows alone on two
// datasets over several seeds (moons with its example's settings, shapes with the defaults; the
// margins in docs/self_training.md), and a run killed mid-round that resumes to the bitwise same
// end.
#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "models/core/Philox.h"
#include "storage/checkpoint/CheckpointStore.h"
#include "storage/dataset/Synthesize.h"
#include "support/JsonSupport.h"
#include "support/SeedStats.h"
#include "support/TestSupport.h"
#include "trainer/tasks/PseudoLabels.h"

using namespace dptrain;
using namespace dptrain::test;

namespace {

Predictions predictions(std::vector<std::pair<int64_t, float>> rows_p0) {
  Predictions p;
  p.k = 2;
  for (auto [row, p0] : rows_p0) {
    p.rows.push_back(row);
    p.probs.push_back(p0);
    p.probs.push_back(1.0f - p0);
  }
  return p;
}

double test_accuracy(const CliResult& r) {
  auto at = r.out.find("test accuracy: ");
  return at == std::string::npos ? -1.0 : std::stod(r.out.substr(at + 15)) / 100.0;
}

// moons with 10 labelled points per class and 2,000 unlabelled rows (drawn from `data_seed`), a
// separate test set, and the settings of examples/moons_self_training.toml.
std::string moons_config(const TempDir& dir, uint64_t data_seed = 16) {
  SynthOptions s;
  s.kind = "moons";
  s.n = 2020;
  s.seed = data_seed;
  s.labeled_per_class = 10;
  write_dataset_file(dir.file("semi.h5"), synthesize(s));
  s.n = 1000;
  s.seed = 4;
  s.labeled_per_class = -1;
  write_dataset_file(dir.file("test.h5"), synthesize(s));
  return "seed = 1\ntask = \"self_training\"\n[data]\ntrain = \"" + dir.file("semi.h5") + "\"\ntest = \"" +
         dir.file("test.h5") + "\"\nnormalize = \"zscore\"\n[model]\nkind = \"mlp\"\nhidden = [32, 32]\n" +
         "activation = \"tanh\"\n[optim]\nkind = \"adam\"\nlr = 0.01\n[train]\nbatch_size = 16\nprogress = false\n" +
         "[self_training]\nsteps_per_round = 1000\nselection = \"threshold\"\nthreshold = 0.95\n";
}

// Runs `dptrain train config --set out_dir=... --set ...` and returns its output.
CliResult train_cli(const TempDir& dir, const std::string& config, const std::string& out,
                    const std::vector<std::string>& sets) {
  std::vector<std::string> args = {"train", config, "--set", "out_dir=\"" + dir.file(out) + "\""};
  for (const auto& s : sets) {
    args.push_back("--set");
    args.push_back(s);
  }
  CliResult r = run_cli(args);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  return r;
}

}  // namespace

TEST_CASE("pseudo-label selection: threshold, top fraction, class balance, ties by row", "[selftraining]") {
  SelfTrainingConfig c;
  c.class_balanced = false;
  c.threshold = 0.9;
  Predictions p = predictions({{10, 0.95f}, {11, 0.2f}, {12, 0.5f}, {13, 0.02f}, {14, 0.91f}, {15, 0.99f}});
  Selection s = select_pseudo_labels(p, c);
  CHECK(s.rows == std::vector<int64_t>{10, 13, 14, 15});  // ascending rows
  CHECK(s.labels == std::vector<int32_t>{0, 1, 0, 0});
  c.class_balanced = true;  // class 1 has one candidate: each class contributes one, the most confident
  s = select_pseudo_labels(p, c);
  CHECK(s.rows == std::vector<int64_t>{13, 15});
  c.selection = "top_fraction";
  c.top_fraction = 0.5;  // 3 of 6 rows, 1 per class when balanced (3 / 2 classes)
  s = select_pseudo_labels(p, c);
  CHECK(s.rows == std::vector<int64_t>{13, 15});
  c.class_balanced = false;
  s = select_pseudo_labels(p, c);
  CHECK(s.rows == std::vector<int64_t>{10, 13, 15});
  c.relabel = true;  // curriculum: the fraction grows with the round
  CHECK(select_pseudo_labels(p, c, 1).rows.size() == 6);
  // Equal confidences: the lower row wins, whatever the input order.
  c = SelfTrainingConfig();
  c.selection = "top_fraction";
  c.top_fraction = 0.5;
  c.class_balanced = false;
  s = select_pseudo_labels(predictions({{7, 0.98f}, {3, 0.98f}, {5, 0.98f}, {9, 0.98f}}), c);
  CHECK(s.rows == std::vector<int64_t>{3, 5});
  CHECK(s.probs.size() == 4);
}

TEST_CASE("self-training on moons beats training on the labelled points alone", "[selftraining][trainer][quality]") {
  // Where the 20 labelled points fall decides how much there is to gain (labelled-only accuracy
  // ranges 80-100 % over draws), so the test takes six draws (data seeds 11-16).
  SeedStats base("moons, 10 labels per class: labelled only"), self("moons: self-training (3 rounds + entropy)"),
      entropy("moons: entropy minimization alone");
  CliResult first;
  for (uint64_t seed : quality_seeds(6)) {
    TempDir dir;
    write_text(dir.file("c.toml"), moons_config(dir, 10 + seed));
    base.add(seed, test_accuracy(train_cli(dir, dir.file("c.toml"), "base", {"self_training.rounds=1"})));
    CliResult st =
        train_cli(dir, dir.file("c.toml"), "self", {"self_training.rounds=3", "self_training.entropy_weight=1"});
    self.add(seed, test_accuracy(st));
    entropy.add(seed,
                test_accuracy(train_cli(dir, dir.file("c.toml"), "entropy",
                                        {"self_training.rounds=1", "self_training.steps_per_round=2000",
                                         "self_training.pseudo_labels=false", "self_training.entropy_weight=1"})));
    if (first.out.empty()) {
      first = st;
      bool pseudo_accuracy = false;
      for (const auto& round : metrics_events(dir.file("self/metrics.jsonl"), "round"))
        pseudo_accuracy |= round.contains("pseudo_accuracy");
      CHECK(pseudo_accuracy);
    }
  }
  base.report();
  self.report();
  entropy.report();
  CHECK(self.mean() >= 0.95);
  CHECK(self.mean() - base.mean() >= 0.03);
  CHECK(entropy.mean() > base.mean());
  CHECK(first.out.find("round 1/3: ") != std::string::npos);
  CHECK(first.out.find("pseudo-labels added") != std::string::npos);
}

TEST_CASE("self-training with the defaults lifts shapes with 5 labels per class by 10 points",
          "[selftraining][trainer][quality]") {
  SeedStats base("shapes, 5 labels per class: labelled only"), self("shapes: self-training (defaults)");
  for (uint64_t seed : quality_seeds()) {
    TempDir dir;
    SynthOptions s;
    s.kind = "shapes";
    s.n = 4020;
    s.seed = seed;
    s.labeled_per_class = 5;
    write_dataset_file(dir.file("semi.h5"), synthesize(s));
    s.n = 1000;
    s.seed = 100 + seed;
    s.labeled_per_class = -1;
    write_dataset_file(dir.file("test.h5"), synthesize(s));
    const std::string example = source_dir() + "/examples/shapes_self_training.toml";
    const std::vector<std::string> sets = {"seed=" + std::to_string(seed), "data.train=\"" + dir.file("semi.h5") + "\"",
                                           "data.test=\"" + dir.file("test.h5") + "\"", "threads=1",
                                           "train.progress=false"};
    std::vector<std::string> alone = sets;
    alone.push_back("self_training.rounds=1");
    base.add(seed, test_accuracy(train_cli(dir, example, "base", alone)));
    self.add(seed, test_accuracy(train_cli(dir, example, "self", sets)));
  }
  base.report();
  self.report();
  CHECK(self.mean() - base.mean() >= 0.10);
  CHECK(self.min() >= base.max());
}

TEST_CASE("self-training refuses a disabled coordinator, which selects its pseudo-labels", "[selftraining]") {
  TempDir dir;
  write_text(dir.file("c.toml"), moons_config(dir));
  CliResult r = run_cli({"train", dir.file("c.toml"), "--set", "coordinator.enabled=false"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("enabled") && Catch::Contains("coordinator"));
}

TEST_CASE("self-training killed mid-round resumes to the bitwise same end", "[selftraining][resume]") {
  TempDir dir;
  write_text(dir.file("c.toml"), moons_config(dir) + "[checkpoint]\nevery_steps = 7\n");
  auto args = [&](const std::string& out) {
    return std::vector<std::string>{dptrain_binary(),
                                    "train",
                                    dir.file("c.toml"),
                                    "--set",
                                    "out_dir=\"" + dir.file(out) + "\"",
                                    "--set",
                                    "self_training.rounds=3",
                                    "--set",
                                    "self_training.steps_per_round=40",
                                    "--set",
                                    "self_training.entropy_weight=0.5",
                                    "--resume"};
  };
  CliResult a = run_program(args("a"));
  INFO(a.out << a.err);
  REQUIRE(a.exit_code == 0);
  // Rounds end at steps 40 and 80: kill in round 2, between its checkpoints.
  Philox rng(5, RandomPurpose::synth, 21);
  const int64_t kill_step = 50 + static_cast<int64_t>(rng.below(20));
  {
    BackgroundProcess b(args("b"), {"DPTRAIN_TEST_STALL=0:" + std::to_string(kill_step) + ":120"});
    const std::string expect = CheckpointStore::file_name(kill_step / 7 * 7);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (read_text(dir.file("b/checkpoints/latest")).find(expect) == std::string::npos &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    b.kill(SIGKILL);
    b.wait();
  }
  REQUIRE(!std::filesystem::exists(dir.file("b/model.h5")));
  CliResult c = run_program(args("b"));
  INFO(c.out << c.err);
  REQUIRE(c.exit_code == 0);
  CHECK(c.out.find("resumed from") != std::string::npos);
  CheckpointStore sa(dir.file("a/checkpoints"), 3), sb(dir.file("b/checkpoints"), 3);
  auto fa = read_float_datasets(sa.list().front()), fb = read_float_datasets(sb.list().front());
  REQUIRE(fa.size() == fb.size());
  for (const auto& [name, values] : fa) {
    INFO(name);
    CHECK(fb[name] == values);
  }
  CHECK(read_float_datasets(dir.file("a/model.h5")) == read_float_datasets(dir.file("b/model.h5")));
}
