#include "models/core/ConfigNode.h"

#include <toml++/toml.h>
#include <sstream>

#include "models/core/Error.h"

namespace dptrain {

// The parsed document and, per table, the keys components have read.
struct ConfigNode::Document {
  toml::table root;
  std::string source;
  struct Usage {
    std::string path;
    std::set<std::string> keys;
  };
  std::map<const toml::table*, Usage> used;
};

namespace {

std::string line_of(const toml::node* node, const std::string& fallback_source) {
  if (node && node->source().begin.line > 0) {
    std::string file = node->source().path ? *node->source().path : fallback_source;
    return file + ":" + std::to_string(node->source().begin.line);
  }
  return fallback_source;
}

const char* type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    default:
      return "a date or time";
  }
}

}  // namespace

ConfigNode::ConfigNode(std::shared_ptr<Document> doc, toml::table* table, std::string path)
    : doc_(std::move(doc)), table_(table), path_(std::move(path)) {
  doc_->used[table_].path = path_;
}

ConfigNode::~ConfigNode() = default;

ConfigNode ConfigNode::parse_file(const std::string& path) {
  auto doc = std::make_shared<Document>();
  doc->source = path;
  try {
    doc->root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::string msg(e.description());
    if (msg.find("File could not be opened") != std::string::npos ||
        msg.find("could not be opened") != std::string::npos)
      fail_input(path + ": cannot open the config file");
    fail_input(path + ":" + std::to_string(e.source().begin.line) + ": TOML syntax error: " + msg);
  }
  return ConfigNode(doc, &doc->root, "");
}

ConfigNode ConfigNode::parse_string(const std::string& text, const std::string& source_name) {
  auto doc = std::make_shared<Document>();
  doc->source = source_name;
  try {
    doc->root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    fail_input(source_name + ":" + std::to_string(e.source().begin.line) +
               ": TOML syntax error: " + std::string(e.description()));
  }
  return ConfigNode(doc, &doc->root, "");
}

void ConfigNode::apply_override(const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    fail_input("--set " + assignment + ": expected key=value (for example optim.lr=0.1)");
  std::string key = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + value);
  } catch (const toml::parse_error&) {
    parsed = toml::table{{"v", value}};  // a bare word: take it as a string
  }
  toml::table* t = table_;
  std::string rest = key;
  for (auto dot = rest.find('.'); dot != std::string::npos; dot = rest.find('.')) {
    std::string part = rest.substr(0, dot);
    rest = rest.substr(dot + 1);
    toml::node* n = t->get(part);
    if (!n) {
      t->insert(part, toml::table{});
      n = t->get(part);
    }
    if (!n->is_table()) fail_input("--set " + key + ": '" + part + "' is not a table in the config");
    t = n->as_table();
  }
  t->insert_or_assign(rest, std::move(*parsed.get("v")));
}

const toml::node* ConfigNode::lookup(const std::string& key) const {
  doc_->used[table_].keys.insert(key);
  return table_->get(key);
}

void ConfigNode::mark_used(const std::string& key) const { doc_->used[table_].keys.insert(key); }

bool ConfigNode::has(const std::string& key) const { return table_->get(key) != nullptr; }

std::string ConfigNode::where(const std::string& key) const {
  const toml::node* n = key.empty() ? static_cast<const toml::node*>(table_) : table_->get(key);
  if (n && n->source().begin.line > 0) return line_of(n, doc_->source);
  if (!key.empty() && !n) return doc_->source;
  return n ? "--set" : doc_->source;
}

void ConfigNode::fail(const std::string& key, const std::string& message) const {
  fail_input(where(key) + ": key '" + key_path(key) + "': " + message);
}

int64_t ConfigNode::get_int(const std::string& key, int64_t fallback) const {
  const toml::node* n = lookup(key);
  if (!n) return fallback;
  if (auto v = n->value_exact<int64_t>()) return *v;
  fail(key, std::string("must be an integer, got ") + type_name(*n));
}

double ConfigNode::get_float(const std::string& key, double fallback) const {
  const toml::node* n = lookup(key);
  if (!n) return fallback;
  if (auto v = n->value_exact<double>()) return *v;
  if (auto v = n->value_exact<int64_t>()) return static_cast<double>(*v);
  fail(key, std::string("must be a number, got ") + type_name(*n));
}

