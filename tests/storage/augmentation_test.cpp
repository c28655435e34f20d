// Image augmentation (storage/reader/Augmentation): every draw is keyed by (seed, step, global
// sample index), so augmenting a batch whole or in rank slices gives the same bits; each
// transform does what it says (mirror, shift with zero fill, rotation and zoom about the centre
// with bilinear sampling, noise of the asked spread); and a geometric augmentation of non-image
// data or a bad value is refused naming the config key.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

#include "models/core/ConfigNode.h"
#include "models/core/Error.h"
#include "storage/reader/Augmentation.h"
#include "trainer/TrainConfig.h"

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

// One h x w plane per row: a Gaussian blob of spread `sigma` at the centre.
std::vector<float> blobs(int64_t rows, int64_t h, int64_t w, double sigma) {
  std::vector<float> v(static_cast<size_t>(rows * h * w));
  const double cx = 0.5 * static_cast<double>(w - 1), cy = 0.5 * static_cast<double>(h - 1);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const double d2 = (x - cx) * (x - cx) + (y - cy) * (y - cy);
        v[static_cast<size_t>((r * h + y) * w + x)] = static_cast<float>(std::exp(-d2 / (2 * sigma * sigma)));
      }
  return v;
}

// Where source pixel (sx, sy) lands under map m (the inverse of output -> source).
void forward(const AffineMap& m, double sx, double sy, double& x, double& y) {
  const double det = m.xx * m.yy - m.xy * m.yx, u = sx - m.x0, v = sy - m.y0;
  x = (m.yy * u - m.xy * v) / det;
  y = (-m.yx * u + m.xx * v) / det;
}

// The rotation (degrees, counter-clockwise on screen) and zoom of a map without a mirror.
double map_degrees(const AffineMap& m) { return std::atan2(m.yx, m.yy) * 180.0 / 3.14159265358979323846; }
double map_zoom(const AffineMap& m) { return 1.0 / std::sqrt(std::fabs(m.xx * m.yy - m.xy * m.yx)); }

// The bad-input message of reading `augment` as the [data.augment] table of a run config.
std::string config_error(const std::string& augment) {
  try {
    ConfigNode root = ConfigNode::parse_string("[data]\ntrain = \"x.h5\"\n[data.augment]\n" + augment, "aug.toml");
    read_train_config(root, "aug.toml");
  } catch (const Error& e) {
    CHECK(e.exit_code() == 2);
    return e.what();
  }
  return "";
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

TEST_CASE("rotation and scaling depend on the global sample index, not on how the batch is split",
          "[storage][augment]") {
  AugmentOptions o;
  o.crop_padding = 1;
  o.flip = true;
  o.translate = 0.1;
  o.rotate = 30;
  o.scale = 0.2;
  o.noise_std = 0.05;
  Augmentation a(o, Shape{3, 9, 11}, 23);
  const int64_t row = 3 * 9 * 11;
  std::vector<float> whole = numbered(10, 3, 9, 11), parts = whole, other_step = whole;
  a.apply(whole.data(), 10, 4, 40);
  a.apply(parts.data(), 4, 4, 40);            // "rank 0": global rows 40..43
  a.apply(parts.data() + 4 * row, 6, 4, 44);  // "rank 1": global rows 44..49
  CHECK(whole == parts);
  a.apply(other_step.data(), 10, 5, 40);
  CHECK(whole != other_step);

  // The draws are a function of (seed, step, sample) alone: a second instance agrees.
  Augmentation b(o, Shape{3, 9, 11}, 23);
  const AffineMap ma = a.geometry(4, 45), mb = b.geometry(4, 45);
  CHECK(ma.xx == mb.xx);
  CHECK(ma.xy == mb.xy);
  CHECK(ma.x0 == mb.x0);
  CHECK(ma.y0 == mb.y0);
}

TEST_CASE("rotate = 0 and scale = 0 leave the image and the other transforms unchanged", "[storage][augment]") {
  AugmentOptions o;
  o.rotate = 0.0;
  o.scale = 0.0;
  CHECK(!o.enabled());
  Augmentation a(o, Shape{2, 5, 6}, 7);
  const std::vector<float> before = numbered(4, 2, 5, 6);
  std::vector<float> x = before;
  a.apply(x.data(), 4, 3, 0);
  CHECK(x == before);

  // Whole-pixel shifts and flips: the composed map, read at the nearest pixel, is what they do,
  // and a vanishing rotation (the bilinear path) reproduces them.
  o.crop_padding = 2;
  o.flip = true;
  o.translate = 0.2;
  const int64_t rows = 16, h = 7, w = 8;
  Augmentation exact(o, Shape{2, h, w}, 5);
  o.rotate = 1e-9;
  Augmentation tiny(o, Shape{2, h, w}, 5);
  std::vector<float> e = numbered(rows, 2, h, w), t = e;
  const std::vector<float> src = e;
  exact.apply(e.data(), rows, 8, 32);
  tiny.apply(t.data(), rows, 8, 32);
  for (int64_t r = 0; r < rows; ++r) {
    const AffineMap m = exact.geometry(8, 32 + r);
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x0 = 0; x0 < w; ++x0) {
          const auto sx = static_cast<int64_t>(std::lround(m.xx * x0 + m.xy * y + m.x0));
          const auto sy = static_cast<int64_t>(std::lround(m.yx * x0 + m.yy * y + m.y0));
          const size_t i = static_cast<size_t>(((r * 2 + c) * h + y) * w + x0);
          const float expect =
              sx >= 0 && sx < w && sy >= 0 && sy < h ? src[static_cast<size_t>(((r * 2 + c) * h + sy) * w + sx)] : 0.0f;
          CHECK(e[i] == expect);
          CHECK(t[i] == Approx(expect).margin(1e-3));
        }
  }
}

