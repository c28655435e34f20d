#include "storage/reader/Augmentation.h"

#include <cmath>
#include <cstring>

#include "models/core/Error.h"

namespace dptrain {

namespace {

// Draw indices within a sample's counter: the geometric draws, then noise (normal draw j uses
// uniform draws 2j and 2j + 1, so it starts far enough above them).
enum Draw : uint64_t { crop_x = 0, crop_y = 1, flip_draw = 2, shift_x = 3, shift_y = 4, noise_base = 8 };

// A uniform integer in [-m, m] from a (0, 1] draw.
int64_t symmetric(float u, int64_t m) {
  int64_t v = static_cast<int64_t>(u * static_cast<float>(2 * m + 1)) - m;  // u = 1 maps to m + 1
  return v > m ? m : v;
}

}  // namespace

Augmentation::Augmentation(const AugmentOptions& options, const Shape& sample, uint64_t seed)
    : o_(options), key_(RandomKey::make(seed, RandomPurpose::augment, 0)) {
  if (o_.crop_padding < 0) fail_input("data.augment.crop_padding must be >= 0");
  if (!(o_.translate >= 0.0 && o_.translate < 0.5)) fail_input("data.augment.translate must be in [0, 0.5)");
  if (!(o_.noise_std >= 0.0)) fail_input("data.augment.noise_std must be >= 0");
  row_size_ = sample.numel();
  if (o_.geometric()) {
    // Only [C, H, W] is unambiguous: a rank-2 sample may as well be a sequence [steps, features].
    if (sample.rank() != 3)
      fail_input(
          "data.augment: crop_padding, flip and translate need image samples [channels, height, width]; "
          "the data has " +
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

void Augmentation::augment_row(float* x, uint64_t step, uint64_t sample) {
  if (o_.geometric()) {
    // A crop of the padded image at offset (p + dx, p + dy) is the image shifted by (-dx, -dy).
    int64_t dx = 0, dy = 0;
    if (o_.crop_padding > 0) {
      dx += symmetric(philox_uniform(key_, step, sample, crop_x), o_.crop_padding);
      dy += symmetric(philox_uniform(key_, step, sample, crop_y), o_.crop_padding);
    }
    if (max_dx_ > 0) dx += symmetric(philox_uniform(key_, step, sample, shift_x), max_dx_);
    if (max_dy_ > 0) dy += symmetric(philox_uniform(key_, step, sample, shift_y), max_dy_);
    const bool flip = o_.flip && philox_uniform(key_, step, sample, flip_draw) <= 0.5f;
    if (dx != 0 || dy != 0 || flip) {
      std::memcpy(scratch_.data(), x, static_cast<size_t>(row_size_) * sizeof(float));
      for (int64_t c = 0; c < channels_; ++c) {
        const float* src = scratch_.data() + c * height_ * width_;
        float* dst = x + c * height_ * width_;
        for (int64_t y = 0; y < height_; ++y) {
          const int64_t sy = y + dy;
          for (int64_t xo = 0; xo < width_; ++xo) {
            const int64_t sx = (flip ? width_ - 1 - xo : xo) + dx;
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
