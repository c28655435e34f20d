// Collectives and the bucketed gradient reducer on real MPI ranks (run under mpirun -np 2..4).
#include <catch2/catch.hpp>

#include <cstring>
#include <numeric>

#include "comm/GradientReducer.h"
#include "support/MpiTestSupport.h"

using namespace dptrain;
using namespace dptrain::test;

TEST_CASE("collectives sum, broadcast and gather across ranks", "[mpi]") {
  Communicator& c = mpi_comm();
  const int n = c.size(), r = c.rank();
  REQUIRE(n >= 2);
  std::vector<float> f(1000, static_cast<float>(r + 1));
  c.allreduce_sum(f.data(), static_cast<int64_t>(f.size()));
  for (float v : f) CHECK(v == Approx(n * (n + 1) / 2.0));
  double d[2] = {static_cast<double>(r), 1.0};
  c.allreduce_sum(d, 2);
  CHECK(d[0] == Approx(n * (n - 1) / 2.0));
  CHECK(d[1] == n);
  double m = r * 10.0;
  c.allreduce_max(&m, 1);
  CHECK(m == (n - 1) * 10.0);
  int64_t token = r == 0 ? 424242 : -1;
  c.broadcast(&token, sizeof token, 0);
  CHECK(token == 424242);
  std::vector<int32_t> all(static_cast<size_t>(n));
  int32_t mine = r * r;
  c.allgather(&mine, sizeof mine, all.data());
  for (int i = 0; i < n; ++i) CHECK(all[static_cast<size_t>(i)] == i * i);
  auto req = c.make_request();
  c.allreduce_sum_async(f.data(), 10, *req);
  req->wait();
  req->wait();  // idle: returns at once
  CHECK(f[0] == Approx(n * n * (n + 1) / 2.0));
  CHECK(c.local_size() == n);  // one machine
}

TEST_CASE("the gradient reducer sums every bucket, whatever order backward reports in", "[mpi]") {
  Communicator& c = mpi_comm();
  // Ten "parameters" of assorted sizes, padded like the model's flat buffer.
  std::vector<int64_t> offsets;
  int64_t n = 0;
  for (int64_t size : {1000, 16, 5000, 3, 70000, 128, 1, 20000, 64, 300}) {
    offsets.push_back(n);
    n += (size + 15) / 16 * 16;
  }
  std::vector<float> g(static_cast<size_t>(n));
  for (int64_t bucket_bytes : {int64_t{4096}, int64_t{100000}, int64_t{25} << 20}) {
    DYNAMIC_SECTION("bucket bytes " << bucket_bytes) {
      for (int64_t i = 0; i < n; ++i)
        g[static_cast<size_t>(i)] = static_cast<float>(c.rank() + 1) * static_cast<float>(i % 97);
      GradientReducer reducer(c, g.data(), n, offsets, bucket_bytes);
      // Buckets tile the buffer from the end down, with edges on parameter boundaries.
      int64_t expect_end = n;
      for (const auto& b : reducer.buckets()) {
        CHECK(b.end == expect_end);
        CHECK(std::find(offsets.begin(), offsets.end(), b.begin) != offsets.end());
        expect_end = b.begin;
      }
      CHECK(expect_end == 0);
      if (bucket_bytes == 4096) CHECK(reducer.buckets().size() == 4);
      reducer.begin_step(0);
      for (size_t i = offsets.size(); i-- > 0;) reducer.ready_from(offsets[i]);
      reducer.finish();
      const float ranks_sum = static_cast<float>(c.size() * (c.size() + 1) / 2);
      for (int64_t i = 0; i < n; i += 7)
        CHECK(g[static_cast<size_t>(i)] == Approx(ranks_sum * static_cast<float>(i % 97)));
    }
  }
}

TEST_CASE("large float sums go round the ring: exact sums, identical bits on every rank", "[mpi]") {
  Communicator& c = mpi_comm();
  const int n = c.size(), r = c.rank();
  auto req = c.make_request();
  // Below and above the ring threshold (256 KiB), counts not divisible by the ranks.
  for (int64_t count : {int64_t{1000}, int64_t{65535}, int64_t{65536}, int64_t{200003}, int64_t{1} << 20}) {
    DYNAMIC_SECTION("count " << count) {
      std::vector<float> f(static_cast<size_t>(count));
      for (int64_t i = 0; i < count; ++i)
        f[static_cast<size_t>(i)] = static_cast<float>((i * 7 + r * 13) % 101) * 0.01f;
      for (int round = 0; round < 2; ++round) {  // a reused request
        std::vector<float> g = f;
        c.allreduce_sum_async(g.data(), count, *req);
        while (!req->test()) {
        }
        req->wait();
        for (int64_t i = 0; i < count; i += 997) {
          double want = 0;
          for (int k = 0; k < n; ++k) want += static_cast<double>((i * 7 + k * 13) % 101) * 0.01;
          REQUIRE(g[static_cast<size_t>(i)] == Approx(want).epsilon(1e-5));
        }
        // Every rank holds the same bits: compare a checksum of the whole buffer.
        uint64_t h = 1469598103934665603ull;
        for (float v : g) {
          uint32_t bits;
          std::memcpy(&bits, &v, 4);
          h = (h ^ bits) * 1099511628211ull;
        }
        std::vector<uint64_t> all(static_cast<size_t>(n));
        c.allgather(&h, sizeof h, all.data());
        for (uint64_t other : all) CHECK(other == h);
      }
    }
  }
}