TEST_CASE("the affine map turns counter-clockwise and zooms about the centre", "[storage][augment]") {
  // 90 degrees on a 5 x 5 image: output (x, y) reads source (4 - y, x), so the pixel right of
  // the centre moves above it.
  const AffineMap m = augment_affine_map(5, 5, 0, 0, false, 90.0, 1.0);
  for (int64_t y = 0; y < 5; ++y)
    for (int64_t x = 0; x < 5; ++x) {
      CHECK(m.xx * x + m.xy * y + m.x0 == Approx(4 - y).margin(1e-9));
      CHECK(m.yx * x + m.yy * y + m.y0 == Approx(x).margin(1e-9));
    }
  // Zoom 2 on a 7 x 9 image (centre (4, 3)): output (8, 3) reads source (6, 3); (4, 1) reads (4, 2).
  const AffineMap z = augment_affine_map(7, 9, 0, 0, false, 0.0, 2.0);
  CHECK(z.xx * 8 + z.xy * 3 + z.x0 == Approx(6.0));
  CHECK(z.yx * 8 + z.yy * 3 + z.y0 == Approx(3.0));
  CHECK(z.xx * 4 + z.xy * 1 + z.x0 == Approx(4.0));
  CHECK(z.yx * 4 + z.yy * 1 + z.y0 == Approx(2.0));
  // Shift, then mirror, then rotate: -90 degrees of the mirrored, shifted image.
  const AffineMap s = augment_affine_map(5, 5, 1, -1, true, -90.0, 1.0);
  // Output (2, 1), just above the centre, is before the clockwise turn the pixel left of the
  // centre (1, 2); mirrored that is (3, 2), and shifted by (1, -1) it is source (4, 1).
  CHECK(s.xx * 2 + s.xy * 1 + s.x0 == Approx(4.0));
  CHECK(s.yx * 2 + s.yy * 1 + s.y0 == Approx(1.0));
}

