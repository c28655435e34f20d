// Image augmentation (storage/reader/Augmentation): every draw is keyed by (seed, step, global
// sample index), so augmenting a batch whole or in rank slices gives the same bits; each
// transform does what it says (mirror, shift with zero fill, noise of the asked spread); and a
// geometric augmentation of non-image data is refused naming the config table.
#include <catch2/catch.hpp>

#include <cmath>

#include "models/core/Error.h"
#include "storage/reader/Augmentation.h"

using namespace dptrain;

namespace {

// Row r: pixel (c, y, x) = 1000 r + 100 c + 10 y + x + 1 (distinct and non-zero).
std::vector<float> numbered(int64_t rows, int64_t c, int64_t h, int64_t w) {
  std::vector<float> v(static_cast<size_t>(rows * c * h * w));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < c; ++k)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x)
          v[static_cast<size_t>(((r * c + k) * h + y) * w + x)] = 1000.0f * r + 100.0f * k + 10.0f * y + x + 1;
  return v;
}

}  // namespace

TEST_CASE("augmentation depends on the global sample index, not on how the batch is split", "[storage][augment]") {
  AugmentOptions o;
  o.crop_padding = 2;
  o.flip = true;
  o.translate = 0.2;
  o.noise_std = 0.1;
  Augmentation a(o, Shape{2, 6, 6}, 17);
  std::vector<float> whole = numbered(8, 2, 6, 6), parts = whole, other_step = whole;
  a.apply(whole.data(), 8, 5, 16);
  a.apply(parts.data(), 3, 5, 16);           // "rank 0": global rows 16..18
  a.apply(parts.data() + 3 * 72, 5, 5, 19);  // "rank 1": global rows 19..23
  CHECK(whole == parts);
  a.apply(other_step.data(), 8, 6, 16);
  CHECK(whole != other_step);
}

TEST_CASE("horizontal flip mirrors about half of the images and leaves the rest", "[storage][augment]") {
  AugmentOptions o;
  o.flip = true;
  const int64_t rows = 64, h = 3, w = 4;
  Augmentation a(o, Shape{1, h, w}, 1);
  std::vector<float> before = numbered(rows, 1, h, w), x = before;
  a.apply(x.data(), rows, 0, 0);
  int flipped = 0;
  for (int64_t r = 0; r < rows; ++r) {
    bool same = true, mirrored = true;
    for (int64_t y = 0; y < h; ++y)
      for (int64_t c = 0; c < w; ++c) {
        float v = x[static_cast<size_t>((r * h + y) * w + c)];
        same = same && v == before[static_cast<size_t>((r * h + y) * w + c)];
        mirrored = mirrored && v == before[static_cast<size_t>((r * h + y) * w + (w - 1 - c))];
      }
    CHECK((same || mirrored));
    flipped += mirrored;
  }
  CHECK(flipped > 16);
  CHECK(flipped < 48);
}

TEST_CASE("random crop with padding shifts by at most the padding, filling with zeros", "[storage][augment]") {
  AugmentOptions o;
  o.crop_padding = 2;
  const int64_t rows = 40, h = 7, w = 7;
  Augmentation a(o, Shape{1, h, w}, 3);
  std::vector<float> before = numbered(rows, 1, h, w), x = before;
  a.apply(x.data(), rows, 9, 100);
  int shifted = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = before.data() + r * h * w;
    const float* out = x.data() + r * h * w;
    int matches = 0;
    for (int64_t dy = -2; dy <= 2; ++dy)
      for (int64_t dx = -2; dx <= 2; ++dx) {
        bool ok = true;
        for (int64_t y = 0; y < h && ok; ++y)
          for (int64_t c = 0; c < w && ok; ++c) {
            int64_t sy = y + dy, sx = c + dx;
            float expect = sy >= 0 && sy < h && sx >= 0 && sx < w ? in[sy * w + sx] : 0.0f;
            ok = out[y * w + c] == expect;
          }
        if (ok) {
          ++matches;
          shifted += dx != 0 || dy != 0;
        }
      }
    CHECK(matches == 1);
  }
  CHECK(shifted > rows / 2);  // 24 of 25 offsets move the image
}

TEST_CASE("Gaussian noise has the configured spread", "[storage][augment]") {
  AugmentOptions o;
  o.noise_std = 0.5;
  Augmentation a(o, Shape{1000}, 4);  // noise alone works on any sample shape
  std::vector<float> x(4000, 2.0f);
  a.apply(x.data(), 4, 0, 0);
  double s = 0, q = 0;
  for (float v : x) {
    s += v - 2.0;
    q += (v - 2.0) * (v - 2.0);
  }
  double mean = s / 4000, sd = std::sqrt(q / 4000 - mean * mean);
  CHECK(std::fabs(mean) < 0.03);
  CHECK(sd == Approx(0.5).epsilon(0.05));
}

TEST_CASE("geometric augmentation of non-image data is refused naming the table", "[storage][augment]") {
  AugmentOptions o;
  o.flip = true;
  try {
    Augmentation a(o, Shape{20, 1}, 1);  // a sequence [steps, features], not an image
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.exit_code() == 2);
    CHECK(std::string(e.what()).find("data.augment") != std::string::npos);
  }
}
