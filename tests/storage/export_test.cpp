// `dptrain export` end to end: tiny models trained through the CLI, exported to safetensors and
// ONNX, and checked by tests/storage/export_check.py against `dptrain predict`: the safetensors
// file loaded by python/dptrain_torch.py (strict load_state_dict) into PyTorch, the ONNX file
// through onnx.checker and OpenCV's dnn importer, both within 1e-4 of predict's outputs with the
// same predicted classes. Then the errors: unknown format, missing model, a layer with no ONNX form.
#include <catch2/catch.hpp>

#include <filesystem>

#include "storage/export/OnnxExport.h"
#include "support/TestSupport.h"

using namespace dptrain::test;

namespace {

const char* python = "/usr/bin/python3";  // Debian's: torch, numpy, h5py, onnx, cv2

// Trains `model` (the [model] table and anything after it) on `data` into dir/run and writes
// `dptrain predict`'s outputs for every row of `data` to dir/pred.h5.
void train_and_predict(const TempDir& dir, const std::string& data, const std::string& extra_data,
                       const std::string& model, int epochs) {
  write_text(dir.file("c.toml"), "seed = 3\nout_dir = \"" + dir.file("run") + "\"\n[data]\ntrain = \"" + data +
                                     "\"\ntest_fraction = 0.2\n" + extra_data + "\n" + model +
                                     "\n[optim]\nkind = \"adam\"\nlr = 0.01\n[train]\nepochs = " +
                                     std::to_string(epochs) + "\nbatch_size = 32\nprogress = false\n");
  CliResult t = run_cli({"train", dir.file("c.toml")});
  INFO(t.out << t.err);
  REQUIRE(t.exit_code == 0);
  CliResult p = run_cli({"predict", "--model", dir.file("run/model.h5"), "--data", data, "--out", dir.file("pred.h5")});
  INFO(p.out << p.err);
  REQUIRE(p.exit_code == 0);
}

// Exports dir/run/model.h5 to both formats and runs the check. A build without libonnx must
// refuse ONNX by saying so; its safetensors file is still checked.
void export_and_check(const TempDir& dir, const std::string& data, bool cv2 = true) {
  const bool onnx = dptrain::onnx_export_available();
  for (const char* format : {"safetensors", "onnx"}) {
    CliResult e = run_cli(
        {"export", dir.file("run/model.h5"), "--format", format, "--out", dir.file(std::string("model.") + format)});
    INFO(e.out << e.err);
    if (format == std::string("onnx") && !onnx) {
      CHECK(e.exit_code == 2);
      CHECK(e.err.find("built without ONNX support") != std::string::npos);
      continue;
    }
    REQUIRE(e.exit_code == 0);
    CHECK(e.out.find(std::string("(") + format) != std::string::npos);
  }
  std::vector<std::string> argv{python,
                                source_dir() + "/tests/storage/export_check.py",
                                source_dir() + "/python",
                                data,
                                dir.file("pred.h5"),
                                "--safetensors",
                                dir.file("model.safetensors")};
  if (onnx) argv.insert(argv.end(), {"--onnx", dir.file("model.onnx")});
  if (onnx && cv2) argv.push_back("--cv2");
  CliResult c = run_program(argv);
  INFO(c.out << c.err);
  CHECK(c.exit_code == 0);
  CHECK(c.out.find("safetensors max_abs=") != std::string::npos);
  if (onnx) {
    CHECK(c.out.find("onnx checker ok opset=13") != std::string::npos);
    CHECK(c.out.find("onnx-reference max_abs=") != std::string::npos);
  }
  if (onnx && cv2) CHECK(c.out.find("onnx-cv2 max_abs=") != std::string::npos);
  WARN(c.out);
}

}  // namespace

TEST_CASE("export: an MLP with input scaling matches predict in PyTorch and ONNX", "[export][cli]") {
  TempDir dir;
  REQUIRE(run_cli({"data", "synth", "moons", "--n", "400", "--seed", "1", "--out", dir.file("moons.h5")}).exit_code ==
          0);
  train_and_predict(dir, dir.file("moons.h5"), "normalize = \"zscore\"",
                    "[model]\nkind = \"mlp\"\nhidden = [16, 8]\nactivation = \"leaky_relu\"\nslope = 0.1\n"
                    "dropout = 0.1",
                    5);
  export_and_check(dir, dir.file("moons.h5"));
}