TEST_CASE("random rotation moves a bright pixel along the drawn angle", "[storage][augment]") {
  AugmentOptions o;
  o.rotate = 120;
  o.scale = 0.2;
  const int64_t rows = 200, n = 15;
  Augmentation a(o, Shape{1, n, n}, 11);
  std::vector<float> x(static_cast<size_t>(rows * n * n), 0.0f);
  for (int64_t r = 0; r < rows; ++r) x[static_cast<size_t>((r * n + 7) * n + 11)] = 1.0f;  // right of centre
  a.apply(x.data(), rows, 2, 1000);
  double lo = 0, hi = 0;
  int near_quarter_turn = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const AffineMap m = a.geometry(2, 1000 + r);
    const double deg = map_degrees(m), zoom = map_zoom(m);
    CHECK(std::fabs(deg) <= 120.0);
    CHECK(zoom >= 0.8 - 1e-9);
    CHECK(zoom <= 1.2 + 1e-9);
    lo = std::min(lo, deg);
    hi = std::max(hi, deg);
    double ex, ey;
    forward(m, 11.0, 7.0, ex, ey);
    // At distance 4 zoom from the centre, along the angle (counter-clockwise, rows grow downward).
    const double rad = deg * 3.14159265358979323846 / 180.0;
    CHECK(ex == Approx(7.0 + 4.0 * zoom * std::cos(rad)).margin(1e-9));
    CHECK(ey == Approx(7.0 - 4.0 * zoom * std::sin(rad)).margin(1e-9));
    const float* out = x.data() + r * n * n;
    const auto peak = std::max_element(out, out + n * n) - out;
    CHECK(std::fabs(static_cast<double>(peak % n) - ex) < 1.5);  // the spot spreads over <= 4 pixels
    CHECK(std::fabs(static_cast<double>(peak / n) - ey) < 1.5);
    if (std::fabs(deg - 90.0) < 10.0) {  // about a quarter turn: the pixel is above the centre
      ++near_quarter_turn;
      CHECK(std::abs(peak % n - 7) <= 2);
      CHECK(peak / n <= 5);
    }
  }
  CHECK(lo < -100.0);  // the angles cover [-120, 120]
  CHECK(hi > 100.0);
  CHECK(near_quarter_turn > 0);
}

TEST_CASE("random scaling shrinks and grows a centred square", "[storage][augment]") {
  AugmentOptions o;
  o.scale = 0.5;
  const int64_t rows = 64, n = 33, half = 5;  // an 11 x 11 square of ones about the centre 16
  Augmentation a(o, Shape{1, n, n}, 13);
  std::vector<float> x(static_cast<size_t>(rows * n * n), 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t y = 16 - half; y <= 16 + half; ++y)
      for (int64_t c = 16 - half; c <= 16 + half; ++c) x[static_cast<size_t>((r * n + y) * n + c)] = 1.0f;
  a.apply(x.data(), rows, 0, 0);
  int shrunk = 0, grown = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const AffineMap m = a.geometry(0, r);
    const double zoom = map_zoom(m);
    CHECK(map_degrees(m) == Approx(0.0).margin(1e-12));
    CHECK(zoom >= 0.5);
    CHECK(zoom <= 1.5);
    // Output offset d from the centre reads source offset d / zoom, where the bilinear image of
    // the square is 1 up to 5, falls linearly to 0 at 6 and is the product of that along x and y.
    auto profile = [&](int64_t d) {
      const double t = std::fabs(static_cast<double>(d)) / zoom;
      return t <= half ? 1.0 : t >= half + 1 ? 0.0 : half + 1 - t;
    };
    const float* out = x.data() + r * n * n;
    double sum = 0;
    for (int64_t y = 0; y < n; ++y)
      for (int64_t c = 0; c < n; ++c) {
        CHECK(out[y * n + c] == Approx(profile(c - 16) * profile(y - 16)).margin(1e-5));
        sum += out[y * n + c];
      }
    CHECK(sum == Approx(121.0 * zoom * zoom).epsilon(0.25));  // the area goes with the square of the zoom
    const bool corner_in = profile(half + 1) > 0.0, edge_in = profile(half) == 1.0;
    shrunk += zoom < 0.8 && !edge_in;  // the square's edge moved inwards
    grown += zoom > 1.2 && corner_in;  // pixels outside the square turned on
  }
  CHECK(shrunk > 5);
  CHECK(grown > 5);
}

TEST_CASE("bilinear sampling keeps each channel of a constant image constant away from the borders",
          "[storage][augment]") {
  AugmentOptions o;
  o.rotate = 45;
  o.scale = 0.3;
  o.translate = 0.1;
  const int64_t rows = 20, c = 3, h = 12, w = 16;
  Augmentation a(o, Shape{c, h, w}, 19);
  std::vector<float> x(static_cast<size_t>(rows * c * h * w));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < c; ++k) std::fill_n(x.begin() + ((r * c + k) * h * w), h * w, 2.5f + static_cast<float>(k));
  a.apply(x.data(), rows, 1, 7);
  int inside = 0, outside = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const AffineMap m = a.geometry(1, 7 + r);
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x0 = 0; x0 < w; ++x0) {
        const double sx = m.xx * x0 + m.xy * y + m.x0, sy = m.yx * x0 + m.yy * y + m.y0;
        const bool in = sx >= 0 && sx <= w - 1 && sy >= 0 && sy <= h - 1;
        const bool out = sx <= -1 || sx >= w || sy <= -1 || sy >= h;
        for (int64_t k = 0; k < c; ++k) {
          const float v = x[static_cast<size_t>(((r * c + k) * h + y) * w + x0)];
          if (in) CHECK(v == Approx(2.5 + k).epsilon(1e-5));
          if (out) CHECK(v == 0.0f);
          if (!in && !out) CHECK((v >= 0.0f && v <= 2.5f + k + 1e-5f));  // fading to the zero fill
        }
        inside += in;
        outside += out;
      }
  }
  CHECK(inside > rows * h * w / 2);
  CHECK(outside > 0);
}

