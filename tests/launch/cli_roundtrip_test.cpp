// The whole CLI path a user takes: synthesize, train, eval, predict, and the HDF5 files exchanged
// with h5py in both directions (docs/design.md "Data files": files written by h5py load, files we write read in h5py).
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

#include "support/JsonSupport.h"
#include "support/TestSupport.h"

using namespace dptrain::test;

namespace {
const char* python = "/usr/bin/python3";  // Debian's, which has h5py and numpy
}

TEST_CASE("synth, train, eval and predict through the CLI", "[cli]") {
  TempDir dir;
  CliResult s = run_cli({"data", "synth", "moons", "--n", "1000", "--seed", "2", "--out", dir.file("moons.h5")});
  REQUIRE(s.exit_code == 0);
  write_text(dir.file("c.toml"), "seed = 1\nout_dir = \"" + dir.file("run") + "\"\n[data]\ntrain = \"" +
                                     dir.file("moons.h5") +
                                     "\"\ntest_fraction = 0.2\nnormalize = \"zscore\"\n[model]\nkind = \"mlp\"\n"
                                     "hidden = [16, 16]\nactivation = \"tanh\"\n[optim]\nkind = \"adam\"\nlr = 0.01\n"
                                     "[train]\nepochs = 30\nbatch_size = 32\nprogress = false\n");
  CliResult t = run_cli({"train", dir.file("c.toml")});
  INFO(t.err);
  REQUIRE(t.exit_code == 0);
  CHECK(t.out.find("test accuracy: ") != std::string::npos);
  CHECK(!metrics_events(dir.file("run/metrics.jsonl"), "epoch").empty());

  CliResult e = run_cli({"eval", dir.file("c.toml")});
  REQUIRE(e.exit_code == 0);
  double acc = std::stod(e.out.substr(e.out.find("accuracy: ") + 10));
  CHECK(acc >= 97.0);

  CliResult p = run_cli(
      {"predict", "--model", dir.file("run/model.h5"), "--data", dir.file("moons.h5"), "--out", dir.file("pred.h5")});
  REQUIRE(p.exit_code == 0);
  // h5py reads our predictions and our model's parameters by layer path.
  CliResult py = run_program({python, "-c",
                              "import h5py, numpy as np, sys\n"
                              "p = h5py.File(sys.argv[1]); m = h5py.File(sys.argv[2]); d = h5py.File(sys.argv[3])\n"
                              "acc = (p['predictions'][:] == d['y'][:]).mean()\n"
                              "w = m['params/00_dense/weight']\n"
                              "print(p['outputs'].shape, w.shape, m.attrs['format'].decode(), round(float(acc), 3))\n",
                              dir.file("pred.h5"), dir.file("run/model.h5"), dir.file("moons.h5")});
  INFO(py.err);
  REQUIRE(py.exit_code == 0);
  CHECK(py.out.find("(1000, 2) (16, 2) dptrain-model/1") != std::string::npos);
  CHECK(std::stod(py.out.substr(py.out.rfind(' '))) >= 0.97);
}

TEST_CASE("a dataset written by h5py trains, and ours read in h5py", "[cli]") {
  TempDir dir;
  CliResult py = run_program({python, "-c",
                              "import h5py, numpy as np, sys\n"
                              "rng = np.random.default_rng(0)\n"
                              "x = rng.normal(size=(400, 3)).astype(np.float64)\n"
                              "y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)\n"
                              "with h5py.File(sys.argv[1], 'w') as f:\n"
                              "    f['x'] = x; f['y'] = y\n",
                              dir.file("h5py.h5")});
  REQUIRE(py.exit_code == 0);
  CliResult i = run_cli({"data", "inspect", dir.file("h5py.h5")});
  CHECK(i.exit_code == 0);
  CHECK(i.out.find("2 classes") != std::string::npos);
  write_text(dir.file("c.toml"), "out_dir = \"" + dir.file("run") + "\"\n[data]\ntrain = \"" + dir.file("h5py.h5") +
                                     "\"\ntest_fraction = 0.25\n[model]\nkind = \"logistic_regression\"\n"
                                     "[optim]\nlr = 0.1\n[train]\nepochs = 20\nbatch_size = 16\nprogress = false\n");
  CliResult t = run_cli({"train", dir.file("c.toml")});
  INFO(t.err);
  REQUIRE(t.exit_code == 0);
  double acc = std::stod(t.out.substr(t.out.find("test accuracy: ") + 15));
  CHECK(acc >= 95.0);

  run_cli({"data", "synth", "shapes", "--n", "50", "--out", dir.file("shapes.h5")});
  CliResult back = run_program(
      {python, "-c",
       "import h5py, sys\nf = h5py.File(sys.argv[1])\n"
       "print(f['x'].shape, f['x'].dtype, f['y'].dtype, f.attrs['format'].decode(), f.attrs['num_classes'])\n",
       dir.file("shapes.h5")});
  CHECK(back.out.find("(50, 1, 28, 28) float32 int32 dptrain-dataset/1 4") != std::string::npos);
}

