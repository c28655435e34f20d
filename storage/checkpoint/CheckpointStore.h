// A directory of checkpoints: ckpt-<step>.h5 files written atomically, a `latest` pointer file
// updated after the checkpoint is durable, and only the newest `keep` files kept. Resolving
// "latest" verifies every checksum and falls back to the previous good checkpoint when the newest
// is damaged, reporting what it skipped: resuming never starts from garbage.
#pragma once

#include <string>
#include <vector>

#include "storage/checkpoint/CheckpointFile.h"

namespace dptrain {

class CheckpointStore {
 public:
  CheckpointStore(std::string dir, int64_t keep);

  const std::string& dir() const { return dir_; }
  // Writes `state` as the checkpoint of its step; returns its path.
  std::string save(const CheckpointState& state);

  struct Resolved {
    std::string path;                  // empty when there is no checkpoint at all
    std::vector<std::string> skipped;  // damaged checkpoints passed over, with the reason
  };
  // "latest" (or "") gives the newest checkpoint that verifies; anything else is taken as a file.
  Resolved resolve(const std::string& spec) const;
  // Checkpoint files in the directory, newest step first.
  std::vector<std::string> list() const;

  static std::string file_name(int64_t step);

 private:
  std::string dir_;
  int64_t keep_;
};

}  // namespace dptrain
