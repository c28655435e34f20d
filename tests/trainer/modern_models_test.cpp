// The modern models of issue #7 reach their stated results over several seeds (each seed its own
// data and initialization; support/SeedStats.h, margins in docs/testing.md): a small ResNet on the
// shapes images, a MobileNet-style depthwise-separable net close to it with fewer parameters, an
// LSTM on 20-bit parity, a simple RNN and a GRU on 5-bit parity, an LSTM sequence-to-sequence
// model, a convolutional autoencoder's reconstruction error, and a VAE whose ELBO rises every epoch and
// whose prior samples are written as a PNG grid. Also: batch-norm running statistics travel with
// the model file, augmentation is wired from [data.augment], and bad configs name their key.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <iterator>

#include "models/Model.h"
#include "models/core/ConfigNode.h"
#include "models/core/Error.h"
#include "models/core/Philox.h"
#include "models/zoo/ModelZoo.h"
#include "storage/hdf5/H5.h"
#include "support/JsonSupport.h"
#include "support/SeedStats.h"
#include "support/TrainingRun.h"
#include "trainer/DataSplits.h"
#include "trainer/Predictor.h"

using namespace dptrain;
using namespace dptrain::test;

namespace {

std::string run_config(const std::string& data, const std::string& model, const std::string& optim, int64_t epochs,
                       int64_t batch, const std::string& data_extra = "test_fraction = 0.2", uint64_t seed = 3) {
  // One thread: ctest runs two tests at once on two cores, and oversubscribed OpenMP threads spin.
  return "seed = " + std::to_string(seed) + "\nthreads = 1\n[data]\ntrain = \"" + data + "\"\n" + data_extra +
         "\n[model]\n" + model + "\n[optim]\n" + optim + "\n[train]\nbatch_size = " + std::to_string(batch) +
         "\nepochs = " + std::to_string(epochs) + "\nlog_every = 1000\n";
}

int64_t parameter_count(const std::string& model_toml, const Shape& input) {
  ConfigNode root = ConfigNode::parse_string("[model]\n" + model_toml, "model.toml");
  TaskInfo task;
  task.num_classes = 4;
  Model m(build_model(root.child("model"), task, input).root, input, Device::cpu);
  return m.parameter_count();
}

// The train_loss of every epoch record in a metrics file, in order.
std::vector<double> epoch_train_losses(const std::string& metrics) {
  std::vector<double> out;
  for (const auto& record : metrics_events(metrics, "epoch")) {
    REQUIRE(record.contains("train_loss"));
    out.push_back(record["train_loss"].get<double>());  // null (a NaN loss) throws: the test fails
  }
  return out;
}

std::string shapes_file(const TempDir& dir, int64_t n, uint64_t seed = 1) {
  SynthOptions s;
  s.kind = "shapes";
  s.n = n;
  s.seed = seed;
  return synth_file(dir, "shapes", s);
}

// Test accuracy of a 16-unit recurrent classifier `kind` on 5-bit parity, trained on strings of
// random length 1..5 (a curriculum) for `epochs` epochs; data and initialization from `seed`.
double parity5_accuracy(const std::string& kind, int64_t epochs, uint64_t seed) {
  TempDir dir;
  SynthOptions s;
  s.kind = "parity_varlen";
  s.n = 2000;
  s.dim = 5;
  s.seed = 1 + seed;
  const std::string data = synth_file(dir, "parity_train", s);
  s.kind = "parity";
  s.n = 500;
  s.seed = 100 + seed;
  const std::string test_file = synth_file(dir, "parity_test", s);
  return train_toml(dir, run_config(data, "kind = \"" + kind + "\"\nhidden = [16]", "kind = \"adam\"\nlr = 0.01",
                                    epochs, 32, "test = \"" + test_file + "\"", seed))
      .test.accuracy;
}

}  // namespace

