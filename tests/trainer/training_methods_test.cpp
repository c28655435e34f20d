// Training methods (docs/training-methods.md): fine-tuning from a model file with frozen layers,
// gradient accumulation, knowledge distillation and adversarial training, each checked on what a
// user relies on: frozen parameters bitwise unchanged, the file's parameters taken where path and
// shape match, clear errors naming the key.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>

#include "comm/Communicator.h"
#include "comm/GradientReducer.h"
#include "models/core/ConfigNode.h"
#include "models/core/Error.h"
#include "support/TrainingRun.h"
#include "trainer/tasks/SelfTrainingTask.h"

using namespace dptrain;
using namespace dptrain::test;

namespace {

// Trains in-process (or only builds the model: train = false) and keeps the trainer, so a test can
// look at its parameters.
struct Run {
  std::unique_ptr<Communicator> comm = make_communicator("local");
  std::unique_ptr<Trainer> trainer;
  TrainResult result;
  Run(const TempDir& dir, const std::string& name, const std::string& toml, bool train = true) {
    ConfigNode root = ConfigNode::parse_string(toml, name + ".toml");
    root.apply_override("out_dir=\"" + dir.file(name) + "\"");
    root.apply_override("train.progress=false");
    TrainConfig config = read_train_config(root, name + ".toml");
    trainer = make_trainer(config, root, *comm);
    if (train) result = trainer->run();
  }
  std::vector<float> param(const std::string& path) { return to_host(trainer->model().param(path)); }
};

std::string blobs_config(const std::string& data, const std::string& model_extra, const std::string& optim,
                         int64_t steps, uint64_t seed = 1) {
  return "seed = " + std::to_string(seed) + "\n[data]\ntrain = \"" + data +
         "\"\ntest_fraction = 0.2\n[model]\nkind = \"mlp\"\nhidden = [16, 16]\n" + model_extra + "\n[optim]\n" + optim +
         "\n[train]\nbatch_size = 32\nepochs = 100\nmax_steps = " + std::to_string(steps) + "\n";
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("Fine-tuning: init_from loads matching parameters, frozen layers stay bitwise", "[trainer][finetune]") {
  TempDir dir;
  SynthOptions s{.kind = "blobs", .n = 600, .seed = 3, .classes = 3, .dim = 8};
  const std::string source_data = synth_file(dir, "source", s);
  s.classes = 5, s.seed = 4;
  const std::string target_data = synth_file(dir, "target", s);

  Run source(dir, "source", blobs_config(source_data, "", "kind = \"adam\"\nlr = 0.01", 60));
  const std::string model_file = source.result.model_path;

  // The output layer has 5 classes instead of 3: initialized from the seed; the first hidden
  // layer frozen (AdamW's decay must not touch it either), the second trained from the file.
  Run tuned(dir, "tuned",
            blobs_config(target_data, "init_from = \"" + model_file + "\"\nfreeze = [\"00_dense\"]",
                         "kind = \"adamw\"\nlr = 0.01\nweight_decay = 0.1", 40, 9));
  CHECK(tuned.param("00_dense/weight") == source.param("00_dense/weight"));
  CHECK(tuned.param("00_dense/bias") == source.param("00_dense/bias"));
  CHECK(tuned.param("01_dense/weight") != source.param("01_dense/weight"));  // loaded, then trained
  CHECK(tuned.param("02_dense/weight").size() == 16 * 5);
  CHECK(tuned.trainer->model().frozen_parameter_count() == 8 * 16 + 16);
  CHECK(tuned.result.test.accuracy > 0.9);

  // The same second layer without init_from starts elsewhere: the file's values were used.
  Run fresh(dir, "fresh", blobs_config(target_data, "", "kind = \"sgd\"", 1, 9), false);
  Run loaded(dir, "loaded", blobs_config(target_data, "init_from = \"" + model_file + "\"", "kind = \"sgd\"", 1, 9),
             false);
  CHECK(loaded.param("01_dense/weight") == source.param("01_dense/weight"));
  CHECK(loaded.param("02_dense/weight") == fresh.param("02_dense/weight"));  // shape differs: the seed's

  // trainable = false in a layer table freezes that layer alone.
  const std::string layers =
      "kind = \"layers\"\nlayers = [{ type = \"dense\", units = 8, activation = \"relu\", trainable = false },"
      " { type = \"dense\", units = 5 }]";
  std::string toml = blobs_config(target_data, "", "kind = \"momentum\"\nlr = 0.05", 30);
  toml.replace(toml.find("kind = \"mlp\"\nhidden = [16, 16]"), std::string("kind = \"mlp\"\nhidden = [16, 16]").size(),
               layers);
  Run before(dir, "before", toml, false);
  Run after(dir, "after", toml);
  CHECK(after.param("00_dense/weight") == before.param("00_dense/weight"));
  CHECK(after.param("01_dense/weight") != before.param("01_dense/weight"));
}

TEST_CASE("Fine-tuning: bad freeze paths and init_from files are refused by name", "[trainer][finetune][errors]") {
  TempDir dir;
  const std::string data = synth_file(dir, "blobs", {.kind = "blobs", .n = 200, .seed = 3, .dim = 4});
  std::string message = error_of([&] { Run(dir, "a", blobs_config(data, "freeze = [\"07_dense\"]", "", 1)); });
  CHECK(message.find("model.freeze") != std::string::npos);
  CHECK(message.find("07_dense") != std::string::npos);
  CHECK(message.find("00_dense") != std::string::npos);  // the layers it could have named

  message = error_of([&] { Run(dir, "b", blobs_config(data, "init_from = \"" + dir.file("none.h5") + "\"", "", 1)); });
  CHECK(message.find("none.h5") != std::string::npos);

  // A model file of another architecture: nothing matches.
  std::string toml = blobs_config(data, "", "", 1);
  Run other(dir, "other", toml.replace(toml.find("hidden = [16, 16]"), 17, "hidden = [7]"));
  message =
      error_of([&] { Run(dir, "c", blobs_config(data, "init_from = \"" + other.result.model_path + "\"", "", 1)); });
  CHECK(message.find("none of its parameters") != std::string::npos);
}

TEST_CASE("Distillation: alpha = 1 is plain cross-entropy, and a mismatched teacher is refused by name",
          "[trainer][distill]") {
  TempDir dir;
  SynthOptions s{.kind = "blobs", .n = 400, .seed = 5, .classes = 4, .dim = 6};
  const std::string data = synth_file(dir, "blobs", s);
  const std::string optim = "kind = \"adam\"\nlr = 0.01";
  std::string wider = blobs_config(data, "", optim, 40);
  Run teacher(dir, "teacher", wider.replace(wider.find("hidden = [16, 16]"), 17, "hidden = [64, 64]"));
  // With alpha = 1 the teacher's term has no weight: the same trajectory as supervised training
  // (up to the two kernels' rounding).
  const std::string task = "task = \"distill\"\n";
  const std::string table = "[distill]\nteacher = \"" + teacher.result.model_path + "\"\ntemperature = 3.0\nalpha = ";
  Run plain(dir, "plain", blobs_config(data, "", optim, 30, 2));
  Run hard(dir, "hard", task + blobs_config(data, "", optim, 30, 2) + table + "1.0\n");
  const std::vector<float> a = plain.param("02_dense/weight"), b = hard.param("02_dense/weight");
  double diff = 0.0;
  for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, std::fabs(double(a[i]) - b[i]));
  CHECK(diff < 1e-4);
  std::printf("alpha = 1 vs cross-entropy: max abs difference %.3g\n", diff);
  CHECK(std::fabs(plain.result.test.accuracy - hard.result.test.accuracy) < 0.02);

  // Pure distillation (alpha = 0): the student learns the teacher's answers.
  Run student(dir, "student", task + blobs_config(data, "", optim, 60, 3) + table + "0.0\n");
  CHECK(student.result.test.accuracy > 0.9);

  // A teacher of other classes, or of other inputs, is named with what differs.
  const std::string other = synth_file(dir, "other", {.kind = "blobs", .n = 400, .seed = 5, .classes = 3, .dim = 6});
  std::string message = error_of([&] { Run(dir, "x", task + blobs_config(other, "", optim, 1) + table + "0.5\n"); });
  CHECK(message.find("distill.teacher") != std::string::npos);
  CHECK(message.find("4 classes") != std::string::npos);
  const std::string wide = synth_file(dir, "wide", {.kind = "blobs", .n = 400, .seed = 5, .classes = 4, .dim = 7});
  message = error_of([&] { Run(dir, "y", task + blobs_config(wide, "", optim, 1) + table + "0.5\n"); });
  CHECK(message.find("distill.teacher") != std::string::npos);
  CHECK(message.find("[7]") != std::string::npos);
  message = error_of([&] { Run(dir, "z", task + blobs_config(data, "", optim, 1)); });
  CHECK(message.find("distill.teacher") != std::string::npos);
}

TEST_CASE("Adversarial training and gradient accumulation: bad values are refused naming the key",
          "[trainer][adversarial][accumulate][errors]") {
  TempDir dir;
  const std::string data = synth_file(dir, "blobs", {.kind = "blobs", .n = 200, .seed = 3, .dim = 4});
  auto message = [&](const std::string& extra) {
    return error_of([&] { Run(dir, "e", blobs_config(data, "", "", 1) + extra); });
  };
  CHECK(message("accumulate = 64\n").find("train.accumulate") != std::string::npos);
  CHECK(message("accumulate = 0\n").find("train.accumulate") != std::string::npos);
  CHECK(message("[adversarial]\nmethod = \"fgsm\"\nepsilon = -1\n").find("adversarial.epsilon") != std::string::npos);
  CHECK(message("[adversarial]\nmethod = \"bim\"\n").find("adversarial.method") != std::string::npos);
  CHECK(message("[adversarial]\nmethod = \"fgsm\"\nsteps = 3\n").find("adversarial.steps") != std::string::npos);
  CHECK(message("[adversarial]\nepsilon = 0.1\n").find("adversarial.method") != std::string::npos);
  CHECK(message("[adversarial]\nmethod = \"pgd\"\nfraction = 1.5\n").find("adversarial.fraction") != std::string::npos);
}

TEST_CASE("Adversarial training: PGD with random starts trains and the rows are attacked", "[trainer][adversarial]") {
  TempDir dir;
  const std::string data =
      synth_file(dir, "blobs", {.kind = "blobs", .n = 400, .seed = 8, .classes = 3, .dim = 4, .noise = 2.0});
  const std::string pgd = "[adversarial]\nmethod = \"pgd\"\nepsilon = 0.5\nsteps = 3\nfraction = 1.0\n";
  Run plain(dir, "plain", blobs_config(data, "", "kind = \"adam\"\nlr = 0.01", 40));
  Run robust(dir, "robust", blobs_config(data, "", "kind = \"adam\"\nlr = 0.01", 40) + pgd);
  // Training on attacked rows reports the (higher) loss on them.
  CHECK(robust.result.train.loss > plain.result.train.loss);
  CHECK(robust.result.test.accuracy > 0.7);
}

TEST_CASE("Frozen parameters are left out of the all-reduce: buckets cover the trainable ranges only",
          "[trainer][finetune]") {
  auto comm = make_communicator("local");
  std::vector<float> grads(100);
  // Trainable 0-16, 16-32 (one run), frozen 32-64, trainable 64-80, 80-100; buckets of 20 floats.
  GradientReducer reducer(*comm, grads.data(), {{0, 16}, {16, 32}, {64, 80}, {80, 100}}, 20 * 4);
  std::vector<std::pair<int64_t, int64_t>> got;
  for (const auto& b : reducer.buckets()) got.emplace_back(b.begin, b.end);
  // Built from the end (backward's order); none spans the frozen gap 32-64.
  CHECK(got == std::vector<std::pair<int64_t, int64_t>>{{80, 100}, {64, 80}, {0, 32}});
  GradientReducer one(*comm, grads.data(), {{0, 16}, {16, 32}, {64, 80}, {80, 100}}, 1 << 20);
  REQUIRE(one.buckets().size() == 2);
  CHECK(one.buckets()[0].begin == 64);
  CHECK(one.buckets()[1].end == 32);
}

TEST_CASE(
    "Accumulation: a last batch with fewer rows than micro-batches, and trainable = false inside time_distributed",
    "[trainer][accumulate][finetune]") {
  TempDir dir;
  // 101 training rows in batches of 50: the third batch has one row, so 3 of its 4 micro-batches
  // are empty (skipped; batch norm would refuse an empty batch).
  const std::string data = synth_file(dir, "blobs", {.kind = "blobs", .n = 101, .seed = 2, .classes = 3, .dim = 5});
  std::string toml = "seed = 4\n[data]\ntrain = \"" + data +
                     "\"\n[model]\nkind = \"mlp\"\nhidden = [12]\n[optim]\nkind = \"momentum\"\nlr = 0.05\n"
                     "[train]\nbatch_size = 50\nepochs = 4\n";
  Run plain(dir, "plain", toml);
  Run accumulated(dir, "accumulated", toml + "accumulate = 4\n");
  const std::vector<float> a = plain.param("00_dense/weight"), b = accumulated.param("00_dense/weight");
  double diff = 0.0;
  for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, std::fabs(double(a[i]) - b[i]));
  CHECK(diff < 1e-5);
  std::printf("accumulate 4 vs 1 with a one-row last batch: max abs difference %.3g\n", diff);
  CHECK(plain.result.steps == 12);
  CHECK(accumulated.result.steps == 12);
  std::string bn = toml;
  bn.replace(bn.find("kind = \"mlp\"\nhidden = [12]"), 26,
             "kind = \"layers\"\nlayers = [{ type = \"dense\", units = 12 }, { type = \"batchnorm\" }, "
             "{ type = \"relu\" }, { type = \"dense\", units = 3 }]");
  Run with_bn(dir, "bn", bn + "accumulate = 4\n");
  CHECK(with_bn.result.steps == 12);

