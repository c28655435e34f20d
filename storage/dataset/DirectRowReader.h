// Reads rows of a dataset file's /x with plain pread: the streaming reader's random minibatches.
// Going through HDF5 costs more per selected row than the bytes do: perf of 128-row random
// batches shows most of the time in HDF5's selection iteration (H5S/H5VM) and its byte-at-a-time
// Fletcher32. When /x is float32 little-endian, contiguous or chunked along dim 0 only, and
// unfiltered or with Fletcher32 as its only filter, the chunk addresses are found once at open
// (and checked against HDF5's own raw read of a chunk), and a batch becomes one pread per run of
// rows (unfiltered) or per chunk touched (Fletcher32, verified as HDF5 verifies it). Any other
// layout, and any checksum mismatch, goes back to HDF5's path, which names the damage.
#pragma once

#include <hdf5.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dptrain {

class DirectRowReader {
 public:
  // A reader for dataset `x` of the open file `file` at `path`, or null when /x does not qualify
  // or its chunk addresses cannot be confirmed. Never throws for a file HDF5 itself can read.
  static std::unique_ptr<DirectRowReader> open(const std::string& path, hid_t file, hid_t x, int64_t rows,
                                               int64_t row_floats);
  ~DirectRowReader();
  DirectRowReader(const DirectRowReader&) = delete;
  DirectRowReader& operator=(const DirectRowReader&) = delete;

  // Reads the given rows (ascending, in range) into out (count * row_floats). False when a chunk
  // fails its checksum, a read comes up short or the rows are not ascending: the caller then reads
  // through HDF5. Allocates nothing once a thread has read its first checksummed chunk.
  [[nodiscard]] bool read(const int64_t* rows, int64_t count, float* out) const;

  bool checksummed() const { return checksummed_; }
  int64_t chunk_rows() const { return chunk_rows_; }

 private:
  DirectRowReader() = default;
  // Fills chunk_offsets_ with the file offset of each of `count` chunks; false when that would
  // take too many of HDF5's (slow) lookups.
  bool locate_chunks(hid_t x, int rank, int64_t count, int64_t stored, bool checksummed);

  int fd_ = -1;
  int64_t rows_ = 0, row_bytes_ = 0;
  int64_t chunk_rows_ = 0;   // rows per chunk; all rows for a contiguous dataset
  int64_t chunk_bytes_ = 0;  // data bytes of one stored chunk (without the checksum)
  bool checksummed_ = false;
  std::vector<int64_t> chunk_offsets_;  // file offset of every chunk
};

}  // namespace dptrain
