#include "storage/dataset/DirectRowReader.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <utility>

#include "storage/hdf5/Fletcher32.h"

namespace dptrain {

namespace {

bool pread_all(int fd, unsigned char* out, size_t bytes, int64_t offset) {
  while (bytes > 0) {
    ssize_t n = ::pread(fd, out, bytes, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    out += n;
    bytes -= static_cast<size_t>(n);
    offset += n;
  }
  return true;
}

// HDF5 handles closed on every path out of open().
struct Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  ~Handle() {
    if (id >= 0) close(id);
  }
};

}  // namespace

std::unique_ptr<DirectRowReader> DirectRowReader::open(const std::string& path, hid_t file, hid_t x, int64_t rows,
                                                       int64_t row_floats) {
  if constexpr (std::endian::native != std::endian::little) return nullptr;
  Handle type{H5Dget_type(x), H5Tclose};
  if (type.id < 0 || H5Tequal(type.id, H5T_IEEE_F32LE) <= 0) return nullptr;
  Handle dcpl{H5Dget_create_plist(x), H5Pclose};
  if (dcpl.id < 0 || H5Pget_external_count(dcpl.id) != 0) return nullptr;
  const int filters = H5Pget_nfilters(dcpl.id);
  bool fletcher = false;
  if (filters == 1) {
    unsigned flags = 0, config = 0;
    size_t nvalues = 0;
    fletcher = H5Pget_filter2(dcpl.id, 0, &flags, &nvalues, nullptr, 0, nullptr, &config) == H5Z_FILTER_FLETCHER32;
  }
  if (filters != 0 && !fletcher) return nullptr;

  std::unique_ptr<DirectRowReader> r(new DirectRowReader);
  r->rows_ = rows;
  r->row_bytes_ = row_floats * static_cast<int64_t>(sizeof(float));
  r->checksummed_ = fletcher;
  Handle space{H5Dget_space(x), H5Sclose};
  const int rank = space.id < 0 ? -1 : H5Sget_simple_extent_ndims(space.id);
  if (rank < 1 || rank > 32) return nullptr;
  std::vector<hsize_t> dims(static_cast<size_t>(rank)), origin(static_cast<size_t>(rank), 0);
  H5Sget_simple_extent_dims(space.id, dims.data(), nullptr);

  const H5D_layout_t layout = H5Pget_layout(dcpl.id);
  if (layout == H5D_CONTIGUOUS && !fletcher) {
    haddr_t at = H5Dget_offset(x);
    if (at == HADDR_UNDEF) return nullptr;
    r->chunk_rows_ = rows;
    r->chunk_bytes_ = rows * r->row_bytes_;
    r->chunk_offsets_.push_back(static_cast<int64_t>(at));
  } else if (layout == H5D_CHUNKED) {
    std::vector<hsize_t> chunk(static_cast<size_t>(rank));
    if (H5Pget_chunk(dcpl.id, rank, chunk.data()) != rank) return nullptr;
    for (int i = 1; i < rank; ++i)  // chunked along rows only: a chunk is a run of whole rows
      if (chunk[static_cast<size_t>(i)] != dims[static_cast<size_t>(i)]) return nullptr;
    r->chunk_rows_ = static_cast<int64_t>(chunk[0]);
    r->chunk_bytes_ = r->chunk_rows_ * r->row_bytes_;
    const int64_t stored = r->chunk_bytes_ + (fletcher ? 4 : 0);
    const int64_t count = (rows + r->chunk_rows_ - 1) / r->chunk_rows_;
    if (!r->locate_chunks(x, rank, count, stored, fletcher)) return nullptr;
  } else {
    return nullptr;
  }

  r->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (r->fd_ < 0) return nullptr;

  // Confirm the offsets against HDF5's own reading of the start of the data (HDF5 versions
  // differ on whether chunk addresses count the user block), and adopt the one that matches.
  std::vector<unsigned char> theirs, ours;
  if (layout == H5D_CHUNKED) {
    theirs.resize(static_cast<size_t>(r->chunk_bytes_ + (fletcher ? 4 : 0)));
    uint32_t mask = 0;
    if (H5Dread_chunk(x, H5P_DEFAULT, origin.data(), &mask, theirs.data()) < 0) {
      H5Eclear2(H5E_DEFAULT);
      return nullptr;
    }
  } else {
    const int64_t n = std::min<int64_t>(rows, std::max<int64_t>(1, 65536 / r->row_bytes_));
    theirs.resize(static_cast<size_t>(n * r->row_bytes_));
    std::vector<hsize_t> count = dims;
    count[0] = static_cast<hsize_t>(n);
    Handle file_space{H5Dget_space(x), H5Sclose};
    Handle mem_space{H5Screate_simple(rank, count.data(), nullptr), H5Sclose};
    if (file_space.id < 0 || mem_space.id < 0 ||
        H5Sselect_hyperslab(file_space.id, H5S_SELECT_SET, origin.data(), nullptr, count.data(), nullptr) < 0 ||
        H5Dread(x, H5T_NATIVE_FLOAT, mem_space.id, file_space.id, H5P_DEFAULT, theirs.data()) < 0) {
      H5Eclear2(H5E_DEFAULT);
      return nullptr;
    }
  }
  ours.resize(theirs.size());
  hsize_t user_block = 0;
  {
    Handle fcpl{H5Fget_create_plist(file), H5Pclose};
    if (fcpl.id >= 0) H5Pget_userblock(fcpl.id, &user_block);
  }
  for (int64_t shift : {int64_t{0}, static_cast<int64_t>(user_block)}) {
    if (pread_all(r->fd_, ours.data(), ours.size(), r->chunk_offsets_[0] + shift) && ours == theirs) {
      for (auto& o : r->chunk_offsets_) o += shift;
      return r;
    }
    if (user_block == 0) break;
  }
  return nullptr;
}

bool DirectRowReader::locate_chunks(hid_t x, int rank, int64_t count, int64_t stored, bool checksummed) {
  // HDF5 1.10 finds a chunk's address by walking the chunk index (H5Dget_chunk_info_by_coord is
  // linear in the number of chunks; H5Dchunk_iter came in 1.14), so asking for every chunk is
  // quadratic: 0.6 s for 3,000 chunks, minutes for 60,000. Chunks written in order lie one after
  // the other, with the odd gap where HDF5 put metadata; so look up the two ends of a range, and
  // when they are exactly (b - a) chunks apart take the chunks between as consecutive, else split
  // the range. Every chunk read is then checked against its Fletcher32 sum, so a wrong inference
  // would read as a damaged chunk and go to HDF5, never into a batch; without checksums there is
  // nothing to catch it, and each chunk is looked up. Too many lookups: HDF5's path instead.
  const int64_t budget = std::max<int64_t>(16, (int64_t{4} << 20) / std::max<int64_t>(1, count));
  int64_t lookups = 0;
  std::vector<hsize_t> at(static_cast<size_t>(rank), 0);
  chunk_offsets_.assign(static_cast<size_t>(count), -1);
  auto lookup = [&](int64_t c) {
    if (chunk_offsets_[static_cast<size_t>(c)] >= 0) return true;
    if (++lookups > budget) return false;
    at[0] = static_cast<hsize_t>(c * chunk_rows_);
    unsigned mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    if (H5Dget_chunk_info_by_coord(x, at.data(), &mask, &addr, &size) < 0 || addr == HADDR_UNDEF || mask != 0 ||
        static_cast<int64_t>(size) != stored) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
    chunk_offsets_[static_cast<size_t>(c)] = static_cast<int64_t>(addr);
    return true;
  };
  std::vector<std::pair<int64_t, int64_t>> ranges{{0, count - 1}};
  while (!ranges.empty()) {
    auto [a, b] = ranges.back();
    ranges.pop_back();
    if (!lookup(a) || !lookup(b)) return false;
    if (b - a <= 1) continue;
    const int64_t oa = chunk_offsets_[static_cast<size_t>(a)], ob = chunk_offsets_[static_cast<size_t>(b)];
    if (checksummed && ob - oa == (b - a) * stored) {
      for (int64_t c = a + 1; c < b; ++c) chunk_offsets_[static_cast<size_t>(c)] = oa + (c - a) * stored;
      continue;
    }
    const int64_t m = a + (b - a) / 2;
    ranges.push_back({m, b});
    ranges.push_back({a, m});
  }
  return true;
}

DirectRowReader::~DirectRowReader() {
  if (fd_ >= 0) ::close(fd_);
}

bool DirectRowReader::read(const int64_t* rows, int64_t count, float* out) const {
  auto* dst = reinterpret_cast<unsigned char*>(out);
  thread_local std::vector<unsigned char> chunk;  // grows to one stored chunk per thread, once
  for (int64_t i = 0; i < count;) {
    if (rows[i] < 0 || rows[i] >= rows_ || (i > 0 && rows[i] <= rows[i - 1])) return false;
    const int64_t c = rows[i] / chunk_rows_, first = c * chunk_rows_;
    const int64_t end = std::min(rows_, first + chunk_rows_);
    int64_t j = i + 1;
    while (j < count && rows[j] < end) {
      if (rows[j] <= rows[j - 1]) return false;
      ++j;
    }
    const int64_t at = chunk_offsets_[static_cast<size_t>(c)];
    if (!checksummed_) {  // only the rows asked for, one read per run of neighbours
      for (int64_t k = i; k < j;) {
        int64_t e = k + 1;
        while (e < j && rows[e] == rows[e - 1] + 1) ++e;
        if (!pread_all(fd_, dst + k * row_bytes_, static_cast<size_t>((e - k) * row_bytes_),
                       at + (rows[k] - first) * row_bytes_))
          return false;
        k = e;
      }
    } else {  // the whole chunk, to verify it
      const size_t stored = static_cast<size_t>(chunk_bytes_) + 4;
      if (chunk.size() < stored) chunk.resize(stored);
      if (!pread_all(fd_, chunk.data(), stored, at) ||
          !hdf5_fletcher32_ok(chunk.data(), static_cast<size_t>(chunk_bytes_)))
        return false;
      for (int64_t k = i; k < j; ++k)
        std::memcpy(dst + k * row_bytes_, chunk.data() + (rows[k] - first) * row_bytes_,
                    static_cast<size_t>(row_bytes_));
    }
    i = j;
  }
  return true;
}

}  // namespace dptrain
