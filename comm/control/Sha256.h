// SHA-256 and HMAC-SHA-256 (FIPS 180-4, RFC 2104), for the control channel's challenge-response:
// a worker proves it holds the job token without ever sending it. Small and dependency-free; the
// tests check the standard test vectors.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace dptrain {

using Digest = std::array<uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t bytes);
  Digest finish();

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t used_ = 0;
  uint64_t total_ = 0;
};

Digest sha256(const void* data, size_t bytes);
Digest hmac_sha256(const std::string& key, const void* message, size_t bytes);
std::string to_hex(const uint8_t* data, size_t bytes);
// Compares in time independent of where the inputs differ.
bool constant_time_equal(const uint8_t* a, const uint8_t* b, size_t bytes);

}  // namespace dptrain
