#include "storage/checkpoint/CheckpointStore.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "models/core/Error.h"
#include "storage/AtomicFile.h"

namespace dptrain {

namespace fs = std::filesystem;

namespace {
// "812 kB", "3.4 MB", "1.2 GB".
std::string human_bytes(uintmax_t bytes) {
  const double b = static_cast<double>(bytes);
  char text[32];
  if (b >= 1e9)
    std::snprintf(text, sizeof text, "%.1f GB", b / 1e9);
  else if (b >= 1e6)
    std::snprintf(text, sizeof text, "%.1f MB", b / 1e6);
  else
    std::snprintf(text, sizeof text, "%.0f kB", b / 1e3);
  return text;
}
}  // namespace

CheckpointStore::CheckpointStore(std::string dir, int64_t keep)
    : dir_(std::move(dir)), keep_(std::max<int64_t>(1, keep)) {}

CheckpointStore::~CheckpointStore() { finish_removal(); }

void CheckpointStore::finish_removal() const {
  if (removal_.joinable()) removal_.join();
}

std::string CheckpointStore::file_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "ckpt-%010lld.h5", static_cast<long long>(step));
  return buf;
}

std::vector<std::string> CheckpointStore::list() const {
  finish_removal();
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    std::string name = e.path().filename().string();
    long long step;
    char tail[8] = {};
    if (std::sscanf(name.c_str(), "ckpt-%lld.%3s", &step, tail) == 2 && std::string(tail) == "h5" &&
        name == file_name(step))
      found.emplace_back(step, e.path().string());
  }
  std::sort(found.rbegin(), found.rend());
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

std::string CheckpointStore::save(const CheckpointState& state) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) fail_input(dir_ + ": cannot create the checkpoint directory: " + ec.message());
  std::string path = (fs::path(dir_) / file_name(state.step)).string();
  // The checkpoint's bytes are durable before its rename, and the pointer's before its own; one
  // fsync of the directory then makes both renames durable (one disk flush, not two). A crash
  // before it leaves at worst a pointer to a file that is not there, or the previous pointer,
  // and resolve() falls back to the newest good checkpoint either way.
  try {
    write_checkpoint_file(path, state, /*sync_directory=*/false);
    write_atomically((fs::path(dir_) / "latest").string(), [&](const std::string& tmp) {
      std::ofstream out(tmp);
      out << file_name(state.step) << "\n";
      if (!out.flush()) throw Error(ErrorKind::internal, tmp + ": cannot write the latest pointer");
    });
  } catch (const Error& e) {
    // A full disk shows as a failed HDF5 write: say where, and how much room there is. The
    // temporary file is gone and `latest` still names the previous complete checkpoint.
    std::string room;
    const fs::space_info space = fs::space(dir_, ec);
    if (!ec) room = "; " + human_bytes(space.available) + " free of " + human_bytes(space.capacity) + " there";
    throw Error(e.kind(), "checkpoint of step " + std::to_string(state.step) + " not written to " + dir_ + room + " (" +
                              e.what() + "); the latest complete checkpoint is unchanged");
  }
  std::vector<std::string> all = list();  // also waits for the previous save's removal
  if (all.size() > static_cast<size_t>(keep_)) {
    std::vector<std::string> old(all.begin() + keep_, all.end());
    removal_ = std::thread([old = std::move(old)] {
      std::error_code ignored;  // a file already gone is fine; nothing here may throw
      for (const auto& p : old) fs::remove(p, ignored);
    });
  }
  return path;
}

CheckpointStore::Resolved CheckpointStore::resolve(const std::string& spec) const {
  Resolved r;
  if (!spec.empty() && spec != "latest") {
    verify_checkpoint_file(spec);  // a named file must be good; no silent fallback
    r.path = spec;
    return r;
  }
  std::vector<std::string> candidates;
  std::ifstream pointer((fs::path(dir_) / "latest").string());
  std::string name;
  if (pointer >> name && name.find('/') == std::string::npos) candidates.push_back((fs::path(dir_) / name).string());
  for (const auto& p : list())
    if (std::find(candidates.begin(), candidates.end(), p) == candidates.end()) candidates.push_back(p);
  for (const auto& c : candidates) {
    try {
      verify_checkpoint_file(c);
      r.path = c;
      return r;
    } catch (const Error& e) {
      r.skipped.push_back(e.what());
    }
  }
  return r;
}

}  // namespace dptrain
