#include "trainer/TrainConfig.h"

#include <filesystem>

#include "models/core/Error.h"
#include "models/core/Hash.h"

namespace dptrain {

namespace {

double non_negative(const ConfigNode& c, const std::string& key, double fallback) {
  double v = c.get_float(key, fallback);
  if (!(v >= 0.0)) c.fail(key, "must be >= 0, got " + std::to_string(v));
  return v;
}

double positive(const ConfigNode& c, const std::string& key, double fallback) {
  double v = c.get_float(key, fallback);
  if (!(v > 0.0)) c.fail(key, "must be > 0, got " + std::to_string(v));
  return v;
}

int64_t positive_int(const ConfigNode& c, const std::string& key, int64_t fallback) {
  int64_t v = c.get_int(key, fallback);
  if (v <= 0) c.fail(key, "must be a positive integer, got " + std::to_string(v));
  return v;
}

double fraction(const ConfigNode& c, const std::string& key, double fallback) {
  double v = c.get_float(key, fallback);
  if (!(v >= 0.0 && v < 1.0)) c.fail(key, "must be in [0, 1), got " + std::to_string(v));
  return v;
}

}  // namespace

OptimizerKind parse_optimizer(const std::string& name) {
  if (name == "sgd") return OptimizerKind::sgd;
  if (name == "momentum") return OptimizerKind::momentum;
  if (name == "nesterov") return OptimizerKind::nesterov;
  if (name == "adagrad") return OptimizerKind::adagrad;
  if (name == "rmsprop") return OptimizerKind::rmsprop;
  if (name == "adam") return OptimizerKind::adam;
  if (name == "adamw") return OptimizerKind::adamw;
  fail_input("unknown optimizer '" + name + "'");
}

std::string optimizer_name(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::sgd:
      return "sgd";
    case OptimizerKind::momentum:
      return "momentum";
    case OptimizerKind::nesterov:
      return "nesterov";
    case OptimizerKind::adagrad:
      return "adagrad";
    case OptimizerKind::rmsprop:
      return "rmsprop";
    case OptimizerKind::adam:
      return "adam";
    case OptimizerKind::adamw:
      return "adamw";
  }
  return "sgd";
}

