// A hash that is the same on every machine, build and run (FNV-1a, 64 bit): for keying random
// streams by layer path and for the config and model-layout hashes ranks compare at start-up.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dptrain {

inline uint64_t stable_hash(const void* data, size_t bytes, uint64_t h = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

inline uint64_t stable_hash(std::string_view s, uint64_t h = 0xcbf29ce484222325ull) {
  return stable_hash(s.data(), s.size(), h);
}

}  // namespace dptrain
