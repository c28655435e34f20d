// One declaration per piece of saved state (docs/design.md "Checkpoints"): a piece lists its
// fields once, in a member template
//
//   template <class Fields> void fields(Fields& f) {
//     f("cursor_epoch", cursor.epoch);
//     f("schedule_best", schedule.best);
//   }
//
// and save_fields / restore_fields both walk that list, so what is written and what is read back
// cannot drift apart. Integers (int64_t, uint64_t as its two's-complement bit pattern, bool) are
// stored as int64 in /ints; only real numbers go to /scalars as doubles, so a seed of 2^53 + 1 or
// 2^64 - 1 comes back exact. Format 1 files, which held every number as a double, still load.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "storage/checkpoint/CheckpointState.h"

namespace dptrain {

class FieldWriter {
 public:
  explicit FieldWriter(CheckpointState& s) : s_(s) {}
  void operator()(const std::string& name, int64_t v) { s_.ints.emplace_back(name, std::vector<int64_t>{v}); }
  void operator()(const std::string& name, uint64_t v) { (*this)(name, static_cast<int64_t>(v)); }
  void operator()(const std::string& name, bool v) { (*this)(name, int64_t{v ? 1 : 0}); }
  void operator()(const std::string& name, double v) { s_.scalars.emplace_back(name, v); }
  void operator()(const std::string& name, const std::vector<float>& v) { s_.floats.emplace_back(name, v); }
  void operator()(const std::string& name, const std::vector<int64_t>& v) { s_.ints.emplace_back(name, v); }
  void operator()(const std::string& name, const std::vector<int32_t>& v) {
    s_.ints.emplace_back(name, std::vector<int64_t>(v.begin(), v.end()));
  }
  void operator()(const std::string& name, const std::string& v) { s_.strings.emplace_back(name, v); }
  // A fixed array of reals as name_0, name_1, ...
  template <size_t N>
  void operator()(const std::string& name, const double (&v)[N]) {
    for (size_t i = 0; i < N; ++i) (*this)(name + "_" + std::to_string(i), v[i]);
  }

 private:
  CheckpointState& s_;
};

class FieldReader {
 public:
  explicit FieldReader(const CheckpointState& s) : s_(s) {}
  void operator()(const std::string& name, int64_t& v) { v = s_.integer(name); }
  void operator()(const std::string& name, uint64_t& v) { v = static_cast<uint64_t>(s_.integer(name)); }
  void operator()(const std::string& name, bool& v) { v = s_.integer(name) != 0; }
  void operator()(const std::string& name, double& v) { v = s_.scalar(name); }
  // (Format 1 files from early in its life lack some arrays: they read as empty.)
  void operator()(const std::string& name, std::vector<float>& v) {
    if (s_.version == 1 && !s_.has_float_array(name))
      v.clear();
    else
      v = s_.float_array(name);
  }
  void operator()(const std::string& name, std::vector<int64_t>& v) { v = s_.int_array(name); }
  void operator()(const std::string& name, std::vector<int32_t>& v);
  void operator()(const std::string& name, std::string& v) { v = s_.string_value(name); }
  // An array that grew (the loss statistics gained top-5): the elements a file written before
  // lacks read as 0; the first one must be there.
  template <size_t N>
  void operator()(const std::string& name, double (&v)[N]) {
    for (size_t i = 0; i < N; ++i) {
      const std::string element = name + "_" + std::to_string(i);
      if (i > 0 && !s_.has_scalar(element))
        v[i] = 0.0;
      else
        (*this)(element, v[i]);
    }
  }

 private:
  const CheckpointState& s_;
};

template <class Piece>
void save_fields(CheckpointState& s, Piece& piece) {
  FieldWriter w(s);
  piece.fields(w);
}

template <class Piece>
void restore_fields(const CheckpointState& s, Piece& piece) {
  FieldReader r(s);
  piece.fields(r);
}

}  // namespace dptrain
