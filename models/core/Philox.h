// Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11): a draw is a pure function
// of (key, counter), so the dropout mask, augmentation or noise of a sample depends only on
// (seed, step, global sample index, purpose) and never on which rank or thread computes it.
// Header-only and host/device so the CPU and CUDA backends produce the same bits.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define DPT_HD __host__ __device__ __forceinline__
#else
#define DPT_HD inline
#endif

namespace dptrain {

struct Philox4x32 {
  uint32_t v[4];
};

DPT_HD void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// Ten rounds of Philox4x32 on counter c with key (k0, k1).
DPT_HD Philox4x32 philox4x32(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(0xD2511F53u, c0, hi0, lo0);
    philox_mulhilo(0xCD9E8D57u, c2, hi1, lo1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// A uniform float in (0, 1] from 32 random bits (24 bits of mantissa; never 0, so log() is safe).
DPT_HD float uniform_from_bits(uint32_t bits) { return (static_cast<float>(bits >> 8) + 1.0f) * (1.0f / 16777216.0f); }

// What a stream of draws is for; mixed into the key so two purposes never share draws.
enum class RandomPurpose : uint32_t {
  init = 1,
  dropout = 2,
  augment = 3,
  noise = 4,
  permutation = 5,
  synth = 6,
  split = 7,
  adversarial = 8,
};

// Keys a stream: the run's seed and a purpose (plus an id, such as a layer's index).
struct RandomKey {
  uint32_t k0, k1;
  DPT_HD static RandomKey make(uint64_t seed, RandomPurpose purpose, uint32_t id) {
    uint32_t lo = static_cast<uint32_t>(seed), hi = static_cast<uint32_t>(seed >> 32);
    return {lo ^ (static_cast<uint32_t>(purpose) * 0x85EBCA6Bu), hi ^ (id * 0xC2B2AE35u + 0x27D4EB2Fu)};
  }
};

// The counter block that holds draws 4b .. 4b + 3 for sample `sample` at `step` of stream `key`
// (a loop over consecutive draws computes each block once).
DPT_HD Philox4x32 philox_block(RandomKey key, uint64_t step, uint64_t sample, uint64_t block) {
  return philox4x32(static_cast<uint32_t>(block), static_cast<uint32_t>(sample), static_cast<uint32_t>(step),
                    static_cast<uint32_t>(step >> 32) ^ (static_cast<uint32_t>(sample >> 32) * 0x9E3779B9u) ^
                        static_cast<uint32_t>(block >> 32),
                    key.k0, key.k1);
}

// Uniform (0,1] draw number `index` for sample `sample` at `step` of stream `key`.
DPT_HD float philox_uniform(RandomKey key, uint64_t step, uint64_t sample, uint64_t index) {
  return uniform_from_bits(philox_block(key, step, sample, index >> 2).v[index & 3]);
}

// Standard normal draw (Box-Muller on draws 2i and 2i+1 of the same counter block).
DPT_HD float philox_normal(RandomKey key, uint64_t step, uint64_t sample, uint64_t index) {
  float u1 = philox_uniform(key, step, sample, 2 * index);
  float u2 = philox_uniform(key, step, sample, 2 * index + 1);
  return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
}

// A sequential host-side generator over one Philox stream, for synthesis and permutations.
class Philox {
 public:
  Philox(uint64_t seed, RandomPurpose purpose, uint32_t id = 0, uint64_t stream = 0)
      : key_(RandomKey::make(seed, purpose, id)), stream_(stream) {}
  float uniform() { return philox_uniform(key_, stream_, 0, next_++); }  // (0, 1]
  float normal() { return philox_normal(key_, stream_, 1, next_++); }
  double uniform_double() { return (static_cast<double>(bits()) + 0.5) * (1.0 / 18446744073709551616.0); }
  uint64_t bits() {
    uint64_t i = next_++;
    Philox4x32 r = philox4x32(static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32), static_cast<uint32_t>(stream_),
                              static_cast<uint32_t>(stream_ >> 32) ^ 0xA5A5A5A5u, key_.k0, key_.k1);
    return (static_cast<uint64_t>(r.v[0]) << 32) | r.v[1];
  }
  // Uniform integer in [0, n).
  uint64_t below(uint64_t n) { return n ? static_cast<uint64_t>(uniform_double() * static_cast<double>(n)) % n : 0; }

 private:
  RandomKey key_;
  uint64_t stream_;
  uint64_t next_ = 0;
};

}  // namespace dptrain
