// Row reads that bypass HDF5 (storage/dataset/DirectRowReader): our Fletcher32 against HDF5's
// own (storage/hdf5/Fletcher32), every /x layout HDF5 or h5py writes read back exactly (directly where the layout
// allows, through HDF5 where not), and a damaged chunk still failing with the checksum message.
#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>
#include <numeric>
#include <random>

#include "storage/dataset/DatasetFile.h"
#include "storage/dataset/DirectRowReader.h"
#include "storage/hdf5/Fletcher32.h"
#include "storage/hdf5/H5.h"
#include "support/TestSupport.h"

// HDF5 exports the checksum its Fletcher32 filter uses (H5private.h).
extern "C" uint32_t H5_checksum_fletcher32(const void* data, size_t len);

using namespace dptrain;
using namespace dptrain::test;

namespace {

constexpr int64_t n_rows = 103, features = 12;

std::vector<float> source_rows(int64_t rows = n_rows) {
  std::vector<float> x(static_cast<size_t>(rows * features));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) * 0.25f - 7.0f;
  return x;
}

// /x [103, 12] and /y as h5py would write them, with the given dataset creation property list.
void write_plain(const std::string& path, hid_t dcpl) {
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hsize_t dims[2] = {n_rows, features};
  hid_t space = H5Screate_simple(2, dims, nullptr);
  hid_t ds = H5Dcreate2(f, "x", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  std::vector<float> x = source_rows();
  H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x.data());
  H5Dclose(ds);
  H5Sclose(space);
  std::vector<int32_t> y(n_rows, 1);
  h5_write_ints(f, "y", {n_rows}, y.data(), false);
  H5Fclose(f);
}

hid_t chunked(hsize_t rows, hsize_t cols, bool fletcher, bool gzip = false) {
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  hsize_t chunk[2] = {rows, cols};
  H5Pset_chunk(dcpl, 2, chunk);
  if (fletcher) H5Pset_fletcher32(dcpl);
  if (gzip) H5Pset_deflate(dcpl, 4);
  return dcpl;
}

// Reads random ascending row lists and compares them with the rows written.
void check_reads(const DatasetFile& file) {
  const std::vector<float> x = source_rows();
  std::mt19937 rng(5);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<int64_t> rows;
    for (int64_t r = 0; r < n_rows; ++r)
      if (rng() % 4 == 0 || (trial == 0)) rows.push_back(r);  // trial 0: every row
    if (rows.empty()) continue;
    std::vector<float> out(rows.size() * features, -1.0f);
    file.read_row_list(rows.data(), static_cast<int64_t>(rows.size()), out.data());
    for (size_t i = 0; i < rows.size(); ++i)
      REQUIRE(std::memcmp(out.data() + i * features, x.data() + rows[i] * features, features * sizeof(float)) == 0);
  }
}

}  // namespace

TEST_CASE("our Fletcher32 agrees with HDF5's", "[storage]") {
  std::vector<unsigned char> data(300000);
  std::mt19937 rng(1);
  for (auto& c : data) c = static_cast<unsigned char>(rng());
  for (size_t len : {0, 1, 2, 3, 31, 32, 33, 8191, 8192, 8193, 16385, 65536, 100001, 300000}) {
    for (int pattern = 0; pattern < 3; ++pattern) {
      std::vector<unsigned char> d(data.begin(), data.begin() + static_cast<long>(len));
      if (pattern == 1) std::fill(d.begin(), d.end(), 0xff);  // sums that are multiples of 65535
      if (pattern == 2) std::fill(d.begin(), d.end(), 0x00);
      uint32_t s1 = 0, s2 = 0;
      fletcher32_sums(d.data(), d.size(), s1, s2);
      const uint32_t theirs = H5_checksum_fletcher32(d.data(), d.size());
      INFO("length " << len << " pattern " << pattern);
      CHECK(s1 == (theirs & 0xffffu) % 65535u);
      CHECK(s2 == (theirs >> 16) % 65535u);
      CHECK(hdf5_fletcher32(d.data(), d.size()) == theirs);  // bit for bit, as written to files
    }
  }
}

