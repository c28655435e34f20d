// The classic models reach the accuracy the foundation issue promises, on fixed seeds:
// linear regression recovers known weights, logistic/softmax/SVM separate blobs, an MLP solves
// moons and XOR where logistic regression cannot, and a CNN recognizes the shapes images.
#include <catch2/catch.hpp>

#include "models/core/ConfigNode.h"
#include "storage/checkpoint/ModelFile.h"
#include "support/TrainingRun.h"

using namespace dptrain;
using namespace dptrain::test;

namespace {

std::string config(const std::string& data, const std::string& model, const std::string& optim, int64_t epochs,
                   int64_t batch = 32, const std::string& extra_data = "") {
  return "seed = 3\n[data]\ntrain = \"" + data + "\"\ntest_fraction = 0.2\n" + extra_data + "\n[model]\n" + model +
         "\n[optim]\n" + optim + "\n[train]\nbatch_size = " + std::to_string(batch) +
         "\nepochs = " + std::to_string(epochs) + "\n";
}

}  // namespace

TEST_CASE("linear regression recovers the weights of linear data", "[trainer][classic]") {
  TempDir dir;
  SynthOptions s;
  s.kind = "linear";
  s.n = 4000;
  s.dim = 5;
  s.seed = 11;
  std::string data = synth_file(dir, "linear", s);
  TrainResult r = train_toml(dir, config(data, "kind = \"linear_regression\"", "kind = \"sgd\"\nlr = 0.05", 15));
  std::vector<float> truth = DatasetFile(data).read_extra("true_weights");
  ModelFileMeta meta = read_model_meta(r.model_path);
  // Rebuild the trained model and read its weight and bias.
  ConfigNode root = ConfigNode::parse_string(meta.config_text, "stored");
  Model model(build_model(root.child("model"), meta.task).root, Shape{5}, Device::cpu);
  load_model_params(r.model_path, model);
  Tensor w = model.param("00_dense/weight"), b = model.param("00_dense/bias");
  for (int j = 0; j < 5; ++j) CHECK(std::fabs(w.data()[j] - truth[static_cast<size_t>(j)]) < 0.05);
  CHECK(std::fabs(b.data()[0] - truth[5]) < 0.05);
  CHECK(r.test.loss < 0.02);  // noise variance is 0.01
}

TEST_CASE("logistic regression separates two blobs", "[trainer][classic]") {
  TempDir dir;
  SynthOptions s;
  s.kind = "blobs";
  s.classes = 2;
  s.n = 2000;
  s.seed = 5;
  std::string data = synth_file(dir, "blobs2", s);
  TrainResult r = train_toml(dir, config(data, "kind = \"logistic_regression\"", "kind = \"sgd\"\nlr = 0.1", 10, 32,
                                         "normalize = \"zscore\""));
  CHECK(r.test.accuracy >= 0.99);
}

TEST_CASE("softmax regression on 5 blobs", "[trainer][classic]") {
  TempDir dir;
  SynthOptions s;
  s.kind = "blobs";
  s.classes = 5;
  s.dim = 10;
  s.n = 3000;
  s.seed = 2;
  std::string data = synth_file(dir, "blobs5", s);
  TrainResult r = train_toml(
      dir, config(data, "kind = \"softmax_regression\"", "kind = \"sgd\"\nlr = 0.1", 15, 64, "normalize = \"zscore\""));
  CHECK(r.test.accuracy >= 0.95);
}

TEST_CASE("linear SVM on blobs", "[trainer][classic]") {
  TempDir dir;
  SynthOptions s;
  s.kind = "blobs";
  s.classes = 4;
  s.dim = 8;
  s.n = 3000;
  s.seed = 9;
  std::string data = synth_file(dir, "blobs4", s);
  TrainResult r = train_toml(dir, config(data, "kind = \"linear_svm\"", "kind = \"sgd\"\nlr = 0.05\nl2 = 0.001", 15, 64,
                                         "normalize = \"zscore\""));
  CHECK(r.test.accuracy >= 0.98);
}

TEST_CASE("an MLP solves moons", "[trainer][classic]") {
  TempDir dir;
  SynthOptions s;
  s.kind = "moons";
  s.n = 2000;
  s.seed = 3;
  std::string data = synth_file(dir, "moons", s);
  TrainResult r = train_toml(dir, config(data, "kind = \"mlp\"\nhidden = [32, 32]\nactivation = \"tanh\"",
                                         "kind = \"adam\"\nlr = 0.01", 40, 64, "normalize = \"zscore\""));
  CHECK(r.test.accuracy >= 0.98);
}

TEST_CASE("an MLP solves XOR while logistic regression cannot", "[trainer][classic]") {
  TempDir dir;
  SynthOptions s;
  s.kind = "xor";
  s.n = 2000;
  s.seed = 1;
  std::string data = synth_file(dir, "xor", s);
  TrainResult mlp = train_toml(
      dir, config(data, "kind = \"mlp\"\nhidden = [16]\nactivation = \"relu\"", "kind = \"adam\"\nlr = 0.02", 40));
  CHECK(mlp.test.accuracy >= 0.99);
  TrainResult linear = train_toml(dir, config(data, "kind = \"logistic_regression\"", "kind = \"sgd\"\nlr = 0.1", 20));
  CHECK(linear.test.accuracy <= 0.65);
}

TEST_CASE("a CNN recognizes the shapes images", "[trainer][classic]") {
  TempDir dir;
  SynthOptions s;
  s.kind = "shapes";
  s.n = 4000;
  s.seed = 1;
  std::string data = synth_file(dir, "shapes", s);
  std::string model =
      "kind = \"cnn\"\nblocks = [ { type = \"conv2d\", filters = 8, kernel = 5, padding = 2, activation = \"relu\" },"
      " { type = \"maxpool2d\", size = 2 }, { type = \"conv2d\", filters = 16, kernel = 3, padding = 1, activation = "
      "\"relu\" }, { type = \"maxpool2d\", size = 2 }, { type = \"dense\", units = 32, activation = \"relu\" } ]";
  TrainResult r = train_toml(dir, config(data, model, "kind = \"momentum\"\nlr = 0.05", 4, 64));
  CHECK(r.test.accuracy >= 0.95);
}

TEST_CASE("every optimizer reduces the training loss of an MLP", "[trainer][optim]") {
  TempDir dir;
  SynthOptions s;
  s.kind = "blobs";
  s.classes = 3;
  s.dim = 4;
  s.n = 600;
  s.seed = 8;
  std::string data = synth_file(dir, "blobs", s);
  for (const char* optim : {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"}) {
    DYNAMIC_SECTION(optim) {
      std::string o = std::string("kind = \"") + optim + "\"\nlr = " +
                      (std::string(optim).rfind("adam", 0) == 0 || std::string(optim) == "rmsprop" ? "0.01" : "0.05");
      TrainResult r =
          train_toml(dir, config(data, "kind = \"mlp\"\nhidden = [16]", o, 8, 32, "normalize = \"zscore\""));
      CHECK(r.test.accuracy >= 0.95);
      CHECK(r.train.loss < 0.3);
    }
  }
}