TEST_CASE("a small ResNet learns the shapes and a depthwise-separable net gets within 2 points with fewer parameters",
          "[quality][trainer][modern][slow]") {
  const std::string resnet = "kind = \"resnet\"\ndepth = 1\nwidth = 8\nstages = 3";
  const std::string mobilenet = "kind = \"mobilenet\"\ndepth = 1\nwidth = 16\nstages = 3";
  const std::string adam = "kind = \"adam\"\nlr = 0.003";
  SeedStats r("resnet on shapes: test accuracy"), m("mobilenet on shapes: test accuracy");
  for (uint64_t seed : quality_seeds()) {
    TempDir dir;
    const std::string data = shapes_file(dir, 3000, seed);
    r.add(seed, train_toml(dir, run_config(data, resnet, adam, 3, 64, "test_fraction = 0.2", seed)).test.accuracy);
    m.add(seed, train_toml(dir, run_config(data, mobilenet, adam, 3, 64, "test_fraction = 0.2", seed)).test.accuracy);
  }
  const int64_t rp = parameter_count(resnet, Shape{1, 28, 28}), mp = parameter_count(mobilenet, Shape{1, 28, 28});
  std::printf("shapes: resnet %lld parameters, mobilenet %lld\n", static_cast<long long>(rp),
              static_cast<long long>(mp));
  r.report();
  m.report();
  CHECK(r.mean() >= 0.97);
  CHECK(r.min() >= 0.95);
  CHECK(m.mean() >= r.mean() - 0.02);
  CHECK(mp < rp);
}

TEST_CASE("batch-norm running statistics are saved with the model and used by eval", "[trainer][modern]") {
  TempDir dir;
  const std::string data = shapes_file(dir, 600);
  TrainResult r = train_toml(dir, run_config(data, "kind = \"resnet\"\ndepth = 1\nwidth = 4\nstages = 2",
                                             "kind = \"adam\"\nlr = 0.003", 1, 50));
  {
    H5Id f = h5_open_read(r.model_path);
    CHECK(h5_exists(f, "/buffers/01_batchnorm/running_mean"));
    CHECK(h5_exists(f, "/buffers/03_residual/body/01_batchnorm/running_var"));
    CHECK(!h5_exists(f, "/params/01_batchnorm/running_mean"));  // not a parameter
  }
  // The stand-alone evaluator rebuilds the model from the file: it must see the same statistics.
  Predictor p(r.model_path);
  DataSplits splits = make_splits([&] {
    DataConfig d;
    d.train = data;
    d.test_fraction = 0.2;
    d.split_seed = 3;
    return d;
  }());
  EvalResult e = p.evaluate(*splits.test.file, splits.test.rows);
  CHECK(e.count == r.test.count);
  CHECK(e.loss == Approx(r.test.loss).epsilon(1e-5));
  CHECK(e.accuracy == Approx(r.test.accuracy));
}

TEST_CASE("an LSTM solves 20-bit parity", "[quality][trainer][modern][slow]") {
  // Training strings have random effective lengths 1..20 (zero-padded): the short ones are a
  // curriculum. The test strings are uniform 20-bit parity.
  // About one seed in ten stays near chance within the 6 epochs (measured: 9 of 10 and 7 of 8 reach
  // 99.9-100 %; docs/testing.md), so the test asks 3 of 5 seeds to solve it.
  SeedStats acc("lstm on 20-bit parity: test accuracy");
  for (uint64_t seed : quality_seeds(5)) {
    TempDir dir;
    SynthOptions train;
    train.kind = "parity_varlen";
    train.n = 12000;
    train.dim = 20;
    train.seed = seed;
    SynthOptions test = train;
    test.kind = "parity";
    test.n = 2000;
    test.seed = 100 + seed;
    const std::string data = synth_file(dir, "parity_train", train);
    const std::string test_file = synth_file(dir, "parity_test", test);
    acc.add(seed, train_toml(dir, run_config(data, "kind = \"lstm_classifier\"\nhidden = [32]",
                                             "kind = \"adam\"\nlr = 0.005\nclip_norm = 1.0", 6, 32,
                                             "test = \"" + test_file + "\"", seed))
                      .test.accuracy);
  }
  acc.report();
  CHECK(acc.count_at_least(0.95) * 5 >= acc.size() * 3);
}

TEST_CASE("a simple RNN solves 5-bit parity", "[quality][trainer][modern]") {
  // As for the LSTM, training strings of random lengths 1..5 are a curriculum: on 5-bit strings
  // alone a simple RNN finds the parity on 3 to 6 seeds of 8 and stays at chance on the others
  // (docs/testing.md). The test strings are 5 bits long.
  SeedStats acc("rnn on 5-bit parity: test accuracy");
  for (uint64_t seed : quality_seeds()) acc.add(seed, parity5_accuracy("rnn_classifier", 100, seed));
  acc.report();
  CHECK(acc.mean() >= 0.95);
  CHECK(acc.count_at_least(0.95) >= acc.size() - 1);
}

