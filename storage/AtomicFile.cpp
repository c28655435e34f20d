#include "storage/AtomicFile.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "models/core/Error.h"

namespace dptrain {

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail_input(path + ": cannot open to sync: " + std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) throw Error(ErrorKind::internal, path + ": fsync failed: " + std::strerror(err));
}

void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write,
                      bool sync_directory) {
  namespace fs = std::filesystem;
  static std::atomic<unsigned> counter{0};
  fs::path target(path);
  fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail_input(path + ": the directory " + dir.string() + " does not exist");
  std::string tmp = (dir / ("." + target.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                            std::to_string(counter++)))
                        .string();
  try {
    write(tmp);
    fsync_path(tmp);
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw Error(ErrorKind::internal, path + ": cannot rename the new file into place: " + std::strerror(errno));
    if (sync_directory) fsync_path(dir.string());
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
}

void write_bytes_atomically(const std::string& path, const std::string& bytes) {
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) fail_input(path + ": cannot be written (" + std::strerror(errno) + ")");
  });
}

}  // namespace dptrain
