#include "storage/hdf5/SealedFile.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "storage/AtomicFile.h"
#include "storage/hdf5/H5.h"

namespace dptrain {

namespace {

constexpr size_t user_block = 512;
constexpr char magic[] = "DPTRAIN-SEAL/1\n";  // 15 bytes + NUL
constexpr uint64_t p1 = 0x9E3779B185EBCA87ull, p2 = 0xC2B2AE3D27D4EB4Full;

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

struct FileBytes {
  int fd = -1;
  ~FileBytes() {
    if (fd >= 0) ::close(fd);
  }
};

// The seal hashes the file in pieces of this size, each chained into the next.
constexpr size_t hash_piece = size_t{4} << 20;

// Hashes bytes [from, end) of an open file.
uint64_t hash_file(int fd, int64_t from, int64_t end, const std::string& path) {
  std::vector<unsigned char> buf(hash_piece);
  uint64_t h = 0x27D4EB2F165667C5ull;
  for (int64_t at = from; at < end;) {
    ssize_t n =
        ::pread(fd, buf.data(), static_cast<size_t>(std::min<int64_t>(end - at, static_cast<int64_t>(buf.size()))), at);
    if (n <= 0) fail_input(path + ": read error while verifying: " + std::strerror(errno));
    h = seal_hash(buf.data(), static_cast<size_t>(n), h);
    at += n;
  }
  return h;
}

// The same hash of a file we have just written, hashed in place through a mapping rather than
// copied out again (the copy is a fifth of a checkpoint save). Only for our own temporary file:
// a mapping of a file someone truncates meanwhile faults (SIGBUS) where pread reports an error.
uint64_t hash_own_file(int fd, int64_t from, int64_t end, const std::string& path) {
  void* map = end > from ? ::mmap(nullptr, static_cast<size_t>(end), PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
  if (map == MAP_FAILED) return hash_file(fd, from, end, path);
  ::madvise(map, static_cast<size_t>(end), MADV_SEQUENTIAL);
  const auto* bytes = static_cast<const unsigned char*>(map);
  uint64_t h = 0x27D4EB2F165667C5ull;
  for (int64_t at = from; at < end; at += static_cast<int64_t>(hash_piece))
    h = seal_hash(bytes + at, static_cast<size_t>(std::min<int64_t>(end - at, static_cast<int64_t>(hash_piece))), h);
  ::munmap(map, static_cast<size_t>(end));
  return h;
}

}  // namespace

uint64_t seal_hash(const unsigned char* data, size_t bytes, uint64_t state) {
  uint64_t lanes[4] = {state + p1 + p2, state + p2, state, state - p1};
  size_t i = 0;
  for (; i + 32 <= bytes; i += 32)
    for (int l = 0; l < 4; ++l) {
      uint64_t w;
      std::memcpy(&w, data + i + 8 * l, 8);
      lanes[l] = rotl(lanes[l] + w * p2, 31) * p1;
    }
  uint64_t h = rotl(lanes[0], 1) + rotl(lanes[1], 7) + rotl(lanes[2], 12) + rotl(lanes[3], 18);
  for (; i < bytes; ++i) h = rotl(h ^ (data[i] * p1), 11) * p2;
  h ^= bytes;
  h ^= h >> 33;
  h *= p2;
  h ^= h >> 29;
  return h;
}

void write_sealed_h5(const std::string& path, const std::function<void(hid_t)>& write, bool sync_directory) {
  auto write_and_seal = [&](const std::string& tmp) {
    {
      h5_quiet();
      const std::string what = "creating " + path;
      H5Id fcpl = h5_plist(H5Pcreate(H5P_FILE_CREATE), what);
      DPT_H5(H5Pset_userblock(fcpl, user_block), what);
      H5Id fapl = h5_plist(H5Pcreate(H5P_FILE_ACCESS), what);
      // The newest format: checksummed superblock, object headers and chunk indexes.
      DPT_H5(H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST), what);
      H5Id f = h5_file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, fcpl, fapl), what);
      write(f);
      DPT_H5(H5Fflush(f, H5F_SCOPE_GLOBAL), "flushing " + path);
    }
    FileBytes file{::open(tmp.c_str(), O_RDWR)};
    if (file.fd < 0) fail_input(tmp + ": cannot reopen to seal: " + std::strerror(errno));
    struct stat st {};
    ::fstat(file.fd, &st);
    // Start writing the pages back now, so that the disk works while we hash them and the fsync
    // that follows has less left to wait for.
    ::sync_file_range(file.fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    unsigned char head[user_block] = {};
    std::memcpy(head, magic, sizeof magic);
    uint64_t length = static_cast<uint64_t>(st.st_size);
    std::memcpy(head + 16, &length, 8);
    // The hash covers the rest of the user block (zeros) and everything after it.
    uint64_t h = seal_hash(head + 32, user_block - 32, 0);
    h = hash_own_file(file.fd, user_block, st.st_size, tmp) ^ rotl(h, 17);
    std::memcpy(head + 24, &h, 8);
    if (::pwrite(file.fd, head, user_block, 0) != static_cast<ssize_t>(user_block))
      throw Error(ErrorKind::internal, tmp + ": cannot write the seal: " + std::strerror(errno));
  };
  write_atomically(path, write_and_seal, sync_directory);
}

bool verify_seal(const std::string& path) {
  FileBytes file{::open(path.c_str(), O_RDONLY)};
  if (file.fd < 0) fail_input(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  ::fstat(file.fd, &st);
  unsigned char head[user_block] = {};
  if (st.st_size < static_cast<off_t>(user_block) ||
      ::pread(file.fd, head, user_block, 0) != static_cast<ssize_t>(user_block))
    return false;
  if (std::memcmp(head, magic, sizeof magic) != 0) {
    // No seal. A file of ours with a damaged seal still has the user block HDF5 skips over.
    static const unsigned char hdf5_signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char at512[8];
    if (::pread(file.fd, at512, 8, user_block) == 8 && std::memcmp(at512, hdf5_signature, 8) == 0 &&
        std::memcmp(head, hdf5_signature, 8) != 0)
      fail_input(path + ": its seal (file checksum) is damaged");
    return false;
  }
  uint64_t length, stored;
  std::memcpy(&length, head + 16, 8);
  std::memcpy(&stored, head + 24, 8);
  if (length != static_cast<uint64_t>(st.st_size))
    fail_input(path + ": the file has " + std::to_string(st.st_size) + " bytes but was written with " +
               std::to_string(length) + " (truncated or extended)");
  uint64_t h = seal_hash(head + 32, user_block - 32, 0);
  h = hash_file(file.fd, user_block, st.st_size, path) ^ rotl(h, 17);
  if (h != stored) fail_input(path + ": file checksum mismatch: the file is damaged");
  return true;
}

}  // namespace dptrain
