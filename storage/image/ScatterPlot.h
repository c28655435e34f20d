// Renders 2-D point sets into one PNG (a GAN's samples against the real data of a 2-D mixture),
// drawn by hand into an RGB buffer: a few thousand dots need no plotting library.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dptrain {

struct ScatterSeries {
  const float* xy;  // count (x, y) pairs
  int64_t count;
  uint8_t rgb[3];
  int radius;  // dot radius in pixels (0: one pixel)
};

// Draws the series in order (later ones on top) on white, square pixels, `size` pixels wide, over
// the bounding box of all points plus a margin, with the axes through 0 in light grey when they
// fall inside; written atomically with PngWriter.
void write_scatter_png(const std::string& path, const std::vector<ScatterSeries>& series, int64_t size = 512);

}  // namespace dptrain
