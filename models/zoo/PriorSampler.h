// Generates new samples from a trained VAE: z ~ N(0, I) fed through the layers after its
// gaussian_sample layer (the decoder), with a sigmoid when it was trained with bce on logits, so
// the results are pixel intensities in [0, 1] ready for an image grid.
#pragma once

#include <cstdint>
#include <vector>

#include "models/Model.h"
#include "models/losses/Loss.h"

namespace dptrain {

class PriorSampler {
 public:
  // Finds the gaussian_sample layer among the top-level layers of `model`; usable() is false
  // when there is none.
  PriorSampler(Model& model, LossKind loss);
  bool usable() const { return latent_ > 0; }
  // `count` samples of model.output_shape() each, drawn from stream `seed`, into `out` (host).
  void sample(int64_t count, uint64_t seed, std::vector<float>& out);

 private:
  Model& model_;
  LossKind loss_;
  size_t first_ = 0;  // index of the first decoder layer
  int64_t latent_ = 0;
};

}  // namespace dptrain
