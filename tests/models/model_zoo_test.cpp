// The model zoo's tables (models/zoo/ModelZoo.cpp, models/zoo/LayerBuilder.cpp): the help names
// every model kind and layer type the builders accept, each with exactly the keys that are valid
// for it (a key of another kind is reported by ConfigNode::check_unused), and a key set to the
// default the help shows builds the same model as the key left out.
#include <catch2/catch.hpp>

#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "models/Model.h"
#include "models/core/ConfigNode.h"
#include "models/core/Error.h"
#include "models/zoo/ModelZoo.h"
#include "support/TestSupport.h"

using namespace dptrain;

namespace {

// The message of the error `fn` throws (a bad-input error, exit code 2), or "no error".
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    CHECK(e.exit_code() == 2);
    return e.what();
  }
  return "no error";
}

// "a, b, c" after `marker` up to the end of the message (or of its line), as a set.
std::set<std::string> list_after(const std::string& message, const std::string& marker) {
  const size_t at = message.find(marker);
  INFO(message);
  REQUIRE(at != std::string::npos);
  std::string rest = message.substr(at + marker.size());
  rest = rest.substr(0, rest.find('\n'));
  std::set<std::string> out;
  for (size_t start = 0; start <= rest.size();) {
    size_t comma = rest.find(", ", start);
    if (comma == std::string::npos) comma = rest.size();
    out.insert(rest.substr(start, comma - start));
    start = comma + 2;
  }
  return out;
}

// A help text's entries: the first word of each line that has a description (the closing lines
// start with "Every"), and the "name=default" tokens after "; keys: ".
struct HelpEntry {
  std::set<std::string> names;  // "dense|linear" gives both
  std::map<std::string, std::string> defaults;
  std::string loss;  // a model kind's own default loss, if the help names one
};

std::map<std::string, HelpEntry> parse_help(const std::string& help) {
  std::map<std::string, HelpEntry> out;
  std::istringstream lines(help);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line.rfind("Every", 0) == 0) continue;
    const std::string first = line.substr(0, line.find(' '));
    INFO(line);
    REQUIRE(line.find(first + "  ") == 0);  // the name never runs into its description
    HelpEntry e;
    for (size_t start = 0;;) {
      size_t bar = first.find('|', start);
      e.names.insert(first.substr(start, bar - start));
      if (bar == std::string::npos) break;
      start = bar + 1;
    }
    if (size_t loss = line.find("; loss \""); loss != std::string::npos)
      e.loss = line.substr(loss + 8, line.find('"', loss + 8) - loss - 8);
    const size_t keys = line.find("; keys: ");
    if (keys != std::string::npos) {
      std::istringstream tokens(line.substr(keys + 8));
      for (std::string token; tokens >> token;) {
        const size_t eq = token.find('=');
        REQUIRE(eq != std::string::npos);
        e.defaults[token.substr(0, eq)] = token.substr(eq + 1);
      }
    }
    out[first.substr(0, first.find('|'))] = e;
  }
  return out;
}

// What each kind needs to build besides its defaults, and an input it builds for.
struct KindSetup {
  std::string toml;
  Shape input;
};

KindSetup setup_for(const std::string& kind) {
  if (kind == "cnn") return {"blocks = [ { type = \"conv2d\", filters = 2 } ]", Shape{1, 8, 8}};
  if (kind == "layers") return {"layers = [ { type = \"dense\", units = 3 } ]", Shape{5}};
  if (kind == "resnet" || kind == "mobilenet" || kind == "autoencoder" || kind == "vae") return {"", Shape{1, 8, 8}};
  if (kind == "lstm_classifier" || kind == "rnn_classifier" || kind == "gru_classifier") return {"", Shape{6, 3}};
  if (kind == "transformer_lm") return {"", Shape{6}};  // token ids; the targets are per step (task_for)
  if (kind == "transformer_classifier") return {"vocab = 4", Shape{6}};
  return {"", Shape{5}};
}

TaskInfo task_for(const std::string& kind) {
  TaskInfo t;
  t.num_classes = kind == "logistic_regression" ? 2 : 3;
  if (kind == "transformer_lm") t.label_width = 6;
  if (kind == "linear_regression") {
    t.classification = false;
    t.target_dim = 2;
  }
  return t;
}

// The model of `[model] kind = ...` plus `extra`: layout hash, initial parameters and one forward
// pass in training mode, as bits.
struct Built {
  uint64_t layout = 0;
  std::vector<float> params, output;
  int64_t samples = 0;
};

