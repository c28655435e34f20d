// Data augmentation for image batches, applied by the training reader (ReaderOptions::transform)
// on its prefetch thread: random crop after zero padding, horizontal flip, small translation and
// additive Gaussian noise. Every draw comes from Philox keyed by (seed, augment) at counter
// (global step, global sample index), so a sample is augmented the same way whichever rank reads
// it and however many ranks there are (docs/design.md rule 3), and a resumed run repeats it exactly.
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
  double noise_std = 0.0;    // add N(0, noise_std^2) to every value
  bool enabled() const { return crop_padding > 0 || flip || translate > 0.0 || noise_std > 0.0; }
  bool geometric() const { return crop_padding > 0 || flip || translate > 0.0; }
};

class Augmentation {
 public:
  // `sample` is the shape of one row; crop, flip and translate need [C, H, W].
  Augmentation(const AugmentOptions& options, const Shape& sample, uint64_t seed);
  // Augments `rows` rows of batch `step` in place; row r is global sample row0 + r of that step.
  // Allocates nothing after construction (it runs inside the reader's steady state).
  void apply(float* x, int64_t rows, int64_t step, int64_t row0);

 private:
  void augment_row(float* x, uint64_t step, uint64_t sample);

  AugmentOptions o_;
  int64_t channels_ = 1, height_ = 1, width_ = 1, row_size_ = 0;
  int64_t max_dx_ = 0, max_dy_ = 0;  // translation bounds in pixels
  RandomKey key_;
  std::vector<float> scratch_;  // one row
};

}  // namespace dptrain