TEST_CASE("a tiny transformer_lm trains on imported text and sample generates reproducible text", "[cli]") {
  TempDir dir;
  std::string corpus;
  const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away"};
  for (int i = 0; corpus.size() < 3000; ++i)
    corpus += std::string(words[(i * 7 + i / 3) % 11]) + (i % 9 == 8 ? ".\n" : " ");
  write_text(dir.file("corpus.txt"), corpus);
  CliResult im = run_cli({"data", "import", "--text", dir.file("corpus.txt"), "--context", "16", "--out",
                          dir.file("train.h5"), "--validation-out", dir.file("val.h5")});
  INFO(im.out << im.err);
  REQUIRE(im.exit_code == 0);
  write_text(dir.file("lm.toml"), "seed = 1\nout_dir = \"" + dir.file("run") + "\"\n[data]\ntrain = \"" +
                                      dir.file("train.h5") + "\"\nvalidation = \"" + dir.file("val.h5") +
                                      "\"\n[model]\nkind = \"transformer_lm\"\nwidth = 16\nlayers = 1\nheads = 2\n"
                                      "dropout = 0.0\n[optim]\nkind = \"adam\"\nlr = 0.01\n"
                                      "[train]\nepochs = 2\nmax_steps = 20\nbatch_size = 8\nprogress = false\n"
                                      "[checkpoint]\nevery_steps = 10\n");
  CliResult t = run_cli({"train", dir.file("lm.toml")});
  INFO(t.out << t.err);
  REQUIRE(t.exit_code == 0);
  REQUIRE(std::filesystem::exists(dir.file("run/model.h5")));
  CHECK(t.out.find("bits/token") != std::string::npos);  // the epoch line's language-model figure

  // Evaluation reports per token.
  CliResult ev = run_cli({"eval", "--model", dir.file("run/model.h5"), "--data", dir.file("val.h5")});
  INFO(ev.out << ev.err);
  REQUIRE(ev.exit_code == 0);
  CHECK(ev.out.find("bits/token") != std::string::npos);
  CHECK(ev.out.find("tokens: ") != std::string::npos);

  // Predictions are per step: outputs [N, 16, 256] (each step's a distribution), predictions [N, 16].
  CliResult pr = run_cli(
      {"predict", "--model", dir.file("run/model.h5"), "--data", dir.file("val.h5"), "--out", dir.file("pred.h5")});
  INFO(pr.out << pr.err);
  REQUIRE(pr.exit_code == 0);
  {
    auto predicted = read_float_datasets(dir.file("pred.h5"));
    REQUIRE(predicted.count("outputs"));
    const std::vector<float>& probs = predicted["outputs"];
    REQUIRE(probs.size() % (16 * 256) == 0);
    double first = 0.0;
    for (int j = 0; j < 256; ++j) first += probs[static_cast<size_t>(j)];
    CHECK(std::fabs(first - 1.0) < 1e-4);
  }

  // The run's directory resolves to its model.h5; the text is the prompt and --length new bytes.
  const std::string prompt = "the cat ";
  auto sample = [&](const std::string& source, const std::string& seed, std::vector<std::string> more = {}) {
    std::vector<std::string> args{"sample", source, "--prompt", prompt, "--length", "40", "--seed", seed};
    args.insert(args.end(), more.begin(), more.end());
    return run_cli(args);
  };
  CliResult a = sample(dir.file("run"), "3");
  INFO(a.err);
  REQUIRE(a.exit_code == 0);
  CHECK(a.out.size() == prompt.size() + 40);
  CHECK(a.out.rfind(prompt, 0) == 0);
  CliResult again = sample(dir.file("run/model.h5"), "3");
  REQUIRE(again.exit_code == 0);
  CHECK(again.out == a.out);
  CliResult other = sample(dir.file("run"), "4");
  REQUIRE(other.exit_code == 0);
  CHECK(other.out.size() == a.out.size());
  CHECK(other.out != a.out);

  // The last checkpoint holds the same parameters, so the same text: read with the run's data
  // for the task and input shape, and without it (from the stored parameter shapes).
  const std::string checkpoint = newest_checkpoint(dir.file("run"));
  CliResult c = sample(checkpoint, "3");
  INFO(c.err);
  REQUIRE(c.exit_code == 0);
  CHECK(c.out == a.out);
  std::filesystem::rename(dir.file("train.h5"), dir.file("moved.h5"));
  CliResult moved = sample(checkpoint, "3");
  INFO(moved.err);
  REQUIRE(moved.exit_code == 0);
  CHECK(moved.out == a.out);

  // Greedy decoding needs no seed; --out writes the same bytes that would be printed.
  CliResult g1 = sample(dir.file("run"), "1", {"--temperature", "0", "--out", dir.file("greedy.txt")});
  INFO(g1.err);
  REQUIRE(g1.exit_code == 0);
  CliResult g2 = sample(dir.file("run"), "2", {"--temperature", "0", "--top-k", "5"});
  REQUIRE(g2.exit_code == 0);
  CHECK(read_text(dir.file("greedy.txt")) == g2.out);
  write_text(dir.file("prompt.txt"), prompt);
  CliResult f =
      run_cli({"sample", dir.file("run"), "--prompt-file", dir.file("prompt.txt"), "--length", "40", "--seed", "3"});
  REQUIRE(f.exit_code == 0);
  CHECK(f.out == a.out);

  // Bad options: exit code 2 and a message naming the option.
  write_text(dir.file("empty.txt"), "");
  const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
      {{"--temperature", "-1"}, "--temperature"},
      {{"--temperature", "nan"}, "--temperature"},
      {{"--top-k", "257"}, "--top-k"},
      {{"--top-k", "-1"}, "--top-k"},
      {{"--length", "0"}, "--length"},
      {{"--length", "100000000"}, "--length"},
      {{"--n", "5"}, "--n"},
      {{"--prompt-file", dir.file("empty.txt")}, "--prompt-file"},
      {{"--prompt", ""}, "--prompt"},
  };
  for (const auto& [args, option] : bad) {
    std::vector<std::string> argv{"sample", dir.file("run")};
    argv.insert(argv.end(), args.begin(), args.end());
    CliResult r = run_cli(argv);
    INFO(args.front() << " " << args.back() << ": " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find(option) != std::string::npos);
    CHECK(r.out.empty());
  }

  // A model that is neither a GAN generator nor a language model.
  run_cli({"data", "synth", "moons", "--n", "100", "--out", dir.file("moons.h5")});
  write_text(dir.file("mlp.toml"), "out_dir = \"" + dir.file("mlp") + "\"\n[data]\ntrain = \"" + dir.file("moons.h5") +
                                       "\"\n[model]\nkind = \"mlp\"\nhidden = [4]\n[train]\nepochs = 1\n"
                                       "batch_size = 50\nprogress = false\n");
  REQUIRE(run_cli({"train", dir.file("mlp.toml")}).exit_code == 0);
  CliResult mlp = run_cli({"sample", dir.file("mlp"), "--out", dir.file("x.h5")});
  CHECK(mlp.exit_code == 2);
  CHECK(mlp.err.find("sample needs a GAN generator") != std::string::npos);
  CHECK(mlp.err.find("transformer_lm") != std::string::npos);
}