TEST_CASE("export: a CNN with batch norm, pools and dropout matches predict", "[export][cli]") {
  TempDir dir;
  REQUIRE(run_cli({"data", "synth", "shapes", "--n", "160", "--seed", "1", "--out", dir.file("shapes.h5")}).exit_code ==
          0);
  train_and_predict(
      dir, dir.file("shapes.h5"), "",
      "[model]\nkind = \"cnn\"\nblocks = [\n"
      "  { type = \"conv2d\", filters = 6, kernel = 3, padding = 1 },\n"
      "  { type = \"batchnorm\" },\n"
      "  { type = \"relu\" },\n"
      "  { type = \"maxpool2d\", size = 2 },\n"
      "  { type = \"conv2d\", filters = 6, kernel = 3, padding = 1, groups = 3, activation = \"tanh\" },\n"
      "  { type = \"avgpool2d\", size = 3, stride = 2, padding = 1 },\n"
      "  { type = \"flatten\" },\n"
      "  { type = \"dropout\", p = 0.2 },\n"
      "  { type = \"dense\", units = 16, activation = \"relu\" },\n"
      "]",
      2);
  export_and_check(dir, dir.file("shapes.h5"));
}

TEST_CASE("export: a ResNet with projection shortcuts matches predict", "[export][cli]") {
  TempDir dir;
  REQUIRE(run_cli({"data", "synth", "shapes", "--n", "160", "--seed", "2", "--out", dir.file("shapes.h5")}).exit_code ==
          0);
  train_and_predict(dir, dir.file("shapes.h5"), "", "[model]\nkind = \"resnet\"\ndepth = 1\nwidth = 4\nstages = 2", 2);
  export_and_check(dir, dir.file("shapes.h5"));
}

// OpenCV 4.6's importer reads none of ONNX's recurrent operators nor the attention's 5-d reshape,
// so the sequence graphs are checked by the reference evaluator of export_check.py alone.
TEST_CASE("export: LSTM, GRU and RNN classifiers match predict", "[export][cli]") {
  for (const char* kind : {"lstm_classifier", "gru_classifier", "rnn_classifier"}) {
    TempDir dir;
    INFO(kind);
    REQUIRE(
        run_cli({"data", "synth", "parity", "--n", "200", "--dim", "8", "--out", dir.file("parity.h5")}).exit_code ==
        0);
    // Two layers: the first returns every step's state, the second its last.
    train_and_predict(dir, dir.file("parity.h5"), "", std::string("[model]\nkind = \"") + kind + "\"\nhidden = [8, 6]",
                      2);
    export_and_check(dir, dir.file("parity.h5"), false);
  }
}

TEST_CASE("export: a Transformer classifier with padding and a tied language model match predict", "[export][cli]") {
  {
    // Zero-padded bit strings with pad_id = 0: attention and the mean leave padding out, and rows
    // of zeros only are all padding (no key, an empty mean).
    TempDir dir;
    REQUIRE(run_cli({"data", "synth", "parity_varlen", "--n", "200", "--dim", "8", "--seed", "4", "--out",
                     dir.file("pv.h5")})
                .exit_code == 0);
    train_and_predict(dir, dir.file("pv.h5"), "",
                      "[model]\nkind = \"transformer_classifier\"\nvocab = 2\nwidth = 8\nlayers = 2\nheads = 2\n"
                      "pad_id = 0\npositional = \"sinusoidal\"",
                      2);
    export_and_check(dir, dir.file("pv.h5"), false);
  }
  {
    // Causal attention, learned positions, the output tied to the embedding; per-step softmax.
    TempDir dir;
    write_text(dir.file("corpus.txt"), test_text(3000, 5));
    REQUIRE(run_cli({"data", "import", "--text", dir.file("corpus.txt"), "--context", "16", "--out", dir.file("lm.h5")})
                .exit_code == 0);
    train_and_predict(dir, dir.file("lm.h5"), "",
                      "[model]\nkind = \"transformer_lm\"\nwidth = 16\nlayers = 1\nheads = 2", 1);
    export_and_check(dir, dir.file("lm.h5"), false);
  }
}