TEST_CASE("a GRU solves 5-bit parity", "[quality][trainer][modern]") {
  SeedStats acc("gru on 5-bit parity: test accuracy");
  for (uint64_t seed : quality_seeds()) acc.add(seed, parity5_accuracy("gru_classifier", 60, seed));
  acc.report();
  CHECK(acc.min() >= 0.95);
}

TEST_CASE("an LSTM with return_sequences learns running parity step by step", "[quality][trainer][modern]") {
  // Sequence to sequence of equal length: y_t = parity of x_1..x_t, as float targets [T].
  const int64_t n = 3000, steps = 10;
  const std::string model =
      "kind = \"layers\"\nloss = \"mse\"\nlayers = [ { type = \"lstm\", units = 16, return_sequences = true },"
      " { type = \"time_distributed\", layer = { type = \"dense\", units = 1, activation = \"sigmoid\" } } ]";
  SeedStats mse("lstm running parity (seq2seq, 10 steps): test mse");
  for (uint64_t seed : quality_seeds()) {
    TempDir dir;
    DatasetContents c;
    c.sample_shape = Shape{steps, 1};
    c.label_kind = LabelKind::values;
    c.target_dim = steps;
    Philox rng(4 + seed, RandomPurpose::synth, 1);
    for (int64_t i = 0; i < n; ++i) {
      int parity = 0;
      for (int64_t t = 0; t < steps; ++t) {
        int b = static_cast<int>(rng.below(2));
        parity ^= b;
        c.x.push_back(static_cast<float>(b));
        c.targets.push_back(static_cast<float>(parity));
      }
    }
    const std::string data = dir.file("running_parity.h5");
    write_dataset_file(data, c);
    mse.add(seed,
            train_toml(dir, run_config(data, model, "kind = \"adam\"\nlr = 0.01", 8, 32, "test_fraction = 0.2", seed))
                .test.loss);
  }
  mse.report();
  CHECK(mse.count_at_least(0.01) <= mse.size() / 3);  // every step right (chance would be 0.25) on most seeds
  CHECK(mse.max() < 0.1);
}

TEST_CASE("a convolutional autoencoder reconstructs the shapes through a 32-dim code",
          "[quality][trainer][modern][slow]") {
  SeedStats mse("autoencoder (code 32): test reconstruction mse");
  for (uint64_t seed : quality_seeds()) {
    TempDir dir;
    const std::string data = shapes_file(dir, 8000, seed);
    TrainResult r = train_toml(dir, run_config(data, "kind = \"autoencoder\"\nconv = true\nwidth = 16\ncode = 32",
                                               "kind = \"adam\"\nlr = 0.003", 12, 32, "test_fraction = 0.2", seed));
    CHECK(!r.test.has_accuracy);
    mse.add(seed, r.test.loss);
  }
  mse.report();
  CHECK(mse.max() < 0.01);
}

TEST_CASE("a VAE's ELBO rises every epoch and its prior samples are written as a PNG grid",
          "[quality][trainer][modern][slow]") {
  SeedStats rises("vae: epochs whose ELBO rose, of 5");
  for (uint64_t seed : quality_seeds()) {
    TempDir dir;
    const std::string data = shapes_file(dir, 3000, seed);
    TrainResult r = train_toml(dir, run_config(data, "kind = \"vae\"\nlatent = 8\nhidden = [256]\nsamples = 36",
                                               "kind = \"adam\"\nlr = 0.002", 6, 64, "test_fraction = 0.2", seed));
    // The loss is the negative ELBO per pixel (bce summed over pixels + KL, divided by 784).
    std::vector<double> losses = epoch_train_losses(dir.file("run/metrics.jsonl"));
    REQUIRE(losses.size() == 6);
    std::string elbos;
    int rose = 0;
    for (size_t e = 0; e < losses.size(); ++e) {
      elbos += " " + std::to_string(-784.0 * losses[e]);
      rose += e > 0 && losses[e] < losses[e - 1];
    }
    std::printf("vae ELBO per epoch (nats per image), seed %llu:%s; test -ELBO/784 = %.4f\n",
                static_cast<unsigned long long>(seed), elbos.c_str(), r.test.loss);
    rises.add(seed, rose);
    std::ifstream png(dir.file("run/samples.png"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(png)), std::istreambuf_iterator<char>());
    REQUIRE(bytes.size() > 24);
    CHECK(bytes.substr(1, 3) == "PNG");
    CHECK(static_cast<uint8_t>(bytes[19]) == 6 * 28 + 7);  // 6 x 6 grid of 28-pixel images, 1-pixel gaps
  }
  rises.report();
  CHECK(rises.min() == 5);
}

