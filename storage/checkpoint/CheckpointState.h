// Everything a checkpoint holds, in memory, independent of the trainer: flat buffers with the
// layout that names their parts (parameters, optimizer states, best parameters), scalars, integer
// and float arrays, and strings. The trainer fills it and applies it; CheckpointStore writes and
// reads it; the coordinator (issue 5) assembles one from the ranks' slices.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/Model.h"

namespace dptrain {

// A flat buffer saved as one dataset per named part: "<group>/<part path>" with the part's shape.
struct FlatEntry {
  std::string group;              // "params", "optimizer/adam_m", ...
  std::vector<ParamInfo> layout;  // the parts and their offsets
  std::vector<float> data;        // the whole flat buffer (padding included)
  int64_t size = 0;               // its length when `data` is not held (metadata only)
  int64_t length() const { return data.empty() ? size : static_cast<int64_t>(data.size()); }
};

struct CheckpointState {
  // The file format: attribute format = "dptrain-checkpoint/<version>". Version 2 stores integers
  // as int64 (/ints); version 1 held every number as a double in /scalars and still loads.
  static constexpr int format_version = 2;
  static constexpr int oldest_format_version = 1;
  static std::string format_tag(int version = format_version);
  // The version a tag names, or 0 when it is not a dptrain checkpoint tag.
  static int parse_format_tag(const std::string& tag);

  int version = format_version;  // of the file it was read from

  std::string config_text;
  uint64_t config_hash = 0;
  uint64_t layout_hash = 0;
  int64_t step = 0;
  int64_t world_size = 1;

  std::vector<FlatEntry> flats;
  std::vector<std::pair<std::string, double>> scalars;
  std::vector<std::pair<std::string, std::vector<float>>> floats;
  std::vector<std::pair<std::string, std::vector<int64_t>>> ints;
  std::vector<std::pair<std::string, std::string>> strings;

  // Lookups; each throws a bad-input error naming the checkpoint entry when it is absent.
  const FlatEntry& flat(const std::string& group) const;
  double scalar(const std::string& name) const;
  // An integer saved by FieldWriter (StateFields.h): /ints/<name> with one value (in a version 1
  // file, /scalars/<name>).
  int64_t integer(const std::string& name) const;
  const std::vector<float>& float_array(const std::string& name) const;
  const std::vector<int64_t>& int_array(const std::string& name) const;
  const std::string& string_value(const std::string& name) const;
  bool has_flat(const std::string& group) const;
  bool has_scalar(const std::string& name) const;
  bool has_integer(const std::string& name) const;
  bool has_float_array(const std::string& name) const;
  bool has_int_array(const std::string& name) const;

  std::string source;  // the file it was read from (for messages)
};

}  // namespace dptrain
