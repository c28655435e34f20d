// The keys one row of a builder table takes (a model kind, a layer type), each with its default,
// and reads of a config table that allow only those keys. Declaring a row's keys marks them known
// in the table, so ConfigNode::check_unused() reports any other key with exactly the row's keys as
// the valid ones; the same declarations print the help text. The reads take the default from the
// declaration, so help, validation and behaviour cannot drift apart.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "models/core/ConfigNode.h"

namespace dptrain {

struct KeySpec {
  // A key without one fixed default: required, optional, or chosen by the builder from other keys.
  // `text` (no spaces) is what the help shows as its default, e.g. "<required>".
  struct Computed {
    std::string text;
  };
  using Default = std::variant<Computed, int64_t, double, bool, std::string, std::vector<int64_t>>;

  std::string name;
  Default fallback;

  // "name=default" in TOML spelling (strings quoted), or "name=<text>" for a computed default.
  std::string help() const;
};

// Declarations of a key, one per default type.
KeySpec int_key(std::string name, int64_t fallback);
KeySpec float_key(std::string name, double fallback);
KeySpec bool_key(std::string name, bool fallback);
KeySpec string_key(std::string name, std::string fallback);
KeySpec int_list_key(std::string name, std::vector<int64_t> fallback);
KeySpec computed_key(std::string name, std::string text);

// The keys of a row as the help shows them: "a=1 b=[64] c=<required>", or "" when there are none.
std::string keys_help(const std::vector<KeySpec>& keys);

class KeyReader {
 public:
  // Marks every key of `keys` as known in `table` (see the file comment).
  KeyReader(const ConfigNode& table, const std::vector<KeySpec>& keys);

  // Reads of a key with a fixed default; the key must be declared with a default of that type.
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  std::vector<int64_t> get_int_list(const std::string& key) const;
  // One number or a list of numbers (a size: 3 or [h, w]), declared with an integer default.
  std::vector<int64_t> get_int_or_list(const std::string& key) const;
  // Reads of a key declared with a computed default: the builder supplies it.
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  std::vector<int64_t> get_int_list(const std::string& key, const std::vector<int64_t>& fallback) const;

  // ConfigNode's calls, for declared keys only.
  bool has(const std::string& key) const;
  ConfigNode child(const std::string& key) const;
  std::vector<ConfigNode> table_array(const std::string& key) const;
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;

  const ConfigNode& node() const { return table_; }

 private:
  const KeySpec::Default& declared(const std::string& key) const;
  template <typename T>
  const T& fixed_default(const std::string& key) const;
  void computed(const std::string& key) const;

  ConfigNode table_;
  const std::vector<KeySpec>& keys_;  // a row of a static table
};

}  // namespace dptrain
