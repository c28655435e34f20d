// Synthetic datasets for examples, tests and benchmarks, deterministic per seed (counter-based
// generator): classification blobs, moons, xor, spirals; linear regression with known weights;
// 2-D Gaussian mixtures on a ring or grid (GAN evaluation); 28x28 grey "shapes" images; and
// bit-string and sine sequence tasks.
#pragma once

#include <cstdint>
#include <string>

#include "storage/dataset/DatasetFile.h"

namespace dptrain {

struct SynthOptions {
  std::string kind;
  int64_t n = 1000;
  uint64_t seed = 0;
  int64_t classes = 0;             // 0: the kind's default
  int64_t dim = 0;                 // 0: the kind's default (features, or sequence length)
  double noise = -1.0;             // < 0: the kind's default
  int64_t labeled_per_class = -1;  // >= 0: write a /labeled mask with this many labelled rows per class
};

DatasetContents synthesize(const SynthOptions& options);
// One line per kind with its defaults, for `dptrain data synth --help`.
std::string synth_kinds_help();

}  // namespace dptrain
