// Writes a file so that readers see either the old file or the complete new one, never half:
// write to a temporary name in the same directory, fsync it, rename over the target, fsync the
// directory. Used for dataset files, model files and checkpoints.
#pragma once

#include <functional>
#include <string>

namespace dptrain {

// Calls write(tmp_path) and then publishes tmp_path as `path`. On any exception the temporary file
// is removed and the exception propagates; `path` is untouched. sync_directory = false leaves the
// rename's durability to a later fsync of the same directory by the caller (one flush for two
// files, as CheckpointStore does for a checkpoint and its pointer).
void write_atomically(const std::string& path, const std::function<void(const std::string& tmp_path)>& write,
                      bool sync_directory = true);

// write_atomically() of a file holding `bytes`; a failed write names `path`.
void write_bytes_atomically(const std::string& path, const std::string& bytes);

// fsyncs a file or directory by path (throws naming it on failure).
void fsync_path(const std::string& path);

}  // namespace dptrain