Built build(const std::string& kind, const std::string& extra) {
  const KindSetup s = setup_for(kind);
  ConfigNode root =
      ConfigNode::parse_string("[model]\nkind = \"" + kind + "\"\n" + s.toml + "\n" + extra + "\n", "zoo.toml");
  ZooModel z = build_model(root.child("model"), task_for(kind), s.input);
  root.check_unused();
  Model m(std::move(z.root), s.input, Device::cpu);
  m.initialize(7);
  Tensor x = Tensor::zeros(s.input.with_batch(4));
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>((i * 37) % 11) / 11.0f;
  StepContext ctx;
  ctx.seed = 3;
  ctx.step = 5;
  Built b;
  b.layout = m.layout_hash();
  b.params = to_host(m.params());
  b.output = to_host(m.forward(x, ctx));
  b.samples = z.samples;
  return b;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Today's kinds and types (aliases too): dropping one from a table must fail a test, not shrink
// the checks.
std::set<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::set<std::string> out;
  for (std::string w; in >> w;) out.insert(w);
  return out;
}
const std::set<std::string> known_kinds = words(
    "linear_regression logistic_regression softmax_regression linear_svm mlp cnn layers resnet mobilenet "
    "lstm_classifier rnn_classifier gru_classifier transformer_lm transformer_classifier autoencoder vae");
const std::set<std::string> known_types = words(
    "dense linear conv2d conv conv_transpose2d deconv2d maxpool2d maxpool avgpool2d avgpool global_avgpool "
    "maxunpool2d maxunpool upsample2d upsample flatten reshape dropout maxout minibatch_stddev batchnorm batchnorm1d "
    "batchnorm2d layernorm residual concat highway embedding rnn lstm gru attention positional transformer_block "
    "mean_pool gelu time_distributed gaussian_sample relu leaky_relu sigmoid tanh identity none");

// The keys a layer table of each type needs to build (inside a list after a maxpool2d).
std::string required_layer_keys(const std::string& type) {
  if (type == "reshape") return "shape = [2]";
  if (type == "embedding") return "vocab = 3, dim = 2";
  if (type == "rnn" || type == "lstm" || type == "gru") return "units = 2";
  if (type == "time_distributed") return "layer = { type = \"dense\" }";
  if (type == "residual") return "layers = [ { type = \"dense\" } ]";
  if (type == "concat")
    return "branches = [ { layers = [ { type = \"dense\" } ] }, { layers = [ { type = \"relu\" } ] } ]";
  return "";
}

}  // namespace

TEST_CASE("the model kinds help names every kind build_model accepts, each with its valid keys", "[models][zoo]") {
  const std::set<std::string> accepted =
      list_after(error_of([] {
                   ConfigNode root = ConfigNode::parse_string("[model]\nkind = \"no_such_kind\"\n", "zoo.toml");
                   build_model(root.child("model"), TaskInfo{});
                 }),
                 "is not one of: ");
  const std::map<std::string, HelpEntry> help = parse_help(model_kinds_help());
  std::set<std::string> helped;
  for (const auto& [name, entry] : help) helped.insert(name);
  CHECK(helped == accepted);
  for (const auto& kind : known_kinds) CHECK(accepted.count(kind) == 1);

  for (const auto& [kind, entry] : help) {
    INFO("kind " << kind);
    // The kind builds with its defaults, and a stray key is reported with exactly the help's keys
    // (plus kind and loss) as the valid ones.
    REQUIRE_NOTHROW(build(kind, ""));
    const std::string stray = error_of([&] { build(kind, "zzz_stray = 1"); });
    CHECK_THAT(stray, Catch::Contains("zoo.toml:") && Catch::Contains("unknown key 'zzz_stray' in [model]"));
    std::set<std::string> valid = {"kind", "loss", "freeze", "init_from"};  // every kind takes these
    for (const auto& [key, fallback] : entry.defaults) valid.insert(key);
    CHECK(list_after(stray, "valid keys: ") == valid);
  }
}

TEST_CASE("a model key set to the default the help shows builds the same model as leaving it out", "[models][zoo]") {
  for (const auto& [kind, entry] : parse_help(model_kinds_help())) {
    const Built plain = build(kind, "");
    for (const auto& [key, fallback] : entry.defaults) {
      if (fallback.front() == '<') continue;  // required, or chosen from other keys
      INFO(kind << ": " << key << " = " << fallback);
      const Built with = build(kind, key + " = " + fallback);
      CHECK(with.layout == plain.layout);
      CHECK(same_bits(with.params, plain.params));
      CHECK(same_bits(with.output, plain.output));
      CHECK(with.samples == plain.samples);
    }
  }
}