TEST_CASE("rows of every /x layout read back exactly, directly where the layout allows", "[storage]") {
  TempDir dir;
  struct Case {
    std::string name;
    hid_t dcpl;
    bool direct;
  };
  std::vector<Case> cases = {
      {"contiguous", H5Pcreate(H5P_DATASET_CREATE), true},
      {"chunked", chunked(7, features, false), true},
      {"chunked, fletcher32", chunked(7, features, true), true},
      {"one row per chunk, fletcher32", chunked(1, features, true), true},
      {"chunked across features", chunked(8, features / 2, true), false},
      {"compressed", chunked(16, features, true, true), false},
  };
  for (auto& c : cases) {
    DYNAMIC_SECTION(c.name) {
      write_plain(dir.file("x.h5"), c.dcpl);
      DatasetFile file(dir.file("x.h5"));
      CHECK(file.reads_directly() == c.direct);
      check_reads(file);
    }
    H5Pclose(c.dcpl);
  }
  SECTION("our own files: a user block, the newest format, Fletcher32") {
    DatasetContents contents;
    contents.sample_shape = Shape{features};
    contents.x = source_rows();
    write_dataset_file(dir.file("ours.h5"), contents);
    DatasetFile file(dir.file("ours.h5"));
    CHECK(file.reads_directly());
    check_reads(file);
    CHECK(file.read_extra("x") == contents.x);  // HDF5 accepts the checksums we computed
  }
  SECTION("our own files, chunks with padding past the last row") {
    DatasetContents contents;
    contents.sample_shape = Shape{features};
    contents.x = source_rows(3001);  // 3 chunks of 1001 rows, the last padded
    write_dataset_file(dir.file("pad.h5"), contents);
    DatasetFile file(dir.file("pad.h5"));
    CHECK(file.reads_directly());
    CHECK(file.read_extra("x") == contents.x);
    int64_t rows[3] = {0, 2002, 3000};
    std::vector<float> out(3 * features);
    file.read_row_list(rows, 3, out.data());
    for (int i = 0; i < 3; ++i)
      CHECK(std::memcmp(out.data() + i * features, contents.x.data() + rows[i] * features, features * 4) == 0);
  }
}

TEST_CASE("a damaged chunk of /x still fails with the checksum message", "[storage]") {
  TempDir dir;
  DatasetContents contents;
  contents.sample_shape = Shape{features};
  contents.x = source_rows(3000);  // 144 KB: several 64 KiB chunks
  write_dataset_file(dir.file("d.h5"), contents);
  // Find row 50's bytes in the file and flip one bit in them (in the first chunk).
  std::string bytes;
  {
    std::ifstream in(dir.file("d.h5"), std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::vector<float> x = source_rows(3000);
  const std::string row50(reinterpret_cast<const char*>(x.data() + 50 * features), features * sizeof(float));
  const size_t at = bytes.find(row50);
  REQUIRE(at != std::string::npos);
  bytes[at + 5] = static_cast<char>(bytes[at + 5] ^ 0x04);
  {
    std::ofstream out(dir.file("d.h5"), std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  DatasetFile file(dir.file("d.h5"));
  REQUIRE(file.reads_directly());
  std::vector<float> out(2 * features);
  int64_t damaged[2] = {3, 50};
  REQUIRE_THROWS_WITH(file.read_row_list(damaged, 2, out.data()),
                      Catch::Contains("d.h5") && Catch::Contains("checksum mismatch"));
  // Rows in the other (intact) chunks still read.
  int64_t intact[1] = {2999};
  file.read_row_list(intact, 1, out.data());
  CHECK(out[1] == x[2999 * features + 1]);
}