OptimConfig read_optim_config(const ConfigNode& o, const OptimConfig& defaults) {
  OptimConfig c;
  std::string kind = o.get_choice("kind", optimizer_name(defaults.kind),
                                  {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"});
  c.kind = parse_optimizer(kind);
  c.lr = positive(o, "lr", defaults.lr);
  c.momentum = non_negative(o, "momentum", defaults.momentum);
  c.beta1 = fraction(o, "beta1", defaults.beta1);
  c.beta2 = fraction(o, "beta2", defaults.beta2);
  c.eps = positive(o, "eps", c.kind == OptimizerKind::adagrad ? 1e-10 : defaults.eps);
  c.rho = fraction(o, "rho", defaults.rho);
  c.l1 = non_negative(o, "l1", defaults.l1);
  c.l2 = non_negative(o, "l2", defaults.l2);
  c.weight_decay = non_negative(o, "weight_decay", c.kind == OptimizerKind::adamw ? 0.01 : defaults.weight_decay);
  c.clip_norm = non_negative(o, "clip_norm", defaults.clip_norm);
  return c;
}

TrainConfig read_train_config(const ConfigNode& root, const std::string& source) {
  TrainConfig c;
  c.source = source;
  c.seed = static_cast<uint64_t>(root.get_int("seed", 0));
  c.threads = static_cast<int>(root.get_int("threads", 0));
  if (c.threads < 0) root.fail("threads", "must be >= 0 (0 = cores / local ranks)");
  c.device = root.get_choice("device", "cpu", {"cpu", "cuda", "auto"});
  c.cpu_engine = parse_cpu_engine(root.get_choice("cpu_engine", "auto", {"auto", "openblas", "onednn", "unpacked"}));
  if (!cpu_engine_available(c.cpu_engine))
    root.fail("cpu_engine",
              "'" + std::string(cpu_engine_name(c.cpu_engine)) + "' " + cpu_engine_missing_why(c.cpu_engine));
  c.cuda_graphs = root.get_bool("cuda_graphs", false);
  std::string stem = std::filesystem::path(source).stem().string();
  c.out_dir = root.get_string("out_dir", "runs/" + (stem.empty() ? std::string("run") : stem));
  c.task = root.get_choice("task", "supervised", {"supervised", "self_training", "distill", "gan"});

  ConfigNode d = root.child("data");
  c.data.train = d.get_string("train", "");
  c.data.validation = d.get_string("validation", "");
  c.data.test = d.get_string("test", "");
  c.data.validation_fraction = fraction(d, "validation_fraction", 0.0);
  c.data.test_fraction = fraction(d, "test_fraction", 0.0);
  if (c.data.validation_fraction + c.data.test_fraction >= 1.0)
    d.fail("test_fraction", "validation_fraction + test_fraction must leave rows for training");
  if (!c.data.validation.empty() && c.data.validation_fraction > 0)
    d.fail("validation_fraction", "give either a validation file or a validation_fraction, not both");
  if (!c.data.test.empty() && c.data.test_fraction > 0)
    d.fail("test_fraction", "give either a test file or a test_fraction, not both");
  c.data.split_seed = static_cast<uint64_t>(d.get_int("split_seed", static_cast<int64_t>(c.seed)));
  c.data.folds = d.get_int("folds", 0);
  if (c.data.folds == 1 || c.data.folds < 0) d.fail("folds", "must be 0 (no folds) or at least 2");
  c.data.fold = d.get_int("fold", 0);
  if (c.data.folds > 0 && (c.data.fold < 0 || c.data.fold >= c.data.folds))
    d.fail("fold", "must be in [0, folds - 1] = [0, " + std::to_string(c.data.folds - 1) + "]");
  if (c.data.folds > 0 && (c.data.validation_fraction > 0.0 || !c.data.validation.empty()))
    d.fail("folds", "the validation rows are a fold: leave out validation and validation_fraction");
  c.data.normalize = d.get_choice("normalize", "none", {"none", "zscore"}) == "zscore";
  std::string shuffle = d.get_choice("shuffle", "global", {"global", "shard"});
  c.data.shuffle = shuffle == "global" ? Shuffle::global : Shuffle::shard;
  c.data.memory_budget_mb = d.get_int("memory_budget_mb", 2048);
  if (c.data.memory_budget_mb < 0) d.fail("memory_budget_mb", "must be >= 0");
  c.data.prefetch = static_cast<int>(positive_int(d, "prefetch", 2));
  if (d.has("augment")) {
    ConfigNode a = d.child("augment");
    c.data.augment.crop_padding = a.get_int("crop_padding", 0);
    if (c.data.augment.crop_padding < 0) a.fail("crop_padding", "must be >= 0 (pixels)");
    c.data.augment.flip = a.get_bool("flip", false);
    c.data.augment.translate = a.get_float("translate", 0.0);
    if (!(c.data.augment.translate >= 0.0 && c.data.augment.translate < 0.5))
      a.fail("translate", "must be a fraction of the image size in [0, 0.5)");
    c.data.augment.rotate = a.get_float("rotate", 0.0);
    if (!(c.data.augment.rotate >= 0.0 && c.data.augment.rotate < 180.0))
      a.fail("rotate", "must be a maximum angle in degrees in [0, 180), got " + std::to_string(c.data.augment.rotate));
    c.data.augment.scale = a.get_float("scale", 0.0);
    if (!(c.data.augment.scale >= 0.0 && c.data.augment.scale < 1.0))
      a.fail("scale", "must be a fraction in [0, 1) (zoom by 1 - scale to 1 + scale), got " +
                          std::to_string(c.data.augment.scale));
    c.data.augment.noise_std = non_negative(a, "noise_std", 0.0);
  }

  c.optim = read_optim_config(root.child("optim"), OptimConfig{});

  ConfigNode s = root.child("schedule");
  std::string sk = s.get_choice("kind", "constant", {"constant", "inv_sqrt", "step", "plateau", "cosine"});
  c.schedule.kind = sk == "constant"   ? ScheduleKind::constant
                    : sk == "inv_sqrt" ? ScheduleKind::inv_sqrt
                    : sk == "step"     ? ScheduleKind::step
                    : sk == "plateau"  ? ScheduleKind::plateau
                                       : ScheduleKind::cosine;
  c.schedule.warmup_steps = s.get_int("warmup_steps", 0);
  if (c.schedule.warmup_steps < 0) s.fail("warmup_steps", "must be >= 0");
  c.schedule.warmup_start = fraction(s, "warmup_start", 0.0);
  c.schedule.step_epochs = positive_int(s, "step_epochs", 10);
  c.schedule.gamma = positive(s, "gamma", 0.1);
  c.schedule.plateau_patience = s.get_int("patience", 3);
  c.schedule.plateau_factor = positive(s, "factor", 0.1);
  c.schedule.min_lr = non_negative(s, "min_lr", 0.0);

  ConfigNode t = root.child("train");
  c.train.batch_size = positive_int(t, "batch_size", 128);
  c.train.epochs = positive_int(t, "epochs", 10);
  c.train.max_steps = t.get_int("max_steps", 0);
  if (c.train.max_steps < 0) t.fail("max_steps", "must be >= 0 (0 = run all epochs)");
  c.train.drop_last = t.get_bool("drop_last", false);
  c.train.accumulate = positive_int(t, "accumulate", 1);
  c.train.nonfinite = t.get_choice("nonfinite", "stop", {"stop", "skip", "off"});
  if (c.train.accumulate > c.train.batch_size)
    t.fail("accumulate", "must be at most batch_size (" + std::to_string(c.train.batch_size) +
                             "): each step splits the global batch into this many micro-batches");
  c.train.log_every = positive_int(t, "log_every", 50);
  c.train.metrics_file = t.get_string("metrics_file", "metrics.jsonl");
  c.train.progress = t.get_bool("progress", true);
  c.train.all_ranks_log = t.get_bool("all_ranks_log", false);
  c.train.trace = t.get_string("trace", "");

  ConfigNode lg = root.child("log");
  c.logs.tensorboard = lg.get_bool("tensorboard", false);
  c.logs.csv = lg.get_bool("csv", false);
  if ((c.logs.tensorboard || c.logs.csv) && c.train.metrics_file.empty())
    lg.fail(c.logs.csv ? "csv" : "tensorboard", "needs train.metrics_file (the logs go beside it)");

  ConfigNode e = root.child("early_stopping");
  c.early_stopping.enabled = e.get_bool("enabled", false);
  c.early_stopping.metric = e.get_choice("metric", "val_loss", {"val_loss", "val_accuracy"});
  c.early_stopping.patience = positive_int(e, "patience", 5);
  c.early_stopping.min_delta = non_negative(e, "min_delta", 0.0);
  c.early_stopping.restore_best = e.get_bool("restore_best", true);

  ConfigNode m = root.child("comm");
  c.comm.backend = m.get_choice("backend", "auto", {"auto", "local", "mpi", "nccl", "gloo"});
  c.comm.bucket_mb = positive(m, "bucket_mb", 25.0);
  c.comm.timeout_s = positive(m, "timeout_s", 300.0);

  ConfigNode k = root.child("checkpoint");
  c.checkpoint.dir = k.get_string("dir", c.out_dir + "/checkpoints");
  c.checkpoint.every_steps = k.get_int("every_steps", 0);
  if (c.checkpoint.every_steps < 0) k.fail("every_steps", "must be >= 0 (0 = off)");
  c.checkpoint.every_seconds = non_negative(k, "every_seconds", 0.0);
  c.checkpoint.keep = positive_int(k, "keep", 3);
  c.checkpoint.at_end = k.get_bool("at_end", true);

  ConfigNode st = root.child("self_training");
  SelfTrainingConfig& stc = c.self_training;
  stc.unlabeled = st.get_string("unlabeled", "");
  stc.rounds = positive_int(st, "rounds", 5);
  stc.steps_per_round = st.get_int("steps_per_round", 0);
  if (stc.steps_per_round < 0) st.fail("steps_per_round", "must be >= 0 (0 = train.epochs epochs per round)");
  stc.pseudo_labels = st.get_bool("pseudo_labels", true);
  // Curriculum labelling by default (docs/self_training.md: chosen on shapes and moons).
  stc.selection = st.get_choice("selection", "top_fraction", {"threshold", "top_fraction"});
  stc.threshold = st.get_float("threshold", 0.95);
  if (!(stc.threshold > 0.0 && stc.threshold <= 1.0)) st.fail("threshold", "must be in (0, 1]");
  stc.top_fraction = st.get_float("top_fraction", 0.2);
  if (!(stc.top_fraction > 0.0 && stc.top_fraction <= 1.0)) st.fail("top_fraction", "must be in (0, 1]");
  stc.class_balanced = st.get_bool("class_balanced", true);
  stc.soft = st.get_choice("labels", "hard", {"hard", "soft"}) == "soft";
  stc.reinitialize = st.get_bool("reinitialize", false);
  stc.relabel = st.get_bool("relabel", stc.selection == "top_fraction");
  stc.entropy_weight = non_negative(st, "entropy_weight", 0.0);
  stc.entropy_batch_size = st.get_int("entropy_batch_size", 0);
  if (stc.entropy_batch_size < 0) st.fail("entropy_batch_size", "must be >= 0 (0 = train.batch_size)");
  if (c.task == "self_training" && !stc.pseudo_labels && stc.entropy_weight == 0.0)
    st.fail("pseudo_labels",
            "with pseudo_labels = false, set entropy_weight > 0 (otherwise nothing uses the unlabelled rows)");

  ConfigNode ds = root.child("distill");
  // A table holding any key (reading them inserts empty tables into the stored config text).
  auto first_key = [](const ConfigNode& t, std::initializer_list<const char*> keys) -> std::string {
    for (const char* k : keys)
      if (t.has(k)) return k;
    return "";
  };
  const std::string distill_key = first_key(ds, {"teacher", "temperature", "alpha"});
  c.distill.teacher = ds.get_string("teacher", "");
  c.distill.temperature = positive(ds, "temperature", 4.0);
  c.distill.alpha = ds.get_float("alpha", 0.5);
  if (!(c.distill.alpha >= 0.0 && c.distill.alpha <= 1.0))
    ds.fail("alpha",
            "the weight of the labels' cross-entropy must be in [0, 1], got " + std::to_string(c.distill.alpha));
  if (c.task == "distill" && c.distill.teacher.empty())
    ds.fail("teacher", "task = \"distill\" needs the teacher's model file (distill.teacher)");
  if (c.task != "distill" && !distill_key.empty())
    ds.fail(distill_key, "[distill] is read only with task = \"distill\"");

  ConfigNode ad = root.child("adversarial");
  const bool adversarial_table =
      !first_key(ad, {"method", "epsilon", "steps", "step_size", "fraction", "random_start"}).empty();
  AdversarialConfig& adv = c.adversarial;
  adv.method = ad.get_choice("method", "", {"", "fgsm", "pgd"});
  adv.epsilon = positive(ad, "epsilon", 0.1);
  adv.steps = positive_int(ad, "steps", adv.method == "fgsm" ? 1 : 7);
  if (adv.method == "fgsm" && adv.steps != 1) ad.fail("steps", "fgsm takes one step (use method = \"pgd\")");
  adv.step_size = non_negative(ad, "step_size", 0.0);
  if (adv.step_size == 0.0) adv.step_size = adv.method == "fgsm" ? adv.epsilon : 2.5 * adv.epsilon / adv.steps;
  adv.fraction = ad.get_float("fraction", 0.5);
  if (!(adv.fraction > 0.0 && adv.fraction <= 1.0))
    ad.fail("fraction", "the share of attacked rows must be in (0, 1], got " + std::to_string(adv.fraction));
  adv.random_start = ad.get_bool("random_start", adv.method == "pgd");
  if (!adv.enabled() && adversarial_table) ad.fail("method", "set \"fgsm\" or \"pgd\"");
  if (adv.enabled() && c.task != "supervised" && c.task != "distill")
    ad.fail("method", "adversarial training applies to task = \"supervised\" or \"distill\", not " + c.task);

  ConfigNode co = root.child("coordinator");
  c.coordinator.enabled = co.get_bool("enabled", true);
  c.coordinator.bind = co.get_string("bind", "127.0.0.1");
  c.coordinator.port = co.get_int("port", 0);
  if (c.coordinator.port < 0 || c.coordinator.port > 65535) co.fail("port", "must be in [0, 65535]");
  c.coordinator.http_port = co.get_int("http_port", 0);
  if (c.coordinator.http_port < -1 || c.coordinator.http_port > 65535)
    co.fail("http_port", "must be -1 (off) or in [0, 65535]");
  c.coordinator.heartbeat_s = positive(co, "heartbeat_s", 1.0);
  c.coordinator.heartbeat_timeout_s = positive(co, "heartbeat_timeout_s", 30.0);
  c.coordinator.checkpoint_timeout_s = positive(co, "checkpoint_timeout_s", 600.0);
  c.coordinator.max_bulk_frame_mb = positive_int(co, "max_bulk_frame_mb", 64);
  if (c.task == "self_training" && c.self_training.pseudo_labels && !c.coordinator.enabled)
    co.fail("enabled",
            "task self_training selects its pseudo-labels in the coordinator: it cannot be disabled "
            "(or set self_training.pseudo_labels = false)");

  c.text = root.text();
  c.hash = stable_hash(c.text);
  return c;
}

}  // namespace dptrain
