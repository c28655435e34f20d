#include "storage/reader/Augmentation.h"

#include <cmath>
#include <cstring>

#include "models/core/Error.h"

namespace dptrain {

namespace {

// Draw indices within a sample's counter: the geometric draws, then noise (normal draw j uses
// uniform draws 2j and 2j + 1, so it starts far enough above them).
enum Draw : uint64_t {
  crop_x = 0,
  crop_y = 1,
  flip_draw = 2,
  shift_x = 3,
  shift_y = 4,
  rotate_draw = 5,
  scale_draw = 6,
  noise_base = 8
};

// A uniform integer in [-m, m] from a (0, 1] draw.
int64_t symmetric(float u, int64_t m) {
  int64_t v = static_cast<int64_t>(u * static_cast<float>(2 * m + 1)) - m;  // u = 1 maps to m + 1
  return v > m ? m : v;
}

constexpr double pi = 3.14159265358979323846;

// Bilinear sample of an h x w plane at (sx, sy), reading zeros outside it.
inline float bilinear(const float* src, int64_t h, int64_t w, double sx, double sy) {
  if (!(sx > -1.0 && sx < static_cast<double>(w) && sy > -1.0 && sy < static_cast<double>(h)))
    return 0.0f;  // all four neighbours outside (this also keeps the casts below in range)
  const double fx = std::floor(sx), fy = std::floor(sy);
  const int64_t x0 = static_cast<int64_t>(fx), y0 = static_cast<int64_t>(fy);
  const float ax = static_cast<float>(sx - fx), ay = static_cast<float>(sy - fy);
  auto at = [&](int64_t y, int64_t x) { return y >= 0 && y < h && x >= 0 && x < w ? src[y * w + x] : 0.0f; };
  return (1.0f - ay) * ((1.0f - ax) * at(y0, x0) + ax * at(y0, x0 + 1)) +
         ay * ((1.0f - ax) * at(y0 + 1, x0) + ax * at(y0 + 1, x0 + 1));
}

}  // namespace

AffineMap augment_affine_map(int64_t height, int64_t width, int64_t dx, int64_t dy, bool flip, double degrees,
                             double zoom) {
  // Output offset (u, v) from the centre c comes from c + R(-angle) (u, v) / zoom before the
  // rotation and zoom (R(a) turns counter-clockwise on screen: (1, 0) -> (cos a, -sin a)); the
  // mirror reads x' = 2 cx - x there, and the shift adds (dx, dy).
  const double cx = 0.5 * static_cast<double>(width - 1), cy = 0.5 * static_cast<double>(height - 1);
  const double a = degrees * (pi / 180.0), k = 1.0 / zoom, f = flip ? -1.0 : 1.0;
  const double c = std::cos(a), s = std::sin(a);
  AffineMap m;
  m.xx = f * k * c;
  m.xy = -f * k * s;
  m.x0 = cx + static_cast<double>(dx) - (m.xx * cx + m.xy * cy);
  m.yx = k * s;
  m.yy = k * c;
  m.y0 = cy + static_cast<double>(dy) - (m.yx * cx + m.yy * cy);
  return m;
}

Augmentation::Augmentation(const AugmentOptions& options, const Shape& sample, uint64_t seed)
    : o_(options), key_(RandomKey::make(seed, RandomPurpose::augment, 0)) {
  if (o_.crop_padding < 0) fail_input("data.augment.crop_padding must be >= 0");
  if (!(o_.translate >= 0.0 && o_.translate < 0.5)) fail_input("data.augment.translate must be in [0, 0.5)");
  if (!(o_.rotate >= 0.0 && o_.rotate < 180.0)) fail_input("data.augment.rotate must be in [0, 180) degrees");
  if (!(o_.scale >= 0.0 && o_.scale < 1.0)) fail_input("data.augment.scale must be in [0, 1)");
  if (!(o_.noise_std >= 0.0)) fail_input("data.augment.noise_std must be >= 0");
  row_size_ = sample.numel();
  if (o_.geometric()) {
    // Only [C, H, W] is unambiguous: a rank-2 sample may as well be a sequence [steps, features].
    if (sample.rank() != 3)
      fail_input(
          "data.augment: crop_padding, flip, translate, rotate and scale need image samples [channels, height, "
          "width]; the data has " +
          sample.str());
    channels_ = sample[0];
    height_ = sample[1];
    width_ = sample[2];
  }
  max_dx_ = static_cast<int64_t>(std::floor(o_.translate * static_cast<double>(width_)));
  max_dy_ = static_cast<int64_t>(std::floor(o_.translate * static_cast<double>(height_)));
  scratch_.resize(static_cast<size_t>(row_size_));
}

void Augmentation::apply(float* x, int64_t rows, int64_t step, int64_t row0) {
  for (int64_t r = 0; r < rows; ++r)
    augment_row(x + r * row_size_, static_cast<uint64_t>(step), static_cast<uint64_t>(row0 + r));
}

Augmentation::Draws Augmentation::draw(uint64_t step, uint64_t sample) const {
  // A crop of the padded image at offset (p + dx, p + dy) is the image shifted by (-dx, -dy).
  Draws d;
  if (o_.crop_padding > 0) {
    d.dx += symmetric(philox_uniform(key_, step, sample, crop_x), o_.crop_padding);
    d.dy += symmetric(philox_uniform(key_, step, sample, crop_y), o_.crop_padding);
  }
  if (max_dx_ > 0) d.dx += symmetric(philox_uniform(key_, step, sample, shift_x), max_dx_);
  if (max_dy_ > 0) d.dy += symmetric(philox_uniform(key_, step, sample, shift_y), max_dy_);
  d.flip = o_.flip && philox_uniform(key_, step, sample, flip_draw) <= 0.5f;
  // Uniform in (-1, 1] from a (0, 1] draw.
  auto centred = [&](uint64_t index) {
    return 2.0 * static_cast<double>(philox_uniform(key_, step, sample, index)) - 1.0;
  };
  if (o_.rotate > 0.0) d.degrees = o_.rotate * centred(rotate_draw);
  if (o_.scale > 0.0) d.zoom = 1.0 + o_.scale * centred(scale_draw);
  return d;
}

AffineMap Augmentation::geometry(int64_t step, int64_t sample) const {
  if (!o_.geometric()) return AffineMap{};
  const Draws d = draw(static_cast<uint64_t>(step), static_cast<uint64_t>(sample));
  return augment_affine_map(height_, width_, d.dx, d.dy, d.flip, d.degrees, d.zoom);
}

void Augmentation::warp(float* x, const AffineMap& m) {
  std::memcpy(scratch_.data(), x, static_cast<size_t>(row_size_) * sizeof(float));
  const int64_t plane = height_ * width_;
  for (int64_t c = 0; c < channels_; ++c) {
    const float* src = scratch_.data() + c * plane;
    float* dst = x + c * plane;
    for (int64_t y = 0; y < height_; ++y) {
      const double bx = m.xy * static_cast<double>(y) + m.x0, by = m.yy * static_cast<double>(y) + m.y0;
      for (int64_t xo = 0; xo < width_; ++xo) {
        const double xd = static_cast<double>(xo);
        dst[y * width_ + xo] = bilinear(src, height_, width_, m.xx * xd + bx, m.yx * xd + by);
      }
    }
  }
}

void Augmentation::augment_row(float* x, uint64_t step, uint64_t sample) {
  if (o_.geometric()) {
    const Draws d = draw(step, sample);
    if (o_.affine()) {
      warp(x, augment_affine_map(height_, width_, d.dx, d.dy, d.flip, d.degrees, d.zoom));
    } else if (d.dx != 0 || d.dy != 0 || d.flip) {  // whole pixels: exact copies
      std::memcpy(scratch_.data(), x, static_cast<size_t>(row_size_) * sizeof(float));
      for (int64_t c = 0; c < channels_; ++c) {
        const float* src = scratch_.data() + c * height_ * width_;
        float* dst = x + c * height_ * width_;
        for (int64_t y = 0; y < height_; ++y) {
          const int64_t sy = y + d.dy;
          for (int64_t xo = 0; xo < width_; ++xo) {
            const int64_t sx = (d.flip ? width_ - 1 - xo : xo) + d.dx;
            dst[y * width_ + xo] = sy >= 0 && sy < height_ && sx >= 0 && sx < width_ ? src[sy * width_ + sx] : 0.0f;
          }
        }
      }
    }
  }
  if (o_.noise_std > 0.0) {
    const float s = static_cast<float>(o_.noise_std);
    for (int64_t i = 0; i < row_size_; ++i)
      x[i] += s * philox_normal(key_, step, sample, noise_base + static_cast<uint64_t>(i));
  }
}

}  // namespace dptrain