bool ConfigNode::get_bool(const std::string& key, bool fallback) const {
  const toml::node* n = lookup(key);
  if (!n) return fallback;
  if (auto v = n->value_exact<bool>()) return *v;
  fail(key, std::string("must be true or false, got ") + type_name(*n));
}

std::string ConfigNode::get_string(const std::string& key, const std::string& fallback) const {
  const toml::node* n = lookup(key);
  if (!n) return fallback;
  if (auto v = n->value_exact<std::string>()) return *v;
  fail(key, std::string("must be a string, got ") + type_name(*n));
}

std::string ConfigNode::get_choice(const std::string& key, const std::string& fallback,
                                   std::initializer_list<const char*> valid) const {
  std::string v = get_string(key, fallback);
  std::string list;
  for (const char* c : valid) {
    if (v == c) return v;
    list += (list.empty() ? "" : ", ") + std::string(c);
  }
  fail(key, "'" + v + "' is not one of: " + list);
}

namespace {
template <typename T, typename Convert>
std::vector<T> get_list(const ConfigNode& cfg, const toml::node* n, const std::string& key,
                        const std::vector<T>& fallback, const char* what, Convert convert) {
  if (!n) return fallback;
  const toml::array* arr = n->as_array();
  if (!arr) {  // a single value stands for a list of one
    if (auto v = convert(*n)) return {*v};
    cfg.fail(key, std::string("must be a list of ") + what + ", got " + type_name(*n));
  }
  std::vector<T> out;
  for (const toml::node& e : *arr) {
    auto v = convert(e);
    if (!v) cfg.fail(key, std::string("must be a list of ") + what + ", found " + type_name(e) + " in it");
    out.push_back(*v);
  }
  return out;
}
}  // namespace

std::vector<int64_t> ConfigNode::get_int_list(const std::string& key, const std::vector<int64_t>& fallback) const {
  return get_list<int64_t>(*this, lookup(key), key, fallback, "integers",
                           [](const toml::node& e) { return e.value_exact<int64_t>(); });
}

std::vector<double> ConfigNode::get_float_list(const std::string& key, const std::vector<double>& fallback) const {
  return get_list<double>(*this, lookup(key), key, fallback, "numbers",
                          [](const toml::node& e) -> std::optional<double> {
                            if (auto v = e.value_exact<double>()) return v;
                            if (auto v = e.value_exact<int64_t>()) return static_cast<double>(*v);
                            return std::nullopt;
                          });
}

std::vector<std::string> ConfigNode::get_string_list(const std::string& key,
                                                     const std::vector<std::string>& fallback) const {
  return get_list<std::string>(*this, lookup(key), key, fallback, "strings",
                               [](const toml::node& e) { return e.value_exact<std::string>(); });
}

ConfigNode ConfigNode::child(const std::string& key) const {
  const toml::node* n = lookup(key);
  if (!n) {
    table_->insert(key, toml::table{});
    n = table_->get(key);
  }
  if (!n->is_table()) fail(key, std::string("must be a table, got ") + type_name(*n));
  return ConfigNode(doc_, const_cast<toml::table*>(n->as_table()), key_path(key));
}

std::vector<ConfigNode> ConfigNode::table_array(const std::string& key) const {
  const toml::node* n = lookup(key);
  std::vector<ConfigNode> out;
  if (!n) return out;
  const toml::array* arr = n->as_array();
  if (!arr) fail(key, std::string("must be an array of tables, got ") + type_name(*n));
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::node* e = arr->get(i);
    if (!e->is_table()) fail(key, "element " + std::to_string(i) + " must be a table, got " + type_name(*e));
    out.push_back(
        ConfigNode(doc_, const_cast<toml::table*>(e->as_table()), key_path(key) + "[" + std::to_string(i) + "]"));
  }
  return out;
}

void ConfigNode::check_unused() const {
  for (const auto& [table, usage] : doc_->used) {
    for (const auto& [k, node] : *table) {
      std::string key(k.str());
      if (usage.keys.count(key)) continue;
      std::string valid;
      for (const auto& v : usage.keys) valid += (valid.empty() ? "" : ", ") + v;
      std::string where = usage.path.empty() ? "at the top level" : "in [" + usage.path + "]";
      fail_input(line_of(&node, doc_->source) + ": unknown key '" + key + "' " + where +
                 (valid.empty() ? std::string(" (it takes no keys)") : "; valid keys: " + valid));
    }
  }
}

std::string ConfigNode::text() const {
  std::ostringstream s;
  s << doc_->root;
  return s.str();
}

}  // namespace dptrain
