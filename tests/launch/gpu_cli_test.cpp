// The GPU options of the CLI on a machine or build without a usable GPU: device = "cuda",
// comm.backend = "nccl" and `dptrain launch --gpus` each fail with exit code 2 and one line naming
// the key or option. On a GPU machine these paths are not reachable and the tests say so.
#include <catch2/catch.hpp>

#include "models/kernels/cuda/CudaBackend.h"
#include "storage/dataset/DatasetFile.h"
#include "support/TestSupport.h"

using namespace dptrain;
using namespace dptrain::test;

namespace {

bool no_gpu() {
  if (cuda_devices() > 0) {
    WARN("a GPU is visible: the no-GPU error paths are not reachable here");
    return false;
  }
  return true;
}

std::string write_config(const TempDir& dir, const std::string& extra) {
  write_dataset_file(dir.file("d.h5"), small_classification(64, 4, 2));
  const std::string path = dir.file("c.toml");
  write_text(path, "seed = 1\nout_dir = \"" + dir.file("run") + "\"\n" + extra + "\n[data]\ntrain = \"" +
                       dir.file("d.h5") +
                       "\"\n[model]\nkind = \"mlp\"\nhidden = [4]\n[train]\nepochs = 1\nbatch_size = 8\n"
                       "progress = false\n");
  return path;
}

void expect_bad_input(const CliResult& r, const std::string& expect) {
  INFO("stderr: " << r.err);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find(expect) != std::string::npos);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
}

}  // namespace

TEST_CASE("device = \"cuda\" without a GPU names the key and exits 2", "[cli][launch]") {
  if (!no_gpu()) return;
  TempDir dir;
  const std::string config = write_config(dir, "device = \"cuda\"");
  CliResult r = run_cli({"train", config});
  expect_bad_input(r, "set device = \"cpu\"");
  // The same through --set, and with CUDA graphs asked for.
  r = run_cli({"train", write_config(dir, "cuda_graphs = true"), "--set", "device=\"cuda\""});
  expect_bad_input(r, "device = \"cpu\"");
}

TEST_CASE("comm.backend = \"nccl\" without a GPU names the key and exits 2", "[cli][launch]") {
  if (!no_gpu()) return;
  TempDir dir;
  CliResult r = run_cli({"train", write_config(dir, "[comm]\nbackend = \"nccl\"")});
  expect_bad_input(r, "comm.backend = \"nccl\"");
}

TEST_CASE("dptrain launch --gpus: bad values and a machine without GPUs", "[cli][launch]") {
  TempDir dir;
  const std::string config = write_config(dir, "");
  for (const char* bad : {"0", "-1", "two", "3x", ""}) {
    DYNAMIC_SECTION("--gpus '" << bad << "'") {
      expect_bad_input(run_cli({"launch", "--gpus", bad, config}), "--gpus takes 'all' or a number of GPUs");
    }
  }
  if (!no_gpu()) return;
  for (const char* ok : {"all", "1", "2"}) {
    DYNAMIC_SECTION("--gpus " << ok) {
      CliResult r = run_cli({"launch", "--gpus", ok, config});
      expect_bad_input(r, cuda_compiled() ? "no CUDA device is visible" : "built without CUDA");
      CHECK(r.err.find("--gpus") != std::string::npos);
    }
  }
}
