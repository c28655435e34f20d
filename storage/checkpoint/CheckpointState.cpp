#include "storage/checkpoint/CheckpointState.h"

#include "models/core/Error.h"

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
bool CheckpointState::has_float_array(const std::string& name) const { return has_named(floats, name); }
bool CheckpointState::has_int_array(const std::string& name) const { return has_named(ints, name); }

}  // namespace dptrain