TEST_CASE("augmentation from [data.augment] trains a CNN and is refused on sequences", "[quality][trainer][modern]") {
  const std::string cnn =
      "kind = \"cnn\"\nblocks = [ { type = \"conv2d\", filters = 8, kernel = 3, padding = 1, activation = \"relu\" },"
      " { type = \"maxpool2d\", size = 2 }, { type = \"conv2d\", filters = 16, kernel = 3, padding = 1, activation = "
      "\"relu\" }, { type = \"global_avgpool\" } ]";
  SeedStats acc("cnn with augmentation on shapes: test accuracy");
  TempDir dir;
  for (uint64_t seed : quality_seeds()) {
    const std::string data = shapes_file(dir, 3000, 1 + seed);
    acc.add(seed, train_toml(dir, run_config(data, cnn, "kind = \"adam\"\nlr = 0.005", 8, 64,
                                             "test_fraction = 0.2\n[data.augment]\ncrop_padding = 2\nflip = true\n"
                                             "noise_std = 0.05",
                                             seed))
                      .test.accuracy);
  }
  acc.report();
  CHECK(acc.min() >= 0.9);

  SynthOptions s;
  s.kind = "parity";
  s.n = 100;
  const std::string seq = synth_file(dir, "parity", s);
  CHECK_THROWS_WITH(train_toml(dir, run_config(seq, "kind = \"lstm_classifier\"", "kind = \"adam\"", 1, 10,
                                               "[data.augment]\nflip = true")),
                    Catch::Contains("data.augment") && Catch::Contains("[20, 1]"));
  CHECK_THROWS_WITH(train_toml(dir, run_config(seq, "kind = \"lstm_classifier\"", "kind = \"adam\"", 1, 10,
                                               "[data.augment]\nflip = true\nshear = 10")),
                    Catch::Contains("unknown key 'shear'") && Catch::Contains("crop_padding"));
}

TEST_CASE("bad modern-model configs are reported naming the key", "[trainer][modern]") {
  TempDir dir;
  SynthOptions s;
  s.kind = "blobs";
  s.n = 100;
  const std::string blobs = synth_file(dir, "blobs", s);
  auto error_of = [&](const std::string& model) {
    try {
      train_toml(dir, run_config(blobs, model, "kind = \"sgd\"", 1, 10));
    } catch (const Error& e) {
      CHECK(e.exit_code() == 2);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(error_of("kind = \"resnet\""), Catch::Contains("resnet") && Catch::Contains("[channels, height, width]"));
  CHECK_THAT(error_of("kind = \"layers\"\nlayers = [ { type = \"embedding\", dim = 4 } ]"),
             Catch::Contains("vocab") && Catch::Contains("required"));
  CHECK_THAT(error_of("kind = \"layers\"\nlayers = [ { type = \"maxunpool2d\" } ]"), Catch::Contains("maxpool2d"));
  CHECK_THAT(error_of("kind = \"layers\"\nlayers = [ { type = \"concat\", branches = [ { layers = [ { type = "
                      "\"dense\", units = 2 } ] } ] } ]"),
             Catch::Contains("branches"));
  CHECK_THAT(error_of("kind = \"layers\"\nlayers = [ { type = \"lstm\", units = 4 } ]"),
             Catch::Contains("[steps, features]"));
  CHECK_THAT(error_of("kind = \"layers\"\nlayers = [ { type = \"batchnorm\", momentum = 2.0 } ]"),
             Catch::Contains("momentum"));
  CHECK_THAT(error_of("kind = \"layers\"\nlayers = [ { type = \"attention\" } ]"),
             Catch::Contains("attention") && Catch::Contains("[steps, features]"));
  CHECK_THAT(error_of("kind = \"layers\"\nlayers = [ { type = \"mamba\" } ]"),
             Catch::Contains("unknown layer type") && Catch::Contains("lstm"));
}
