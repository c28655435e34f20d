#include "storage/hdf5/Fletcher32.h"

#include <cstring>

namespace dptrain {

void fletcher32_sums(const unsigned char* data, size_t bytes, uint32_t& sum1, uint32_t& sum2) {
  // HDF5's definition: for each word w: sum1 += w; sum2 += sum1. So over n words,
  // sum1 = sum(w_j) and sum2 = sum((n - j) * w_j). Blocks of 16 lanes x 256 steps keep the lane
  // sums within 32 bits (the same bound as HDF5's 360-word rounds); block results are folded in
  // with 64-bit arithmetic. GCC vector types, because the plain loop does not auto-vectorize.
  constexpr size_t lanes = 16, steps = 256, block = lanes * steps;
  typedef uint16_t Words __attribute__((vector_size(2 * lanes)));
  typedef uint32_t Sums __attribute__((vector_size(4 * lanes)));
  const size_t words = bytes / 2;
  uint64_t a = 0, b = 0;
  size_t j = 0;
  for (; words - j >= block; j += block) {
    Sums v1 = {}, v2 = {};
    const unsigned char* p = data + 2 * j;
    for (size_t k = 0; k < steps; ++k, p += 2 * lanes) {
      Words w;
      std::memcpy(&w, p, sizeof w);
      v1 += __builtin_convertvector((w << 8) | (w >> 8), Sums);  // big-endian words
      v2 += v1;
    }
    // Within the block, word jj = 16k + l has weight (block - jj) = 16 (steps - k) - l.
    uint64_t s = 0, weighted = 0;
    for (size_t l = 0; l < lanes; ++l) {
      s += v1[l];
      weighted += lanes * uint64_t{v2[l]} - l * uint64_t{v1[l]};
    }
    b = (b + a * block + weighted) % 65535;  // every earlier word gains `block` more weight
    a = (a + s) % 65535;
  }
  for (; j < words; ++j) {  // fewer than `block` words: no overflow in 64 bits
    a += (uint32_t{data[2 * j]} << 8) | data[2 * j + 1];
    b += a;
  }
  if (bytes % 2) {
    a += uint32_t{data[bytes - 1]} << 8;
    b += a;
  }
  sum1 = static_cast<uint32_t>(a % 65535);
  sum2 = static_cast<uint32_t>(b % 65535);
}

uint32_t hdf5_fletcher32(const unsigned char* data, size_t bytes) {
  // HDF5 folds with (x & 0xffff) + (x >> 16), which keeps a positive sum positive: each half is 0
  // only while every word so far is 0, and otherwise the residue in 1..65535.
  uint32_t s1, s2;
  fletcher32_sums(data, bytes, s1, s2);
  bool all_zero = true;
  for (size_t i = 0; i < bytes && all_zero; ++i) all_zero = data[i] == 0;
  if (all_zero) return 0;
  if (s1 == 0) s1 = 65535;
  if (s2 == 0) s2 = 65535;
  return (s2 << 16) | s1;
}

bool hdf5_fletcher32_ok(const unsigned char* data, size_t bytes) {
  uint32_t stored;
  std::memcpy(&stored, data + bytes, 4);  // HDF5 encodes it little-endian
  uint32_t s1, s2;
  fletcher32_sums(data, bytes, s1, s2);
  return (stored & 0xffffu) % 65535u == s1 && (stored >> 16) % 65535u == s2;
}

}  // namespace dptrain