TEST_CASE("dptrain cv reports each fold and the mean, dptrain eval --attack the robust accuracy", "[cli]") {
  TempDir dir;
  REQUIRE(run_cli({"data", "synth", "grid", "--n", "1200", "--seed", "4", "--out", dir.file("grid.h5")}).exit_code ==
          0);
  write_text(dir.file("c.toml"), "seed = 1\nout_dir = \"" + dir.file("run") + "\"\n[data]\ntrain = \"" +
                                     dir.file("grid.h5") +
                                     "\"\ntest_fraction = 0.2\nnormalize = \"zscore\"\n[model]\nkind = \"mlp\"\n"
                                     "hidden = [32, 32]\n[optim]\nkind = \"adam\"\nlr = 0.01\n"
                                     "[train]\nepochs = 8\nbatch_size = 32\nprogress = false\n");
  CliResult cv = run_cli({"cv", dir.file("c.toml"), "--folds", "3"});
  INFO(cv.out << cv.err);
  REQUIRE(cv.exit_code == 0);
  CHECK(cv.out.find("mean  val_loss") != std::string::npos);
  const nlohmann::json json = nlohmann::json::parse(read_text(dir.file("run/cv.json")));
  REQUIRE(json["per_fold"].size() == 3);
  // The folds cover the 960 rows left after the test split once each, and the mean is theirs.
  int64_t rows = 0;
  double sum = 0.0;
  for (const auto& f : json["per_fold"]) {
    rows += f["val_rows"].get<int64_t>();
    sum += f["val_accuracy"].get<double>();
    CHECK(f["train_rows"].get<int64_t>() + f["val_rows"].get<int64_t>() == 960);
  }
  CHECK(rows == 960);
  CHECK(std::fabs(json["val_accuracy"]["mean"].get<double>() - sum / 3) < 1e-12);
  CHECK(json["val_accuracy"]["std"].get<double>() >= 0.0);
  CHECK(std::filesystem::exists(dir.file("run/fold-2/model.h5")));
  // 25 classes: top-5 accuracy in the epoch records and the test line.
  CHECK(metrics_events(dir.file("run/fold-0/metrics.jsonl"), "epoch").back().contains("val_top5_accuracy"));
  CHECK(cv.out.find("top-5") != std::string::npos);

  // --resume keeps the finished folds (after a requeue): nothing is trained again, same results.
  std::filesystem::remove(dir.file("run/fold-2/cv-fold.json"));
  CliResult again = run_cli({"cv", dir.file("c.toml"), "--folds", "3", "--resume"});
  REQUIRE(again.exit_code == 0);
  CHECK(again.out.find("fold 1/3: finished earlier") != std::string::npos);
  CHECK(again.out.find("fold 2/3: finished earlier") != std::string::npos);
  CHECK(again.out.find("fold 3/3 ==") != std::string::npos);  // its final checkpoint: nothing left to train
  const nlohmann::json resumed = nlohmann::json::parse(read_text(dir.file("run/cv.json")));
  CHECK(resumed["val_accuracy"]["mean"].get<double>() == json["val_accuracy"]["mean"].get<double>());

  CliResult bad = run_cli({"cv", dir.file("c.toml"), "--folds", "1"});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("--folds") != std::string::npos);
  bad = run_cli({"cv", dir.file("c.toml"), "--set", "data.validation_fraction=0.1"});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("data.folds") != std::string::npos);

  // PGD within 0.3 (z-scored units; the modes are about 0.7 apart) leaves a plainly trained model
  // 18-23 % of its 100 % (measured on folds 0-2); eval prints both figures.
  CliResult e = run_cli({"eval", "--model", dir.file("run/fold-0/model.h5"), "--data", dir.file("grid.h5"), "--attack",
                         "pgd", "--epsilon", "0.3", "--steps", "5"});
  INFO(e.err);
  REQUIRE(e.exit_code == 0);
  CHECK(e.out.find("top-5 accuracy: ") != std::string::npos);
  const double clean = std::stod(e.out.substr(e.out.find("accuracy: ") + 10));
  const double robust =
      std::stod(e.out.substr(e.out.find("robust accuracy under pgd") + 26)
                    .substr(e.out.substr(e.out.find("robust accuracy under pgd") + 26).find("): ") + 3));
  CHECK(robust < clean - 30.0);
  CHECK(run_cli({"eval", "--model", dir.file("run/fold-0/model.h5"), "--data", dir.file("grid.h5"), "--attack", "bim"})
            .exit_code == 2);
}
