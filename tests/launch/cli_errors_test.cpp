// Bad input through the CLI: each defect gives one clear line naming the file, key or dataset,
// exit code 2, and no crash. (docs/design.md rule 7; the foundation issue's "Bad input" list.)
#include <catch2/catch.hpp>

#include <cmath>

#include "storage/hdf5/H5.h"
#include "support/TestSupport.h"

using namespace dptrain;
using namespace dptrain::test;

namespace {

// A config training an MLP on `data`.
std::string config_for(const std::string& data, const std::string& extra = "") {
  return "seed = 1\n" + extra + "\n[data]\ntrain = \"" + data + "\"\n[model]\nkind = \"mlp\"\nhidden = [4]\n" +
         "[train]\nepochs = 1\nbatch_size = 8\nprogress = false\n";
}

// Writes an HDF5 file with /x of the given dims and /y labels.
void write_raw(const std::string& path, const std::vector<hsize_t>& xdims, const std::vector<float>& x,
               const std::vector<int32_t>& y, int64_t num_classes = -1) {
  h5_quiet();
  H5Id f = h5_file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), path);
  h5_write_floats(f, "x", xdims, x.data());
  if (!y.empty()) h5_write_ints(f, "y", {y.size()}, y.data());
  if (num_classes > 0) h5_write_int_attribute(f, "num_classes", num_classes);
}

// Runs `dptrain train` on a config and checks exit code 2 and that stderr names `expect`.
void expect_bad_input(const TempDir& dir, const std::string& config, const std::string& expect) {
  write_text(dir.file("c.toml"), config);
  CliResult r = run_cli({"train", dir.file("c.toml"), "--set", "out_dir=\"" + dir.file("run") + "\""});
  INFO("stderr: " << r.err);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find(expect) != std::string::npos);
  CHECK(r.err.find("error") != std::string::npos);
  // One line of explanation, not a stack of library messages.
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
}

}  // namespace

TEST_CASE("a missing config file", "[cli]") {
  TempDir dir;
  CliResult r = run_cli({"train", dir.file("nope.toml")});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("nope.toml") != std::string::npos);
}

TEST_CASE("a missing data file", "[cli]") {
  TempDir dir;
  expect_bad_input(dir, config_for(dir.file("absent.h5")), "absent.h5: cannot open");
}

TEST_CASE("a file that is not HDF5", "[cli]") {
  TempDir dir;
  write_text(dir.file("text.h5"), "this is not an HDF5 file\n");
  expect_bad_input(dir, config_for(dir.file("text.h5")), "not an HDF5 file");
}

TEST_CASE("a dataset with the wrong shape", "[cli]") {
  TempDir dir;
  write_raw(dir.file("flat.h5"), {16}, std::vector<float>(16, 0.5f), std::vector<int32_t>(16, 0));
  expect_bad_input(dir, config_for(dir.file("flat.h5")), "/x must have shape [N, features...]");
  write_raw(dir.file("short_y.h5"), {16, 2}, std::vector<float>(32, 0.5f), std::vector<int32_t>(10, 0));
  expect_bad_input(dir, config_for(dir.file("short_y.h5")), "/y has 10 rows but /x has 16");
}

TEST_CASE("labels out of range", "[cli]") {
  TempDir dir;
  std::vector<int32_t> y(16, 1);
  y[7] = 5;
  write_raw(dir.file("labels.h5"), {16, 2}, std::vector<float>(32, 0.5f), y, 3);
  expect_bad_input(dir, config_for(dir.file("labels.h5")), "/y row 7 has label 5, outside [0, 3)");
  y[7] = -1;
  write_raw(dir.file("negative.h5"), {16, 2}, std::vector<float>(32, 0.5f), y);
  expect_bad_input(dir, config_for(dir.file("negative.h5")), "/y row 7 has label -1");
}

TEST_CASE("NaN features", "[cli]") {
  TempDir dir;
  std::vector<float> x(32, 0.5f);
  x[2 * 9 + 1] = std::nanf("");
  write_raw(dir.file("nan.h5"), {16, 2}, x, std::vector<int32_t>(16, 0));
  expect_bad_input(dir, config_for(dir.file("nan.h5")), "/x row 9 contains NaN or Inf");
}

TEST_CASE("an unknown config key names file, line and the valid keys", "[cli]") {
  TempDir dir;
  write_raw(dir.file("ok.h5"), {16, 2}, std::vector<float>(32, 0.5f), std::vector<int32_t>(16, 0));
  std::string cfg = config_for(dir.file("ok.h5")) + "[optim]\nkind = \"sgd\"\nlerning_rate = 0.1\n";
  expect_bad_input(dir, cfg, "c.toml:14: unknown key 'lerning_rate' in [optim]; valid keys:");
  CliResult r = run_cli({"train", dir.file("c.toml")});
  CHECK(r.err.find(" lr,") != std::string::npos);
}

TEST_CASE("a config value of the wrong type or out of range", "[cli]") {
  TempDir dir;
  write_raw(dir.file("ok.h5"), {16, 2}, std::vector<float>(32, 0.5f), std::vector<int32_t>(16, 0));
  expect_bad_input(dir, config_for(dir.file("ok.h5")) + "[optim]\nlr = \"fast\"\n",
                   "key 'optim.lr': must be a number, got a string");
  expect_bad_input(dir, config_for(dir.file("ok.h5")) + "[optim]\nkind = \"adamax\"\n",
                   "'adamax' is not one of: sgd, momentum");
  expect_bad_input(dir, config_for(dir.file("ok.h5")) + "[optim]\nlr = -1\n", "key 'optim.lr': must be > 0");
}

TEST_CASE("a TOML syntax error names the line", "[cli]") {
  TempDir dir;
  write_text(dir.file("c.toml"), "seed = 1\n[data\ntrain = 3\n");
  CliResult r = run_cli({"train", dir.file("c.toml")});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("c.toml:2: TOML syntax error") != std::string::npos);
}

TEST_CASE("usage errors and help", "[cli]") {
  CHECK(run_cli({}).exit_code == 2);
  CHECK(run_cli({"frobnicate"}).exit_code == 2);
  CliResult bad = run_cli({"train", "x.toml", "--sett", "a=b"});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("unknown option --sett") != std::string::npos);
  for (const char* cmd : {"train", "eval", "predict", "data"}) {
    CliResult h = run_cli({cmd, "--help"});
    INFO(cmd);
    CHECK(h.exit_code == 0);
    CHECK(h.out.find("usage: dptrain") != std::string::npos);
  }
  CliResult synth = run_cli({"data", "synth", "no_such_kind", "--out", "/tmp/never.h5"});
  CHECK(synth.exit_code == 2);
  CHECK(synth.err.find("no_such_kind") != std::string::npos);
}
