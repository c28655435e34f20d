// Files we write carry a seal: HDF5 is told to leave a 512-byte user block at the start, and after
// the file is closed we store there its length and a 64-bit hash of every other byte. HDF5's own
// checksums cover metadata and (Fletcher32) our datasets, but not free space in global heaps or
// other slack; the seal covers the whole file, so any flipped bit or truncation is caught when a
// file is verified. Files from other tools (h5py) have no seal and are read as they are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include <hdf5.h>

namespace dptrain {

// Creates `path` atomically: write(file) fills an HDF5 file with a user block; it is then closed,
// sealed, fsynced and renamed into place (sync_directory: see write_atomically).
void write_sealed_h5(const std::string& path, const std::function<void(hid_t file)>& write, bool sync_directory = true);

// true: the seal is present and matches; false: the file has no seal (another tool wrote it).
// Throws a bad-input error naming the file when the seal does not match (damaged or truncated).
bool verify_seal(const std::string& path);

// A fast 64-bit hash (4 interleaved multiply-rotate lanes, xxHash-style) for the seal.
uint64_t seal_hash(const unsigned char* data, size_t bytes, uint64_t state);

}  // namespace dptrain
