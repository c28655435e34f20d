// The control channel's wire format. A frame is a 16-byte header — magic "DPTC", type, reserved
// bits, payload length — then the payload. Every type has a size bound (bulk types, which carry
// checkpoint slices or predictions, a large one; all others a small one), checked before a byte
// of payload is read or allocated. Payloads are written and read with ByteWriter/ByteReader,
// little-endian, and a reader that runs past the end throws ProtocolError instead of reading on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace dptrain {

constexpr uint32_t frame_magic = 0x43545044;  // "DPTC" read little-endian
constexpr uint32_t protocol_version = 1;
constexpr size_t frame_header_bytes = 16;

enum class FrameType : uint16_t {
  challenge = 1,          // server: version, nonce
  hello = 2,              // worker: version, rank, world, pid, MAC(token, nonce), host
  welcome = 3,            // server: accepted
  reject = 4,             // server: reason; the connection closes
  heartbeat = 10,         // worker: step, samples/s
  metrics = 11,           // worker: step and all-reduced metrics (rank 0)
  goodbye = 12,           // worker: its part of the job ended cleanly; the connection closes next
  checkpoint_begin = 20,  // worker: step, its slice plan; rank 0 adds the checkpoint's metadata
  checkpoint_slice = 21,  // worker: step, group, offset, floats
  checkpoint_end = 22,    // worker: step
  checkpoint_done = 23,   // server: step, ok, path or error
  stop = 30,              // server: stop at the next step boundary, checkpoint, exit (requeue)
  schedule = 40,          // either way: schedule traffic (self-training selections, GAN state)
  store_set = 50,         // worker: key, value (rendezvous, comm/control/Rendezvous.h)
  store_get = 51,         // worker: key; answered by store_value once the key is set
  store_value = 52,       // server: key, value
  progress = 53,          // worker: collective sequence number and step (the watchdog's view)
  peers_query = 54,       // worker: asks for peers_state
  peers_state = 55,       // server: per rank: connected, sequence, step, host
};

// Whether `type` is one the protocol knows.
bool known_frame_type(uint16_t type);
// Whether `type` may carry the large size bound.
bool bulk_frame_type(FrameType type);
const char* frame_type_name(uint16_t type);

struct FrameHeader {
  uint32_t magic = frame_magic;
  uint16_t type = 0;
  uint16_t reserved = 0;
  uint64_t length = 0;
  void encode(uint8_t out[frame_header_bytes]) const;
  static FrameHeader decode(const uint8_t in[frame_header_bytes]);
};

// A malformed payload or frame; the connection that sent it is closed.
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ByteWriter {
 public:
  ByteWriter& u8(uint8_t v) { return raw(&v, 1); }
  ByteWriter& u16(uint16_t v) { return raw(&v, 2); }
  ByteWriter& u32(uint32_t v) { return raw(&v, 4); }
  ByteWriter& u64(uint64_t v) { return raw(&v, 8); }
  ByteWriter& i32(int32_t v) { return raw(&v, 4); }
  ByteWriter& i64(int64_t v) { return raw(&v, 8); }
  ByteWriter& f64(double v) { return raw(&v, 8); }
  ByteWriter& str(const std::string& s) {
    u32(static_cast<uint32_t>(s.size()));
    return raw(s.data(), s.size());
  }
  ByteWriter& raw(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    bytes_.insert(bytes_.end(), b, b + n);
    return *this;
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }
  std::vector<uint8_t> take() { return std::move(bytes_); }
  void reserve(size_t n) { bytes_.reserve(n); }

 private:
  std::vector<uint8_t> bytes_;
};

class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t bytes) : p_(data), end_(data + bytes) {}
  uint8_t u8() { return get<uint8_t>(); }
  uint16_t u16() { return get<uint16_t>(); }
  uint32_t u32() { return get<uint32_t>(); }
  uint64_t u64() { return get<uint64_t>(); }
  int32_t i32() { return get<int32_t>(); }
  int64_t i64() { return get<int64_t>(); }
  double f64() { return get<double>(); }
  std::string str(size_t max_bytes = 1 << 20) {
    uint32_t n = u32();
    if (n > max_bytes) throw ProtocolError("string of " + std::to_string(n) + " bytes exceeds its bound");
    std::string s(reinterpret_cast<const char*>(take(n)), n);
    return s;
  }
  const uint8_t* take(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) throw ProtocolError("payload shorter than its contents claim");
    const uint8_t* at = p_;
    p_ += n;
    return at;
  }
  size_t left() const { return static_cast<size_t>(end_ - p_); }
  void expect_end() const {
    if (p_ != end_) throw ProtocolError("payload longer than its contents");
  }

 private:
  template <typename T>
  T get() {
    T v;
    std::memcpy(&v, take(sizeof(T)), sizeof(T));
    return v;
  }
  const uint8_t* p_;
  const uint8_t* end_;
};

}  // namespace dptrain
