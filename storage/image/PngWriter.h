// Writes 8-bit PNG images (libpng), and tiles batches of model outputs into one grid image: the
// sample grids of generative models (VAE decoders, GAN generators) that a person looks at to
// judge them. Files are written atomically, as every file dptrain writes.
#pragma once

#include <cstdint>
#include <string>

namespace dptrain {

class PngWriter {
 public:
  // Whether this build can write PNG files (libpng was found).
  static bool available();
  // Writes `pixels` (rows top to bottom, `channels` = 1 grey, 3 RGB or 4 RGBA bytes per pixel).
  static void write(const std::string& path, int64_t width, int64_t height, int channels, const uint8_t* pixels);
  // Tiles `count` float images stored [channels, height, width] each (as models produce them;
  // channels 1 or 3) into a grid `columns` wide (0: as square as possible) with `pad` pixels of
  // black between them, maps [lo, hi] to [0, 255] (clamped) and writes it with write().
  static void write_grid(const std::string& path, const float* images, int64_t count, int64_t channels, int64_t height,
                         int64_t width, int64_t columns = 0, float lo = 0.0f, float hi = 1.0f, int64_t pad = 1);
};

}  // namespace dptrain