TEST_CASE("export: autoencoders, a VAE, concat, upsampling and highway layers match predict", "[export][cli]") {
  const std::vector<std::string> models = {
      // Transposed convolutions; the reconstruction (no head) is compared value by value.
      "[model]\nkind = \"autoencoder\"\nconv = true\nwidth = 4\ncode = 8",
      // The sample is its mean at inference.
      "[model]\nkind = \"vae\"\nhidden = [32]\nlatent = 4",
      "[model]\nkind = \"cnn\"\nblocks = [\n"
      "  { type = \"concat\", branches = [\n"
      "    { layers = [{ type = \"conv2d\", filters = 2, kernel = 3, padding = 1 }] },\n"
      "    { layers = [{ type = \"conv2d\", filters = 3, kernel = 1 }] } ] },\n"
      "  { type = \"maxpool2d\", size = 2 },\n"
      "  { type = \"upsample2d\", scale = 2 },\n"
      "  { type = \"maxpool2d\", size = 4 },\n"
      "  { type = \"highway\", activation = \"tanh\" },\n"
      "]",
  };
  for (const std::string& model : models) {
    INFO(model);
    TempDir dir;
    REQUIRE(
        run_cli({"data", "synth", "shapes", "--n", "120", "--seed", "3", "--out", dir.file("shapes.h5")}).exit_code ==
        0);
    train_and_predict(dir, dir.file("shapes.h5"), "", model, 1);
    export_and_check(dir, dir.file("shapes.h5"));
  }
}

TEST_CASE("export: bad input is named and leaves no file", "[export][cli]") {
  TempDir dir;
  REQUIRE(run_cli({"data", "synth", "shapes", "--n", "60", "--out", dir.file("shapes.h5")}).exit_code == 0);
  // Max-unpooling has safetensors names (none of its own) but no ONNX form.
  train_and_predict(dir, dir.file("shapes.h5"), "",
                    "[model]\nkind = \"cnn\"\nblocks = [{ type = \"conv2d\", filters = 2, padding = 1 }, "
                    "{ type = \"maxpool2d\" }, { type = \"maxunpool2d\" }]",
                    1);
  const std::string model = dir.file("run/model.h5");

  CliResult format = run_cli({"export", model, "--format", "tflite", "--out", dir.file("m.tflite")});
  CHECK(format.exit_code == 2);
  CHECK(format.err.find("--format 'tflite' is not one of: safetensors, onnx") != std::string::npos);

  CliResult missing = run_cli({"export", dir.file("nope.h5"), "--format", "onnx", "--out", dir.file("m.onnx")});
  CHECK(missing.exit_code == 2);
  CHECK(missing.err.find("nope.h5") != std::string::npos);

  CliResult no_out = run_cli({"export", model, "--format", "onnx"});
  CHECK(no_out.exit_code == 2);
  CHECK(no_out.err.find("--out is required") != std::string::npos);

  const auto before = dir.entries();
  CliResult unpool = run_cli({"export", model, "--format", "onnx", "--out", dir.file("m.onnx")});
  CHECK(unpool.exit_code == 2);
  if (dptrain::onnx_export_available())
    CHECK(unpool.err.find("layer 02_maxunpool2d (maxunpool2d) has no ONNX form") != std::string::npos);
  CHECK(dir.entries() == before);  // neither the file nor a temporary one

  CliResult no_dir = run_cli({"export", model, "--format", "safetensors", "--out", dir.file("absent/m.safetensors")});
  CHECK(no_dir.exit_code == 2);
  CHECK(no_dir.err.find("absent") != std::string::npos);

  // The same model as safetensors.
  CliResult st = run_cli({"export", model, "--format", "safetensors", "--out", dir.file("m.safetensors")});
  INFO(st.err);
  REQUIRE(st.exit_code == 0);
  CliResult names =
      run_program({python, "-c",
                   "import json, struct, sys\nf = open(sys.argv[1], 'rb'); n = struct.unpack('<Q', f.read(8))[0]\n"
                   "h = json.loads(f.read(n)); h.pop('__metadata__')\nprint(' '.join(sorted(h)))\n",
                   dir.file("m.safetensors")});
  CHECK(names.out == "0.bias 0.weight 3.bias 3.weight\n");
}
