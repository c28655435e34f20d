// One checkpoint as one HDF5 file (docs/design.md "Checkpoints"). Layout:
//   attribute format = "dptrain-checkpoint/1"
//   /meta/{config_text, config_hash, layout_hash, step, world_size}
//   /<group>/<part path>      every flat buffer, one dataset per parameter (h5py-readable)
//   /scalars/<name>, /floats/<name>, /ints/<name>, /strings/<name>
// Every dataset is Fletcher32-checksummed and the file uses the format whose metadata carries
// checksums, so reading a damaged file fails, naming what is damaged, instead of returning garbage.
#pragma once

#include <string>
#include <vector>

#include "storage/checkpoint/CheckpointState.h"

namespace dptrain {

// What flat buffers to read and how they are laid out (from the model being resumed).
struct FlatSpec {
  std::string group;
  std::vector<ParamInfo> layout;
  int64_t size;  // floats, padding included
  bool required = true;
};

// Writes atomically (temporary name, fsync, rename; sync_directory: see write_atomically).
void write_checkpoint_file(const std::string& path, const CheckpointState& state, bool sync_directory = true);

// Reads and validates everything; flats are read per `flats` and must match their layouts.
CheckpointState read_checkpoint_file(const std::string& path, const std::vector<FlatSpec>& flats);

// Reads every dataset once (so every checksum is verified) and returns a description; throws a
// bad-input error naming the first damaged or missing part.
std::string verify_checkpoint_file(const std::string& path);

}  // namespace dptrain
