// `dptrain eval` and `dptrain predict`: load a trained model file and run it over a dataset.
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "launch/ArgParser.h"
#include "launch/commands/Commands.h"
#include "storage/AtomicFile.h"
#include "storage/hdf5/H5.h"
#include "storage/hdf5/SealedFile.h"
#include "trainer/Adversary.h"
#include "trainer/DataSplits.h"
#include "trainer/Predictor.h"

namespace dptrain {

namespace {

// The model file and evaluation data a config names: <out_dir>/model.h5 and its test split
// (or validation split when there is no test split).
void from_config(const ArgParser& p, std::string& model, DataSplit& split) {
  ConfigNode root = ConfigNode::parse_file(p.get("CONFIG"));
  for (const auto& s : p.all("set")) root.apply_override(s);
  TrainConfig c = read_train_config(root, p.get("CONFIG"));
  model = (std::filesystem::path(c.out_dir) / "model.h5").string();
  DataSplits splits = make_splits(c.data);
  split = !splits.test.empty() ? splits.test : !splits.validation.empty() ? splits.validation : splits.train;
}

}  // namespace

int eval_command(const Args& args) {
  ArgParser p("dptrain eval",
              "Evaluates a trained model: loss and accuracy (classification) or MSE (regression).\n"
              "Either CONFIG (its out_dir/model.h5 on its test split) or --model and --data.\n"
              "With --attack, also the accuracy on inputs perturbed to raise the loss (robust accuracy).");
  p.positional("CONFIG", "a training config", false)
      .repeated("set", "KEY=VALUE", "override a config key")
      .option("model", "FILE", "a model file written by dptrain train")
      .option("data", "FILE", "a dataset file with labels")
      .option("attack", "METHOD", "fgsm or pgd: attack every row within an L-infinity ball")
      .option("epsilon", "E", "the ball's radius, in the model's input units (after normalization)", "0.1")
      .option("steps", "N", "pgd: signed-gradient steps", "10")
      .option("step-size", "S", "pgd: size of each step (default 2.5 * epsilon / steps)")
      .option("seed", "N", "pgd: seed of the random starts", "0");
  if (!p.parse(args)) return 0;
  std::unique_ptr<Adversary> attack;
  if (p.has("attack")) {
    AdversarialConfig a;
    a.method = p.get("attack");
    if (a.method != "fgsm" && a.method != "pgd")
      fail_input("dptrain eval: --attack must be fgsm or pgd, got '" + a.method + "'");
    if (a.method == "fgsm" && (p.has("steps") || p.has("step-size")))
      fail_input("dptrain eval: --steps and --step-size are pgd's; fgsm takes one step of epsilon");
    a.epsilon = p.get_float("epsilon");
    if (!(a.epsilon > 0.0)) fail_input("dptrain eval: --epsilon must be > 0");
    a.steps = a.method == "fgsm" ? 1 : p.get_int("steps");
    if (a.steps < 1) fail_input("dptrain eval: --steps must be >= 1");
    a.step_size = a.method == "fgsm"   ? a.epsilon
                  : p.has("step-size") ? p.get_float("step-size")
                                       : 2.5 * a.epsilon / a.steps;
    if (!(a.step_size > 0.0)) fail_input("dptrain eval: --step-size must be > 0");
    a.random_start = a.method == "pgd";
    attack = std::make_unique<Adversary>(a, static_cast<uint64_t>(p.get_int("seed")));
  } else {
    for (const char* k : {"epsilon", "steps", "step-size", "seed"})
      if (p.has(k)) fail_input(std::string("dptrain eval: --") + k + " needs --attack");
  }
  std::string model_path;
  DataSplit split;
  if (p.has("CONFIG")) {
    if (p.has("model") || p.has("data")) fail_input("dptrain eval: give CONFIG or --model/--data, not both");
    from_config(p, model_path, split);
  } else {
    if (!p.has("model") || !p.has("data")) fail_input("dptrain eval: needs CONFIG, or both --model and --data");
    model_path = p.get("model");
    auto file = std::make_shared<const DatasetFile>(p.get("data"));
    split = {file, all_rows(*file)};
  }
  Predictor predictor(model_path);
  EvalResult r = predictor.evaluate(*split.file, split.rows);
  if (predictor.task().label_width > 1)  // per-step targets: per token, and in bits too
    std::printf("accuracy: %.2f%%  loss: %.4f (%.3f bits/token)  tokens: %lld  (%s on %s)\n", 100 * r.accuracy, r.loss,
                r.loss / std::log(2.0), static_cast<long long>(r.count), model_path.c_str(),
                split.file->path().c_str());
  else if (r.has_accuracy) {
    std::printf("accuracy: %.2f%%  loss: %.4f  rows: %lld  (%s on %s)\n", 100 * r.accuracy, r.loss,
                static_cast<long long>(r.count), model_path.c_str(), split.file->path().c_str());
    if (reports_top5(predictor.task(), predictor.loss())) std::printf("top-5 accuracy: %.2f%%\n", 100 * r.top5);
  } else
    std::printf("mse: %.6f  rows: %lld  (%s on %s)\n", r.loss, static_cast<long long>(r.count), model_path.c_str(),
                split.file->path().c_str());
  if (attack) {
    const EvalResult robust = predictor.evaluate(*split.file, split.rows, attack.get());
    const AdversarialConfig& a = attack->config();
    std::printf("robust accuracy under %s (epsilon %g", a.method.c_str(), a.epsilon);
    if (a.method == "pgd") std::printf(", %lld steps of %g", static_cast<long long>(a.steps), a.step_size);
    std::printf("): %.2f%%  loss: %.4f  (clean %.2f%%)\n", 100 * robust.accuracy, robust.loss, 100 * r.accuracy);
  }
  return 0;
}

int predict_command(const Args& args) {
  ArgParser p("dptrain predict",
              "Writes a trained model's predictions for every row of a dataset to HDF5:\n"
              "/outputs [N, k] (class probabilities or regression values) and /predictions [N]\n"
              "(class ids; classification only).");
  p.option("model", "FILE", "a model file written by dptrain train")
      .option("data", "FILE", "a dataset file (labels not needed)")
      .option("out", "FILE", "the HDF5 file to write");
  if (!p.parse(args)) return 0;
  for (const char* k : {"model", "data", "out"})
    if (!p.has(k)) fail_input(std::string("dptrain predict: --") + k + " is required");
  Predictor predictor(p.get("model"));
  DatasetFile data(p.get("data"));
  std::vector<float> outputs;
  std::vector<int32_t> classes;
  predictor.predict(data, outputs, classes);
  const hsize_t n = static_cast<hsize_t>(data.rows());
  // Per-step targets: outputs [N, T, classes] and predictions [N, T].
  const hsize_t steps = static_cast<hsize_t>(std::max<int64_t>(1, predictor.task().label_width));
  const hsize_t k = outputs.size() / std::max<hsize_t>(1, n * steps);
  const std::string out = p.get("out");
  write_sealed_h5(out, [&](hid_t f) {
    if (steps > 1) {
      h5_write_floats(f, "outputs", {n, steps, k}, outputs.data());
      if (predictor.task().classification) h5_write_ints(f, "predictions", {n, steps}, classes.data());
    } else {
      h5_write_floats(f, "outputs", {n, k}, outputs.data());
      if (predictor.task().classification) h5_write_ints(f, "predictions", {n}, classes.data());
    }
    h5_write_string_attribute(f, "model", p.get("model"));
    h5_write_string_attribute(f, "data", p.get("data"));
  });
  std::printf("wrote %lld predictions to %s\n", static_cast<long long>(n), out.c_str());
  return 0;
}

}  // namespace dptrain
