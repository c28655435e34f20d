#include "storage/image/ScatterPlot.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "models/core/Error.h"
#include "storage/image/PngWriter.h"

namespace dptrain {

void write_scatter_png(const std::string& path, const std::vector<ScatterSeries>& series, int64_t size) {
  if (size < 16 || size > 8192) fail_input("scatter plot " + path + ": size must be in [16, 8192]");
  float lo_x = std::numeric_limits<float>::max(), lo_y = lo_x, hi_x = -lo_x, hi_y = -lo_x;
  for (const auto& s : series)
    for (int64_t i = 0; i < s.count; ++i) {
      const float x = s.xy[2 * i], y = s.xy[2 * i + 1];
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      lo_x = std::min(lo_x, x), hi_x = std::max(hi_x, x);
      lo_y = std::min(lo_y, y), hi_y = std::max(hi_y, y);
    }
  if (lo_x > hi_x) lo_x = lo_y = -1.0f, hi_x = hi_y = 1.0f;  // nothing finite to draw
  // One scale for both axes (circles stay round), 5 % margin on each side.
  const float cx = 0.5f * (lo_x + hi_x), cy = 0.5f * (lo_y + hi_y);
  const float half = 0.55f * std::max({hi_x - lo_x, hi_y - lo_y, 1e-6f});
  const float scale = static_cast<float>(size - 1) / (2.0f * half);
  std::vector<uint8_t> rgb(static_cast<size_t>(size * size * 3), 255);
  auto put = [&](int64_t px, int64_t py, const uint8_t* c) {
    if (px < 0 || py < 0 || px >= size || py >= size) return;
    uint8_t* p = &rgb[static_cast<size_t>((py * size + px) * 3)];
    p[0] = c[0], p[1] = c[1], p[2] = c[2];
  };
  auto to_px = [&](float x) { return static_cast<int64_t>(std::lround((x - cx) * scale + 0.5f * (size - 1))); };
  auto to_py = [&](float y) { return static_cast<int64_t>(std::lround((cy - y) * scale + 0.5f * (size - 1))); };
  const uint8_t axis[3] = {225, 225, 225};
  const int64_t ax = to_px(0.0f), ay = to_py(0.0f);
  for (int64_t i = 0; i < size; ++i) put(ax, i, axis), put(i, ay, axis);
  for (const auto& s : series)
    for (int64_t i = 0; i < s.count; ++i) {
      const float x = s.xy[2 * i], y = s.xy[2 * i + 1];
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      const int64_t px = to_px(x), py = to_py(y);
      for (int dy = -s.radius; dy <= s.radius; ++dy)
        for (int dx = -s.radius; dx <= s.radius; ++dx)
          if (dx * dx + dy * dy <= s.radius * s.radius) put(px + dx, py + dy, s.rgb);
    }
  PngWriter::write(path, size, size, 3, rgb.data());
}

}  // namespace dptrain
