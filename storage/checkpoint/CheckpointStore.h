// A directory of checkpoints: ckpt-<step>.h5 files written atomically, a `latest` pointer file
// updated after the checkpoint is durable, and only the newest `keep` files kept. Resolving
// "latest" verifies every checksum and falls back to the previous good checkpoint when the newest
// is damaged, reporting what it skipped: resuming never starts from garbage.
// Older checkpoints are removed on a background thread once the new one is durable: deleting a
// file of tens of MB takes as long as writing one on some file systems (online discard), and
// training waits for a save.
#pragma once

#include <string>
#include <thread>
#include <vector>

#include "storage/checkpoint/CheckpointFile.h"

namespace dptrain {

class CheckpointStore {
 public:
  CheckpointStore(std::string dir, int64_t keep);
  ~CheckpointStore();  // waits for the removal of old checkpoints
  CheckpointStore(const CheckpointStore&) = delete;
  CheckpointStore& operator=(const CheckpointStore&) = delete;

  const std::string& dir() const { return dir_; }
  // Writes `state` as the checkpoint of its step; returns its path.
  std::string save(const CheckpointState& state);

  struct Resolved {
    std::string path;                  // empty when there is no checkpoint at all
    std::vector<std::string> skipped;  // damaged checkpoints passed over, with the reason
  };
  // "latest" (or "") gives the newest checkpoint that verifies; anything else is taken as a file.
  Resolved resolve(const std::string& spec) const;
  // Checkpoint files in the directory, newest step first (after any pending removal).
  std::vector<std::string> list() const;

  static std::string file_name(int64_t step);

 private:
  void finish_removal() const;

  std::string dir_;
  int64_t keep_;
  mutable std::thread removal_;  // removes the checkpoints beyond keep_ after a save
};

}  // namespace dptrain
