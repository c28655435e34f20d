// Data augmentation for image batches, applied by the training reader (ReaderOptions::transform)
// on its prefetch thread: random crop after zero padding, horizontal flip, small translation,
// random rotation and scaling, and additive Gaussian noise. Every draw comes from Philox keyed by
// (seed, augment) at counter (global step, global sample index), so a sample is augmented the same
// way whichever rank reads it and however many ranks there are (docs/design.md rule 3), and a
// resumed run repeats it exactly.
//
// Order of the geometric transforms, as applied to the image: shift (crop and translate), then
// mirror, then rotate and scale about the image centre. Without rotate and scale they move whole
// pixels (exact copies, zero fill). With either, all of them are composed into one affine map from
// each output pixel back into the original image, sampled bilinearly with zeros outside it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/core/Philox.h"
#include "models/core/Shape.h"

namespace dptrain {

// The [data.augment] table (docs/config.md).
struct AugmentOptions {
  int64_t crop_padding = 0;  // pad each side with this many zero pixels, then crop back at random
  bool flip = false;         // mirror left-right with probability 1/2
  double translate = 0.0;    // shift by up to this fraction of the width and height (zero fill)
  double rotate = 0.0;       // rotate by an angle uniform in [-rotate, rotate] degrees, in [0, 180)
  double scale = 0.0;        // zoom by a factor uniform in [1 - scale, 1 + scale], in [0, 1)
  double noise_std = 0.0;    // add N(0, noise_std^2) to every value
  bool affine() const { return rotate > 0.0 || scale > 0.0; }
  bool geometric() const { return crop_padding > 0 || flip || translate > 0.0 || affine(); }
  bool enabled() const { return geometric() || noise_std > 0.0; }
};

// Where output pixel (x, y) of a height x width image reads from in the source image:
// source x = xx * x + xy * y + x0, source y = yx * x + yy * y + y0 (pixel centres at integers).
struct AffineMap {
  double xx = 1, xy = 0, x0 = 0;
  double yx = 0, yy = 1, y0 = 0;
};

// The inverse map of: shift the image by (-dx, -dy) pixels (output (x, y) shows source
// (x + dx, y + dy)), then mirror left-right if `flip`, then rotate by `degrees` (positive is
// counter-clockwise as displayed, row 0 at the top) and zoom by `zoom` (> 1 enlarges) about the
// centre ((width - 1) / 2, (height - 1) / 2).
AffineMap augment_affine_map(int64_t height, int64_t width, int64_t dx, int64_t dy, bool flip, double degrees,
                             double zoom);

class Augmentation {
 public:
  // `sample` is the shape of one row; crop, flip, translate, rotate and scale need [C, H, W].
  Augmentation(const AugmentOptions& options, const Shape& sample, uint64_t seed);
  // Augments `rows` rows of batch `step` in place; row r is global sample row0 + r of that step.
  // Allocates nothing after construction (it runs inside the reader's steady state).
  void apply(float* x, int64_t rows, int64_t step, int64_t row0);
  // The map apply() sends global sample `sample` of batch `step` through (identity when there
  // are no geometric transforms); noise comes on top.
  AffineMap geometry(int64_t step, int64_t sample) const;

 private:
  struct Draws {
    int64_t dx = 0, dy = 0;  // shift: output (x, y) shows (x + dx, y + dy)
    bool flip = false;
    double degrees = 0.0, zoom = 1.0;
  };
  Draws draw(uint64_t step, uint64_t sample) const;
  void augment_row(float* x, uint64_t step, uint64_t sample);
  void warp(float* x, const AffineMap& m);  // bilinear resampling of every channel through m

  AugmentOptions o_;
  int64_t channels_ = 1, height_ = 1, width_ = 1, row_size_ = 0;
  int64_t max_dx_ = 0, max_dy_ = 0;  // translation bounds in pixels
  RandomKey key_;
  std::vector<float> scratch_;  // one row
};

}  // namespace dptrain
