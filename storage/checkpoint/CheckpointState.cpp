#include "storage/checkpoint/CheckpointState.h"

#include <climits>

#include "models/core/Error.h"
#include "storage/checkpoint/StateFields.h"

namespace dptrain {

namespace {
template <typename List>
const auto& find_named(const List& list, const std::string& name, const std::string& source, const char* what) {
  for (const auto& [n, v] : list)
    if (n == name) return v;
  fail_input((source.empty() ? std::string("checkpoint") : source) + ": missing " + what + " '" + name + "'");
}
template <typename List>
bool has_named(const List& list, const std::string& name) {
  for (const auto& e : list)
    if (e.first == name) return true;
  return false;
}
}  // namespace

const FlatEntry& CheckpointState::flat(const std::string& group) const {
  for (const auto& f : flats)
    if (f.group == group) return f;
  fail_input((source.empty() ? std::string("checkpoint") : source) + ": missing group /" + group);
}

bool CheckpointState::has_flat(const std::string& group) const {
  for (const auto& f : flats)
    if (f.group == group) return true;
  return false;
}

std::string CheckpointState::format_tag(int version) { return "dptrain-checkpoint/" + std::to_string(version); }

int CheckpointState::parse_format_tag(const std::string& tag) {
  const std::string prefix = "dptrain-checkpoint/";
  if (tag.compare(0, prefix.size(), prefix) != 0 || tag.size() == prefix.size() || tag.size() > prefix.size() + 6)
    return 0;
  int v = 0;
  for (size_t i = prefix.size(); i < tag.size(); ++i) {
    if (tag[i] < '0' || tag[i] > '9') return 0;
    v = v * 10 + (tag[i] - '0');
  }
  return v;
}

int64_t CheckpointState::integer(const std::string& name) const {
  if (version == 1 && !has_int_array(name)) {
    // Format 1 kept integers as doubles, and files from early in its life lack the fields added
    // later: those read as 0, as the code of that time took them.
    if (!has_scalar(name)) return 0;
    const double d = scalar(name);
    if (!(d >= -9223372036854775808.0 && d < 18446744073709551616.0))
      fail_input((source.empty() ? std::string("checkpoint") : source) + ": /scalars/" + name +
                 " is not an integer in range");
    // Seeds of 2^63 and more were saved from their unsigned value.
    return d >= 9223372036854775808.0 ? static_cast<int64_t>(static_cast<uint64_t>(d)) : static_cast<int64_t>(d);
  }
  const std::vector<int64_t>& v = int_array(name);
  if (v.size() != 1)
    fail_input((source.empty() ? std::string("checkpoint") : source) + ": /ints/" + name + " holds " +
               std::to_string(v.size()) + " values, expected one integer");
  return v[0];
}

double CheckpointState::scalar(const std::string& name) const { return find_named(scalars, name, source, "value"); }
const std::vector<float>& CheckpointState::float_array(const std::string& name) const {
  return find_named(floats, name, source, "array");
}
const std::vector<int64_t>& CheckpointState::int_array(const std::string& name) const {
  return find_named(ints, name, source, "array");
}
const std::string& CheckpointState::string_value(const std::string& name) const {
  return find_named(strings, name, source, "string");
}
bool CheckpointState::has_scalar(const std::string& name) const { return has_named(scalars, name); }
bool CheckpointState::has_integer(const std::string& name) const {
  return has_int_array(name) || (version == 1 && has_scalar(name));
}
bool CheckpointState::has_float_array(const std::string& name) const { return has_named(floats, name); }
bool CheckpointState::has_int_array(const std::string& name) const { return has_named(ints, name); }

void FieldReader::operator()(const std::string& name, std::vector<int32_t>& v) {
  const std::vector<int64_t>& w = s_.int_array(name);
  v.assign(w.size(), 0);
  for (size_t i = 0; i < w.size(); ++i) {
    if (w[i] < INT32_MIN || w[i] > INT32_MAX)
      fail_input((s_.source.empty() ? std::string("checkpoint") : s_.source) + ": /ints/" + name +
                 " holds a value outside the 32-bit range");
    v[i] = static_cast<int32_t>(w[i]);
  }
}

}  // namespace dptrain
