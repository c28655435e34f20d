// `dptrain cv CONFIG --folds K`: K-fold cross-validation. Each fold trains the config from scratch
// on every rank the command runs on (mpirun -np N dptrain cv ...: each fold is a data-parallel
// run), with fold k of the training rows as its validation split (data.folds, data.fold), in
// <out_dir>/fold-<k>. Reports each fold's validation metrics (after early stopping's restore, if
// any) and their mean and sample standard deviation, and writes them as JSON. Each finished fold
// leaves <out_dir>/fold-<k>/cv-fold.json; --resume (after a requeue, exit code 75) keeps those
// folds and continues the next one from its latest checkpoint.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "comm/Communicator.h"
#include "launch/ArgParser.h"
#include "launch/commands/Commands.h"
#include "models/core/Error.h"
#include "storage/AtomicFile.h"
#include "trainer/StopRequest.h"
#include "trainer/tasks/SelfTrainingTask.h"

namespace dptrain {

namespace {

struct FoldResult {
  EvalResult validation;
  int64_t steps = 0, train_rows = 0;
};

// Mean and sample standard deviation (n - 1) of one metric over the folds.
std::pair<double, double> mean_std(const std::vector<FoldResult>& folds, double EvalResult::*metric) {
  double sum = 0.0;
  for (const auto& f : folds) sum += f.validation.*metric;
  const double mean = sum / static_cast<double>(folds.size());
  double sq = 0.0;
  for (const auto& f : folds) sq += (f.validation.*metric - mean) * (f.validation.*metric - mean);
  return {mean, folds.size() > 1 ? std::sqrt(sq / static_cast<double>(folds.size() - 1)) : 0.0};
}

nlohmann::json fold_json(int64_t k, const FoldResult& f) {
  nlohmann::json j = {{"fold", k},
                      {"val_loss", f.validation.loss},
                      {"val_rows", f.validation.count},
                      {"steps", f.steps},
                      {"train_rows", f.train_rows}};
  if (f.validation.has_accuracy) j["val_accuracy"] = f.validation.accuracy;
  return j;
}

// A fold's results as fold_json() wrote them.
FoldResult read_fold(const std::string& path) {
  const nlohmann::json j = nlohmann::json::parse(std::ifstream(path), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("val_loss") || !j.contains("val_rows"))
    fail_input(path + ": not a finished fold's results (delete it to train the fold again)");
  FoldResult f;
  f.validation.loss = j["val_loss"].get<double>();
  f.validation.has_accuracy = j.contains("val_accuracy");
  f.validation.accuracy = j.value("val_accuracy", 0.0);
  f.validation.count = j["val_rows"].get<int64_t>();
  f.steps = j.value("steps", int64_t{0});
  f.train_rows = j.value("train_rows", int64_t{0});
  return f;
}

void write_json(const std::string& path, const nlohmann::json& json) {
  if (auto dir = std::filesystem::path(path).parent_path(); !dir.empty()) std::filesystem::create_directories(dir);
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp);
    out << json.dump(2) << "\n";
    if (!out) fail_input(path + ": cannot write the results");
  });
}

}  // namespace