  const std::string seq = synth_file(dir, "seq", {.kind = "parity", .n = 64, .seed = 1, .dim = 6});
  Run td(dir, "td",
         "[data]\ntrain = \"" + seq +
             "\"\n[model]\nkind = \"layers\"\nlayers = [{ type = \"time_distributed\", layer = { type = \"dense\", "
             "units = 4, trainable = false } }, { type = \"flatten\" }, { type = \"dense\", units = 2 }]\n"
             "[train]\nbatch_size = 16\nepochs = 1\n",
         false);
  CHECK(td.trainer->model().frozen_parameter_count() == 1 * 4 + 4);
}

TEST_CASE("Distillation: a teacher trained without normalization teaches a z-scored student", "[trainer][distill]") {
  TempDir dir;
  // Blobs far from the origin: z-scored rows are nothing like the raw ones the teacher knows.
  DatasetContents blobs = synthesize({.kind = "blobs", .n = 600, .seed = 6, .classes = 4, .dim = 6, .noise = 2.0});
  for (float& v : blobs.x) v = 3.0f * v + 40.0f;
  const std::string data = dir.file("far.h5");
  write_dataset_file(data, blobs);
  std::string toml = blobs_config(data, "", "kind = \"adam\"\nlr = 0.01", 60);
  Run teacher(dir, "teacher", toml);
  // The student's rows are z-scored, the teacher's were raw: its input is mapped back per feature.
  // Taught by the teacher alone (alpha = 0), the student gets the teacher's accuracy only if the
  // teacher sees what it was trained on.
  std::string student = "task = \"distill\"\n" + toml;
  student.replace(student.find("test_fraction = 0.2"), 19, "test_fraction = 0.2\nnormalize = \"zscore\"");
  Run taught(dir, "student", student + "[distill]\nteacher = \"" + teacher.result.model_path + "\"\nalpha = 0.0\n");
  INFO("teacher " << teacher.result.test.accuracy << ", student " << taught.result.test.accuracy);
  CHECK(taught.result.test.accuracy > teacher.result.test.accuracy - 0.05);
}
