// The cryptography of the control channel's challenge-response (docs/design.md "Coordinator"):
// HMAC-SHA256, random job tokens and nonces, and a constant-time comparison, all from OpenSSL's
// libcrypto rather than code of our own (docs/design.md rule 7 for how its failures surface).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace dptrain {

using Digest = std::array<uint8_t, 32>;

// HMAC-SHA256 (RFC 2104) of `bytes` bytes at `message`, keyed by `key`.
Digest hmac_sha256(const std::string& key, const void* message, size_t bytes);
// Fills `out` from OpenSSL's cryptographically secure generator (nonces).
void random_bytes(uint8_t* out, size_t bytes);
// A fresh random token (32 random bytes as 64 lowercase hex digits) for a job.
std::string make_job_token();
// True when the two buffers are equal; takes the same time wherever they differ.
bool constant_time_equal(const uint8_t* a, const uint8_t* b, size_t bytes);
// Lowercase hex digits of `bytes` bytes.
std::string to_hex(const uint8_t* data, size_t bytes);

}  // namespace dptrain
