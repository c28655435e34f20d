#include "models/zoo/KeyReader.h"

#include <charconv>

#include "models/core/Error.h"

namespace dptrain {

namespace {

// The shortest text that reads back as `v`, always with a '.' or an exponent (1.0, 0.01, 1e-5).
std::string float_text(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  DPT_ASSERT(ec == std::errc(), "a double fits 32 characters");
  std::string s(buf, end);
  const size_t e = s.find('e');
  if (e == std::string::npos) return s.find('.') == std::string::npos ? s + ".0" : s;
  size_t digits = e + 1 + (s[e + 1] == '-' || s[e + 1] == '+');
  while (digits + 1 < s.size() && s[digits] == '0') s.erase(digits, 1);  // 1e-05 -> 1e-5
  return s;
}

struct DefaultText {
  std::string operator()(const KeySpec::Computed& c) const { return c.text; }
  std::string operator()(int64_t v) const { return std::to_string(v); }
  std::string operator()(double v) const { return float_text(v); }
  std::string operator()(bool v) const { return v ? "true" : "false"; }
  std::string operator()(const std::string& v) const { return "\"" + v + "\""; }
  std::string operator()(const std::vector<int64_t>& v) const {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s + "]";
  }
};

}  // namespace

std::string KeySpec::help() const { return name + "=" + std::visit(DefaultText{}, fallback); }

KeySpec int_key(std::string name, int64_t fallback) { return {std::move(name), fallback}; }
KeySpec float_key(std::string name, double fallback) { return {std::move(name), fallback}; }
KeySpec bool_key(std::string name, bool fallback) { return {std::move(name), fallback}; }
KeySpec string_key(std::string name, std::string fallback) { return {std::move(name), std::move(fallback)}; }
KeySpec int_list_key(std::string name, std::vector<int64_t> fallback) { return {std::move(name), std::move(fallback)}; }
KeySpec computed_key(std::string name, std::string text) {
  DPT_ASSERT(text.find(' ') == std::string::npos, "a computed default's help text has no spaces");
  return {std::move(name), KeySpec::Computed{std::move(text)}};
}

std::string keys_help(const std::vector<KeySpec>& keys) {
  std::string s;
  for (const KeySpec& k : keys) s += (s.empty() ? "" : " ") + k.help();
  return s;
}

KeyReader::KeyReader(const ConfigNode& table, const std::vector<KeySpec>& keys) : table_(table), keys_(keys) {
  for (const KeySpec& k : keys_) table_.mark_used(k.name);
}

const KeySpec::Default& KeyReader::declared(const std::string& key) const {
  for (const KeySpec& k : keys_)
    if (k.name == key) return k.fallback;
  fail_internal("config key '" + table_.key_path(key) + "' is read but not declared in its builder table");
}

template <typename T>
const T& KeyReader::fixed_default(const std::string& key) const {
  const T* v = std::get_if<T>(&declared(key));
  DPT_ASSERT(v != nullptr, "config key '" + table_.key_path(key) + "' is read with another type than declared");
  return *v;
}

void KeyReader::computed(const std::string& key) const {
  DPT_ASSERT(std::holds_alternative<KeySpec::Computed>(declared(key)),
             "config key '" + table_.key_path(key) + "' has a declared default; read it without one");
}

int64_t KeyReader::get_int(const std::string& key) const { return table_.get_int(key, fixed_default<int64_t>(key)); }
double KeyReader::get_float(const std::string& key) const { return table_.get_float(key, fixed_default<double>(key)); }
bool KeyReader::get_bool(const std::string& key) const { return table_.get_bool(key, fixed_default<bool>(key)); }
std::string KeyReader::get_string(const std::string& key) const {
  return table_.get_string(key, fixed_default<std::string>(key));
}
std::vector<int64_t> KeyReader::get_int_list(const std::string& key) const {
  return table_.get_int_list(key, fixed_default<std::vector<int64_t>>(key));
}
std::vector<int64_t> KeyReader::get_int_or_list(const std::string& key) const {
  return table_.get_int_list(key, {fixed_default<int64_t>(key)});
}

int64_t KeyReader::get_int(const std::string& key, int64_t fallback) const {
  computed(key);
  return table_.get_int(key, fallback);
}
double KeyReader::get_float(const std::string& key, double fallback) const {
  computed(key);
  return table_.get_float(key, fallback);
}
bool KeyReader::get_bool(const std::string& key, bool fallback) const {
  computed(key);
  return table_.get_bool(key, fallback);
}
std::string KeyReader::get_string(const std::string& key, const std::string& fallback) const {
  computed(key);
  return table_.get_string(key, fallback);
}
std::vector<int64_t> KeyReader::get_int_list(const std::string& key, const std::vector<int64_t>& fallback) const {
  computed(key);
  return table_.get_int_list(key, fallback);
}

bool KeyReader::has(const std::string& key) const {
  declared(key);
  return table_.has(key);
}
ConfigNode KeyReader::child(const std::string& key) const {
  declared(key);
  return table_.child(key);
}
std::vector<ConfigNode> KeyReader::table_array(const std::string& key) const {
  declared(key);
  return table_.table_array(key);
}
void KeyReader::fail(const std::string& key, const std::string& message) const { table_.fail(key, message); }

}  // namespace dptrain
