// The control channel under attack: no token, a wrong token, a wrong version, frames before
// authentication, 10,000 random or truncated frames, a claimed 4 GiB frame — each refused and
// logged, none crashing the coordinator (CI runs this under ASan/UBSan) or disturbing a worker
// that keeps heartbeating and checkpointing meanwhile. Plus OpenSSL's HMAC against RFC 4231's
// test vectors and the freshness of tokens and nonces.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <thread>

#include "comm/control/ControlClient.h"
#include "comm/control/Crypto.h"
#include "models/core/Error.h"
#include "models/core/Hash.h"
#include "models/core/Philox.h"
#include "support/CheckpointFrames.h"
#include "support/TestSupport.h"
#include "trainer/coordinator/CheckpointWire.h"
#include "trainer/coordinator/Coordinator.h"

using namespace dptrain;
using namespace dptrain::test;

namespace {

// A raw TCP connection to the coordinator, for speaking the protocol wrongly on purpose.
class RawSocket {
 public:
  explicit RawSocket(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("connect");
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawSocket() { ::close(fd_); }
  void send(const void* p, size_t n) { (void)!::send(fd_, p, n, MSG_NOSIGNAL); }
  void send_frame(uint16_t type, const std::vector<uint8_t>& payload, uint64_t claimed = UINT64_MAX) {
    uint8_t h[frame_header_bytes];
    FrameHeader fh;
    fh.type = type;
    fh.length = claimed == UINT64_MAX ? payload.size() : claimed;
    fh.encode(h);
    send(h, sizeof h);
    if (!payload.empty()) send(payload.data(), payload.size());
  }
  // Reads one frame; false when the server closed the connection instead.
  bool read_frame(uint16_t& type, std::vector<uint8_t>& payload) {
    uint8_t h[frame_header_bytes];
    if (!read_all(h, sizeof h)) return false;
    FrameHeader fh = FrameHeader::decode(h);
    type = fh.type;
    payload.resize(static_cast<size_t>(fh.length));
    return fh.length == 0 || read_all(payload.data(), payload.size());
  }
  // True when the server has closed the connection (reads EOF), waiting up to 5 s.
  bool closed_by_server() {
    uint8_t b[256];
    while (true) {
      ssize_t n = ::recv(fd_, b, sizeof b, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }

 private:
  bool read_all(void* p, size_t n) {
    auto* c = static_cast<uint8_t*>(p);
    while (n > 0) {
      ssize_t got = ::recv(fd_, c, n, 0);
      if (got <= 0) return false;
      c += got;
      n -= static_cast<size_t>(got);
    }
    return true;
  }
  int fd_;
};

std::vector<uint8_t> hello(const uint8_t* nonce, const std::string& token, uint32_t version = protocol_version) {
  Digest mac = hmac_sha256(token, nonce, 32);
  ByteWriter w;
  // Rank 1 of 2: the real worker below is rank 0, and a second claim of a rank replaces the first.
  w.u32(version).i32(1).i32(2).i32(12345).raw(mac.data(), 32).str("test-host");
  return w.take();
}

// Connects raw, reads the challenge and answers it; returns the server's reply type.
uint16_t handshake(RawSocket& s, const std::string& token, uint32_t version = protocol_version) {
  uint16_t type;
  std::vector<uint8_t> challenge;
  REQUIRE(s.read_frame(type, challenge));
  REQUIRE(type == static_cast<uint16_t>(FrameType::challenge));
  s.send_frame(static_cast<uint16_t>(FrameType::hello), hello(challenge.data() + 4, token, version));
  std::vector<uint8_t> reply;
  return s.read_frame(type, reply) ? type : 0;
}

struct Fixture {
  TempDir dir;
  std::vector<std::string> log;
  std::mutex log_mu;
  std::unique_ptr<Coordinator> coordinator;
  Fixture() {
    CoordinatorOptions o;
    o.checkpoint_dir = dir.file("ckpt");
    o.http_port = -1;
    coordinator = std::make_unique<Coordinator>(o, [this](const std::string& line) {
      std::lock_guard<std::mutex> lock(log_mu);
      log.push_back(line);
    });
  }
  bool logged(const std::string& text) {
    std::lock_guard<std::mutex> lock(log_mu);
    for (const auto& l : log)
      if (l.find(text) != std::string::npos) return true;
    return false;
  }
};

}  // namespace

TEST_CASE("HMAC-SHA256 matches RFC 4231 and job tokens are fresh", "[control][token]") {
  auto hmac_hex = [](const std::string& key, const std::string& data) {
    Digest d = hmac_sha256(key, data.data(), data.size());
    return to_hex(d.data(), d.size());
  };
  // RFC 4231 test cases 1-4, 6 and 7 (case 5 tests truncated output, which the channel never uses).
  CHECK(hmac_hex(std::string(20, '\x0b'), "Hi There") ==
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  CHECK(hmac_hex("Jefe", "what do ya want for nothing?") ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  CHECK(hmac_hex(std::string(20, '\xaa'), std::string(50, '\xdd')) ==
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
  std::string key4;
  for (char c = 1; c <= 25; ++c) key4 += c;
  CHECK(hmac_hex(key4, std::string(50, '\xcd')) == "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
  const std::string long_key(131, '\xaa');  // longer than SHA-256's block: hashed first
  CHECK(hmac_hex(long_key, "Test Using Larger Than Block-Size Key - Hash Key First") ==
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  CHECK(hmac_hex(long_key,
                 "This is a test using a larger than block-size key and a larger than block-size data. The key needs "
                 "to be hashed before being used by the HMAC algorithm.") ==
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
  // An empty key (a worker started without a token) still yields a MAC, which the server refuses.
  CHECK(hmac_hex("", "") == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");

  // Constant-time comparison still compares: a difference in the first or the last byte counts.
  Digest a = hmac_sha256("k", "m", 1), b = a;
  CHECK(constant_time_equal(a.data(), b.data(), a.size()));
  b[0] ^= 1;
  CHECK(!constant_time_equal(a.data(), b.data(), a.size()));
  b = a;
  b[31] ^= 0x80;
  CHECK(!constant_time_equal(a.data(), b.data(), a.size()));

  // Tokens: 32 random bytes as 64 lowercase hex digits, different at every call; nonces likewise.
  const std::string t1 = make_job_token(), t2 = make_job_token();
  CHECK(t1.size() == 64);
  CHECK(t2.size() == 64);
  CHECK(t1.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(t1 != t2);
  uint8_t n1[32] = {}, n2[32] = {};
  random_bytes(n1, sizeof n1);
  random_bytes(n2, sizeof n2);
  CHECK(std::memcmp(n1, n2, sizeof n1) != 0);
}

TEST_CASE("the control channel refuses what it must and keeps serving", "[control][robustness]") {
  Fixture f;
  Coordinator& c = *f.coordinator;
  const uint16_t port = c.port();
  const std::string token = c.token();

  // A real worker that keeps going through everything below.
  std::atomic<bool> done{false}, worker_failed{false};
  HelloInfo me;
  me.rank = 0;
  me.world = 1;
  ControlClient worker("127.0.0.1", port, token, me, 10, [](FrameType, ByteReader&) {});
  std::thread heartbeats([&] {
    for (int64_t step = 0; !done; ++step) {
      ByteWriter w;
      w.i64(step).f64(1.0);
      try {
        worker.send(FrameType::heartbeat, w.bytes());
      } catch (const Error&) {
        worker_failed = true;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });

  SECTION("a wrong token") {
    HelloInfo h;
    REQUIRE_THROWS_WITH(ControlClient("127.0.0.1", port, "not-the-token", h, 10, nullptr),
                        Catch::Contains("refused this worker: authentication failed (wrong job token)"));
    CHECK(f.logged("refused 127.0.0.1"));
    CHECK(!f.logged("not-the-token"));  // tokens are never logged
    CHECK(!f.logged(token));
  }
  SECTION("a wrong protocol version") {
    RawSocket s(port);
    CHECK(handshake(s, token, 99) == static_cast<uint16_t>(FrameType::reject));
    CHECK(s.closed_by_server());
    CHECK(f.logged("protocol version 99"));
  }
  SECTION("no token: frames before authentication") {
    RawSocket s(port);
    uint16_t type;
    std::vector<uint8_t> challenge;
    REQUIRE(s.read_frame(type, challenge));
    ByteWriter w;
    w.i64(1).f64(1.0);
    s.send_frame(static_cast<uint16_t>(FrameType::heartbeat), w.bytes());
    CHECK(s.closed_by_server());
    CHECK(f.logged("heartbeat frame before authentication"));
  }
  SECTION("a 4 GiB frame, before and after authentication") {
    {
      RawSocket s(port);
      s.send_frame(static_cast<uint16_t>(FrameType::hello), {}, uint64_t{4} << 30);
      CHECK(s.closed_by_server());
    }
    RawSocket s(port);
    REQUIRE(handshake(s, token) == static_cast<uint16_t>(FrameType::welcome));
    s.send_frame(static_cast<uint16_t>(FrameType::checkpoint_slice), {}, uint64_t{4} << 30);
    CHECK(s.closed_by_server());
    CHECK(f.logged("checkpoint_slice frame of 4294967296 bytes exceeds the bound"));
  }
  SECTION("10,000 random or truncated frames") {
    Philox rng(5, RandomPurpose::synth, 9);
    const uint64_t refused_before = c.refused_connections();
    for (int i = 0; i < 10000; ++i) {
      RawSocket s(port);
      const int kind = static_cast<int>(rng.below(4));
      std::vector<uint8_t> bytes(static_cast<size_t>(rng.below(48)));
      for (auto& b : bytes) b = static_cast<uint8_t>(rng.below(256));
      if (kind == 0) {
        s.send(bytes.data(), bytes.size());  // noise
      } else if (kind == 1) {                // a plausible header, then less payload than it claims
        s.send_frame(static_cast<uint16_t>(rng.below(50)), bytes, bytes.size() + 1 + rng.below(1000));
      } else if (kind == 2) {  // a hello with a garbled body
        s.send_frame(static_cast<uint16_t>(FrameType::hello), bytes);
      } else {  // authenticated, then garbage frames of every type
        if (handshake(s, token) == static_cast<uint16_t>(FrameType::welcome))
          s.send_frame(static_cast<uint16_t>(rng.below(45)), bytes);
      }
    }
    // Every refusal is counted; the garbled-hello and garbage-frame kinds all violate the protocol.
    CHECK(c.refused_connections() - refused_before >= 2500);
  }

  // Whatever happened above, the worker is still registered, heartbeating, and can checkpoint.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(!worker_failed);
  auto workers = c.workers();
  REQUIRE(workers.size() == 1);
  CHECK(workers[0].pid == 0);
  CHECK(workers[0].heartbeat_age_s < 1.0);
  CHECK(worker.connected());
  send_small_checkpoint(worker, 7);
  CHECK(c.wait_checkpoint(7, 30));
  CHECK(c.last_checkpoint().step == 7);
  CHECK(std::filesystem::exists(f.dir.file("ckpt/" + CheckpointStore::file_name(7))));
  done = true;
  heartbeats.join();
}