TEST_CASE("a key another model kind takes is unknown for the chosen kind", "[models][zoo]") {
  auto stray = [](const std::string& kind, const std::string& key_line) {
    return error_of([&] { build(kind, key_line); });
  };
  CHECK_THAT(stray("mlp", "depth = 3"),
             Catch::Contains("zoo.toml:4: unknown key 'depth' in [model]; valid keys: activation, dropout, freeze, "
                             "hidden, init_from, kind, loss, pieces, slope"));
  CHECK_THAT(stray("resnet", "hidden = [8]"),
             Catch::Contains("unknown key 'hidden' in [model]; valid keys: activation, depth, freeze, init_from, kind, "
                             "loss, stages, sync_batchnorm, width"));
  CHECK_THAT(stray("softmax_regression", "dropout = 0.1"),
             Catch::Contains("unknown key 'dropout' in [model]; valid keys: freeze, init_from, kind, loss"));
  CHECK_THAT(stray("cnn", "layers = []"), Catch::Contains("unknown key 'layers' in [model]; valid keys: blocks,"));
  CHECK_THAT(stray("vae", "code = 8"), Catch::Contains("unknown key 'code' in [model]"));
  // A key of the kind stays valid even where this configuration does not use it.
  CHECK(stray("autoencoder", "conv = false\nwidth = 4") == "no error");
}

TEST_CASE("the layer types help names every type the builder accepts, each with its valid keys", "[models][zoo]") {
  auto build_layers = [](const std::string& table) {
    ConfigNode root = ConfigNode::parse_string(
        "[model]\nkind = \"layers\"\nlayers = [ { type = \"maxpool2d\" }, " + table + " ]\n", "zoo.toml");
    build_model(root.child("model"), TaskInfo{});
    root.check_unused();
  };
  const std::set<std::string> accepted =
      list_after(error_of([&] { build_layers("{ type = \"no_such_type\" }"); }), "; valid: ");
  const std::map<std::string, HelpEntry> help = parse_help(layer_types_help());
  std::set<std::string> primary, all;
  for (const auto& [name, entry] : help) {
    primary.insert(name);
    all.insert(entry.names.begin(), entry.names.end());
  }
  CHECK(primary == accepted);
  CHECK(all == known_types);

  for (const auto& [type, entry] : help) {
    for (const auto& name : entry.names) {
      INFO("type " << name);
      const std::string required = required_layer_keys(type);
      const std::string table = "{ type = \"" + name + "\"" + (required.empty() ? "" : ", " + required);
      REQUIRE_NOTHROW(build_layers(table + " }"));
      const std::string stray = error_of([&] { build_layers(table + ", zzz_stray = 1 }"); });
      CHECK_THAT(stray, Catch::Contains("zoo.toml:") &&
                            Catch::Contains("unknown key 'zzz_stray' in [model.layers[1]]; valid keys: "));
      std::set<std::string> valid = {"type", "trainable"};  // every layer table takes these
      for (const auto& [key, fallback] : entry.defaults) valid.insert(key);
      CHECK(list_after(stray, "valid keys: ") == valid);
      // Each key with a fixed default accepts the default as the help spells it.
      for (const auto& [key, fallback] : entry.defaults)
        if (fallback.front() != '<') CHECK_NOTHROW(build_layers(table + ", " + key + " = " + fallback + " }"));
    }
  }
}

TEST_CASE("docs/config.md lists every model kind and layer type with the keys and defaults of the tables",
          "[models][zoo]") {
  const std::string doc = test::read_text(test::source_dir() + "/docs/config.md");
  // The first table row in doc[from, to) whose first cell names `name` in backticks.
  auto row = [&](const std::string& name, const std::string& from, const std::string& to) {
    const size_t begin = doc.find(from), end = doc.find(to, begin);
    REQUIRE(begin != std::string::npos);
    REQUIRE(end != std::string::npos);
    std::istringstream lines(doc.substr(begin, end - begin));
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("| ", 0) != 0) continue;
      if (line.substr(0, line.find(" |", 2)).find("`" + name + "`") != std::string::npos) return line;
    }
    return std::string();
  };
  auto check_keys = [](const std::string& line, const HelpEntry& entry) {
    for (const auto& [key, fallback] : entry.defaults) {
      INFO(line);
      if (fallback.front() == '<')
        CHECK(line.find("`" + key + "`") != std::string::npos);
      else
        CHECK(line.find("`" + key + " = " + fallback + "`") != std::string::npos);
    }
  };
  for (const auto& [kind, entry] : parse_help(model_kinds_help())) {
    INFO("kind " << kind);
    const std::string line = row(kind, "## `[model]`", "What the keys mean");
    REQUIRE(!line.empty());
    CHECK(line.find(entry.loss.empty() ? " | by data | " : " | `" + entry.loss + "` | ") != std::string::npos);
    check_keys(line, entry);
  }
  for (const auto& [type, entry] : parse_help(layer_types_help())) {
    for (const auto& name : entry.names) {
      INFO("type " << name);
      const std::string line = row(name, "Layer tables (", "## `[optim]`");
      REQUIRE(!line.empty());
      check_keys(line, entry);
    }
  }
}
