// Typed, validated access to one table of a TOML config. Every key a component reads is recorded,
// so once all components have read their sections, ConfigNode::check_unused() reports any key
// nobody asked for (a typo) with file:line and the keys that are valid there. Wrong types and
// values name the file, line and dotted key. All such failures are bad input (exit code 2).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace toml {
inline namespace v3 {
class table;
class node;
}  // namespace v3
}  // namespace toml

namespace dptrain {

class ConfigNode {
 public:
  // Parses a TOML file; syntax errors name the file and line.
  static ConfigNode parse_file(const std::string& path);
  static ConfigNode parse_string(const std::string& text, const std::string& source_name);
  // Applies "a.b.c=value" (value parsed as TOML, else taken as a string).
  void apply_override(const std::string& assignment);

  ConfigNode(const ConfigNode&) = default;
  ConfigNode& operator=(const ConfigNode&) = default;
  ~ConfigNode();

  bool has(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  // A string that must be one of `valid`.
  std::string get_choice(const std::string& key, const std::string& fallback,
                         std::initializer_list<const char*> valid) const;
  std::vector<int64_t> get_int_list(const std::string& key, const std::vector<int64_t>& fallback) const;
  std::vector<double> get_float_list(const std::string& key, const std::vector<double>& fallback) const;
  std::vector<std::string> get_string_list(const std::string& key, const std::vector<std::string>& fallback) const;
  // A sub-table (an empty one when absent, so its defaults apply).
  ConfigNode child(const std::string& key) const;
  // An array of tables ([[model.layers]] or layers = [{...}, ...]).
  std::vector<ConfigNode> table_array(const std::string& key) const;
  // Marks a key as known without reading it (read elsewhere or reserved).
  void mark_used(const std::string& key) const;

  // Throws a bad-input error "file:line: key 'a.b': message".
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;
  // "file:line" of a key, or of this table when key is empty.
  std::string where(const std::string& key = "") const;
  // Dotted path of this table ("" for the root, "model.layers[2]").
  const std::string& path() const { return path_; }
  std::string key_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

  // Reports the first key in the whole document that no component read; call after all reads.
  void check_unused() const;
  // The config as TOML text (with overrides applied), for checkpoints and model files.
  std::string text() const;

 private:
  struct Document;
  ConfigNode(std::shared_ptr<Document> doc, toml::table* table, std::string path);
  const toml::node* lookup(const std::string& key) const;

  std::shared_ptr<Document> doc_;
  toml::table* table_;
  std::string path_;
};

}  // namespace dptrain