TEST_CASE("rotation keeps the mass and energy of a centred blob and zoom scales them with the area",
          "[storage][augment]") {
  const int64_t rows = 32, n = 32;
  const std::vector<float> before = blobs(1, n, n, 3.0);
  double sum0 = 0, energy0 = 0;
  for (float v : before) {
    sum0 += v;
    energy0 += static_cast<double>(v) * v;
  }
  for (double scale : {0.0, 0.4}) {
    INFO("scale " << scale);
    AugmentOptions o;
    o.rotate = 179;
    o.scale = scale;
    Augmentation a(o, Shape{1, n, n}, 29);
    std::vector<float> x = blobs(rows, n, n, 3.0);
    a.apply(x.data(), rows, 6, 0);
    for (int64_t r = 0; r < rows; ++r) {
      const double zoom = map_zoom(a.geometry(6, r));
      double sum = 0, energy = 0;
      for (int64_t i = 0; i < n * n; ++i) {
        const double v = x[static_cast<size_t>(r * n * n + i)];
        sum += v;
        energy += v * v;
      }
      CHECK(sum == Approx(sum0 * zoom * zoom).epsilon(0.02));
      CHECK(energy <= energy0 * zoom * zoom * 1.01);  // interpolation only smooths
      CHECK(energy == Approx(energy0 * zoom * zoom).epsilon(0.1));
    }
  }
}

TEST_CASE("bad rotate and scale values are refused naming the key", "[storage][augment]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto refused = [](const AugmentOptions& o, const std::string& key) {
    try {
      Augmentation a(o, Shape{1, 4, 4}, 1);
      FAIL("expected an error for " << key);
    } catch (const Error& e) {
      CHECK(e.exit_code() == 2);
      CHECK_THAT(e.what(), Catch::Contains(key));
    }
  };
  for (double v : {-1.0, 180.0, 200.0, nan}) {
    INFO("rotate " << v);
    AugmentOptions o;
    o.rotate = v;
    refused(o, "data.augment.rotate");
  }
  for (double v : {-0.1, 1.0, 1.5, nan}) {
    INFO("scale " << v);
    AugmentOptions o;
    o.scale = v;
    refused(o, "data.augment.scale");
  }
  AugmentOptions seq;
  seq.rotate = 10;
  try {
    Augmentation a(seq, Shape{20, 1}, 1);
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.exit_code() == 2);
    CHECK_THAT(e.what(), Catch::Contains("data.augment") && Catch::Contains("rotate") && Catch::Contains("[20, 1]"));
  }

  // The run config names file, line and dotted key.
  CHECK_THAT(config_error("rotate = 180.0"),
             Catch::Contains("aug.toml:") && Catch::Contains("'data.augment.rotate'") && Catch::Contains("[0, 180)"));
  CHECK_THAT(config_error("rotate = -5.0"), Catch::Contains("'data.augment.rotate'"));
  CHECK_THAT(config_error("rotate = nan"), Catch::Contains("'data.augment.rotate'"));
  CHECK_THAT(config_error("scale = 1.0"), Catch::Contains("'data.augment.scale'") && Catch::Contains("[0, 1)"));
  CHECK_THAT(config_error("scale = -0.25"), Catch::Contains("'data.augment.scale'"));
  CHECK_THAT(config_error("scale = nan"), Catch::Contains("'data.augment.scale'"));
  CHECK_THAT(config_error("rotate = \"ten\""), Catch::Contains("'data.augment.rotate'"));
  ConfigNode ok =
      ConfigNode::parse_string("[data]\ntrain = \"x.h5\"\n[data.augment]\nrotate = 15\nscale = 0.1", "ok.toml");
  const TrainConfig c = read_train_config(ok, "ok.toml");
  CHECK(c.data.augment.rotate == 15.0);
  CHECK(c.data.augment.scale == 0.1);
  CHECK(c.data.augment.affine());
}
