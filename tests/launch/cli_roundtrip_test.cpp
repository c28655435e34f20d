// The whole CLI path a user takes: synthesize, train, eval, predict, and the HDF5 files exchanged
// with h5py in both directions (docs/design.md "Data files": files written by h5py load, files we write read in h5py).
#include <catch2/catch.hpp>

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
