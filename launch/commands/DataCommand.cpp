// `dptrain data synth|import|inspect`: make, convert and look at dataset files.
#include <cstdio>

#include "launch/ArgParser.h"
#include "launch/commands/Commands.h"
#include "models/core/Error.h"
#include "storage/dataset/Import.h"
#include "storage/dataset/Synthesize.h"

namespace dptrain {

namespace {

void report(const std::string& path, const DatasetContents& c) {
  std::printf("wrote %s: %lld rows of %s", path.c_str(), static_cast<long long>(c.rows()),
              c.sample_shape.str().c_str());
  if (c.label_kind == LabelKind::classes) std::printf(", %lld classes", static_cast<long long>(c.num_classes));
  if (c.label_width > 1) std::printf(", %lld labels per row", static_cast<long long>(c.label_width));
  if (c.label_kind == LabelKind::values) std::printf(", %lld regression targets", static_cast<long long>(c.target_dim));
  std::printf("\n");
}

int synth(const Args& args) {
  ArgParser p("dptrain data synth", "Generates a synthetic dataset (deterministic per seed).");
  p.positional("KIND", "what to generate (see below)")
      .option("out", "FILE", "the HDF5 dataset file to write")
      .option("n", "N", "rows", "1000")
      .option("seed", "S", "random seed", "0")
      .option("classes", "K", "classes or modes (0 = the kind's default)", "0")
      .option("dim", "D", "features or sequence length (0 = the kind's default)", "0")
      .option("noise", "X", "noise level (negative = the kind's default)", "-1")
      .option("labeled-per-class", "K", "write a /labeled mask with K labelled rows per class", "-1")
      .epilog("Kinds:\n" + synth_kinds_help());
  if (!p.parse(args)) return 0;
  if (!p.has("out")) fail_input("dptrain data synth: --out FILE is required");
  SynthOptions o;
  o.kind = p.get("KIND");
  o.n = p.get_int("n");
  o.seed = static_cast<uint64_t>(p.get_int("seed"));
  o.classes = p.get_int("classes");
  o.dim = p.get_int("dim");
  o.noise = p.get_float("noise");
  o.labeled_per_class = p.get_int("labeled-per-class");
  DatasetContents c = synthesize(o);
  write_dataset_file(p.get("out"), c);
  report(p.get("out"), c);
  return 0;
}

// --text: byte-level language-model windows, optionally split into training and validation files.
int import_text_files(const ArgParser& p) {
  for (const char* other : {"label-column", "header", "task", "labels"})
    if (p.has(other))
      fail_input(std::string("dptrain data import: --") + other + " goes with --csv or --npy, not --text");
  if (!p.has("context")) fail_input("dptrain data import: --text needs --context T (bytes per window)");
  if (p.has("validation-fraction") && !p.has("validation-out"))
    fail_input("dptrain data import: --validation-fraction needs --validation-out FILE");
  TextImportOptions o;
  o.path = p.get("text");
  o.context = p.get_int("context");
  if (p.has("validation-out")) {
    o.validation_fraction = p.get_float("validation-fraction");
    if (!(o.validation_fraction > 0.0 && o.validation_fraction < 1.0))
      fail_input("dptrain data import: --validation-fraction " + p.get("validation-fraction") + " must be in (0, 1)");
  }
  TextImport t = import_text(o);
  write_train_validation_files(p.get("out"), t.train, p.get("validation-out"), t.validation);
  if (t.validation.rows() > 0) report(p.get("validation-out"), t.validation);
  report(p.get("out"), t.train);
  return 0;
}

int import(const Args& args) {
  ArgParser p("dptrain data import", "Converts CSV, NumPy .npy or text data into a dataset file.");
  p.option("csv", "FILE", "a CSV file (numbers; one label column)")
      .option("label-column", "NAME|INDEX", "the CSV label column: header name or 0-based index (-1 = last)")
      .flag("header", "the CSV's first row names the columns")
      .option("task", "KIND", "auto, classification or regression", "auto")
      .option("npy", "X.npy", "features [N, ...] as a .npy array")
      .option("labels", "Y.npy", "labels [N] (integers) or targets [N] / [N, k] (floats) as .npy")
      .option("text", "FILE", "UTF-8 text for a byte-level language model: x [N, T] bytes, y [N, T] next bytes")
      .option("context", "T", "--text: bytes per window (non-overlapping windows, stride T)")
      .option("validation-out", "FILE", "--text: also write a validation file from the end of the text")
      .option("validation-fraction", "F", "--text: the share of the text, at its end, for validation", "0.1")
      .option("out", "FILE", "the HDF5 dataset file to write (with --validation-out: the training file)");
  if (!p.parse(args)) return 0;
  if (!p.has("out")) fail_input("dptrain data import: --out FILE is required");
  if (p.has("csv") + p.has("npy") + p.has("text") != 1)
    fail_input("dptrain data import: give exactly one of --csv, --npy and --text");
  if (p.has("text")) return import_text_files(p);
  for (const char* text_only : {"context", "validation-out", "validation-fraction"})
    if (p.has(text_only)) fail_input(std::string("dptrain data import: --") + text_only + " goes with --text only");
  DatasetContents c;
  if (p.has("csv")) {
    if (!p.has("label-column")) fail_input("dptrain data import: --csv needs --label-column NAME|INDEX");
    c = import_csv({p.get("csv"), p.get("label-column"), p.has("header"), p.get("task")});
  } else {
    c = import_npy(p.get("npy"), p.get("labels"));
  }
  write_dataset_file(p.get("out"), c);
  report(p.get("out"), c);
  return 0;
}

int inspect(const Args& args) {
  ArgParser p("dptrain data inspect", "Shows shapes, dtypes, class counts and NaN/Inf counts of a dataset file.");
  p.positional("FILE", "a dataset file");
  if (!p.parse(args)) return 0;
  std::printf("%s", inspect_dataset(p.get("FILE")).c_str());
  return 0;
}

}  // namespace

int data_command(const Args& args) {
  const char* usage =
      "usage: dptrain data synth|import|inspect ...\n\n"
      "  synth KIND --out FILE    generate a synthetic dataset\n"
      "  import ... --out FILE    convert CSV, .npy or text data\n"
      "  inspect FILE             describe a dataset file\n";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::printf("%s", usage);
    return args.empty() ? 2 : 0;
  }
  Args rest(args.begin() + 1, args.end());
  if (args[0] == "synth") return synth(rest);
  if (args[0] == "import") return import(rest);
  if (args[0] == "inspect") return inspect(rest);
  fail_input("dptrain data: unknown subcommand '" + args[0] + "'; valid: synth, import, inspect");
}

}  // namespace dptrain