int cv_command(const Args& args) {
  ArgParser p("dptrain cv",
              "K-fold cross-validation: trains CONFIG once per fold, each time validating on another\n"
              "fold of the training rows (a test split, if configured, is left out of every fold), and\n"
              "reports each fold's and the mean +- standard deviation of the validation metrics.\n"
              "Run it under mpirun/srun like dptrain train: every fold uses all ranks.");
  p.positional("CONFIG", "the run's TOML config (supervised, self_training or distill)")
      .repeated("set", "KEY=VALUE", "override a config key")
      .option("folds", "K", "number of folds (at least 2)", "5")
      .option("json", "FILE", "where to write the results (default <out_dir>/cv.json)")
      .flag("resume", "keep the folds already finished and continue the next from its latest checkpoint");
  if (!p.parse(args)) return 0;
  const int64_t folds = p.get_int("folds");
  if (folds < 2) fail_input("dptrain cv: --folds must be at least 2, got " + std::to_string(folds));
  auto read = [&](const std::vector<std::string>& more, TrainConfig& config) {
    ConfigNode root = ConfigNode::parse_file(p.get("CONFIG"));
    for (const auto& s : p.all("set")) root.apply_override(s);
    for (const auto& s : more) root.apply_override(s);
    config = read_train_config(root, p.get("CONFIG"));
    return root;
  };
  TrainConfig base;
  read({}, base);
  if (base.task == "gan") fail_input("dptrain cv: task = \"gan\" has no validation metric to cross-validate");
  if (base.data.folds > 0) fail_input("dptrain cv: the config sets data.folds; dptrain cv sets it for each fold");
  auto fold_dir = [&](int64_t k) {
    return (std::filesystem::path(base.out_dir) / ("fold-" + std::to_string(k))).string();
  };
  auto comm = make_run_communicator(base);
  install_stop_signal_handlers();
  std::vector<FoldResult> results;
  try {
    for (int64_t k = 0; k < folds; ++k) {
      const std::string done_file = fold_dir(k) + "/cv-fold.json";
      // Rank 0 decides whether the fold is done already, for every rank.
      int64_t done = comm->rank() == 0 && p.has("resume") && std::filesystem::exists(done_file);
      comm->broadcast(&done, sizeof done, 0);
      if (comm->rank() == 0)
        std::printf("== fold %lld/%lld%s ==\n", static_cast<long long>(k + 1), static_cast<long long>(folds),
                    done ? ": finished earlier" : "");
      if (done) {
        results.push_back(comm->rank() == 0 ? read_fold(done_file) : FoldResult{});
        continue;
      }
      TrainConfig config;
      ConfigNode root = read(
          {"data.folds=" + std::to_string(folds), "data.fold=" + std::to_string(k), "out_dir=\"" + fold_dir(k) + "\""},
          config);
      std::unique_ptr<Trainer> trainer = make_trainer(config, root, *comm);
      if (p.has("resume")) trainer->resume("latest");
      const TrainResult r = trainer->run();
      if (r.requeue) return requeue_exit_code;
      FoldResult f;
      f.validation = trainer->evaluate(trainer->splits().validation);  // the parameters kept at the end
      f.steps = r.steps;
      f.train_rows = static_cast<int64_t>(trainer->splits().train.rows.size());
      results.push_back(f);
      if (comm->rank() == 0) write_json(done_file, fold_json(k, f));
    }
  } catch (const Error& e) {
    if (comm->size() > 1) {
      std::fprintf(stderr, "dptrain cv: error (rank %d): %s\n", comm->rank(), e.what());
      comm->abort(e.exit_code());
    }
    throw;
  }
  if (comm->rank() != 0) return 0;
  const bool classifies = results.front().validation.has_accuracy;
  std::printf("\ncross-validation, %lld folds (%s):\n  fold  val_loss  %s rows\n", static_cast<long long>(folds),
              p.get("CONFIG").c_str(), classifies ? "val_accuracy  " : "");
  nlohmann::json json = {{"config", p.get("CONFIG")}, {"folds", folds}, {"per_fold", nlohmann::json::array()}};
  for (size_t k = 0; k < results.size(); ++k) {
    const EvalResult& v = results[k].validation;
    if (classifies)
      std::printf("  %4zu  %8.4f  %11.2f%%  %lld\n", k, v.loss, 100 * v.accuracy, static_cast<long long>(v.count));
    else
      std::printf("  %4zu  %8.4f  %lld\n", k, v.loss, static_cast<long long>(v.count));
    json["per_fold"].push_back(fold_json(static_cast<int64_t>(k), results[k]));
  }
  const auto [loss_mean, loss_std] = mean_std(results, &EvalResult::loss);
  json["val_loss"] = {{"mean", loss_mean}, {"std", loss_std}};
  std::printf("  mean  val_loss %.4f +- %.4f", loss_mean, loss_std);
  if (classifies) {
    const auto [acc_mean, acc_std] = mean_std(results, &EvalResult::accuracy);
    json["val_accuracy"] = {{"mean", acc_mean}, {"std", acc_std}};
    std::printf("  val_accuracy %.2f%% +- %.2f%%", 100 * acc_mean, 100 * acc_std);
  }
  std::printf("  (standard deviation over folds, n - 1)\n");
  const std::string path = p.has("json") ? p.get("json") : (std::filesystem::path(base.out_dir) / "cv.json").string();
  write_json(path, json);
  std::printf("results written to %s\n", path.c_str());
  return 0;
}

}  // namespace dptrain
