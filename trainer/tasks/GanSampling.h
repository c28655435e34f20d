// Drawing from a GAN: latent vectors from the counter-based generator keyed by (seed, step,
// global sample index, stream) — the same draws on any number of ranks (docs/design.md rule 3) — and
// the generator's samples written as a dataset file (/x) and as a picture: a grid for images, a
// scatter against the real data for 2-D points. Used at the end of training and by `dptrain sample`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/Model.h"
#include "trainer/tasks/GanConfig.h"

namespace dptrain {

// Which draws: the noise of training steps (keyed by the step) or of evaluation and sampling.
// Calibration: the draws that measure the averaged generator's batch-norm statistics.
enum class LatentStream : uint32_t { training = 0x47414E01u, evaluation = 0x47414E02u, calibration = 0x47414E03u };

// rows x latent values into out: row i is global sample row0 + i of `step` in `stream`.
void draw_latent(LatentDistribution distribution, uint64_t seed, LatentStream stream, uint64_t step, int64_t row0,
                 int64_t rows, int64_t latent, float* out);

// `count` samples of the generator (eval mode: batch norm uses its running statistics) from the
// evaluation stream of `seed`, on the host, in generator.output_shape() layout.
void generate_samples(Model& generator, const GanConfig& gan, uint64_t seed, int64_t count, std::vector<float>& out);

// Writes samples as a dataset file: /x [count, ...shape], no labels (DatasetFile and h5py read it).
void write_samples_file(const std::string& path, const std::vector<float>& samples, int64_t count, const Shape& shape);

// Writes the picture of the samples when their shape has one — a grid for [1 or 3, H, W] images
// with pixel values in [lo, hi]; a scatter (red) over `real` (grey, may be empty) for 2-D points —
// and returns what it wrote ("" when nothing applies).
std::string write_samples_picture(const std::string& path, const std::vector<float>& samples, int64_t count,
                                  const Shape& shape, const std::vector<float>& real, float lo = 0.0f, float hi = 1.0f);

}  // namespace dptrain
