#include "storage/image/PngWriter.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include "models/core/Error.h"
#include "storage/AtomicFile.h"

namespace dptrain {

namespace {

constexpr size_t error_size = 256;

// libpng's error callback: keep the message, then longjmp back to write_png_file's setjmp.
void on_png_error(png_structp png, png_const_charp message) {
  std::snprintf(static_cast<char*>(png_get_error_ptr(png)), error_size, "%s", message);
  png_longjmp(png, 1);
}

void on_png_warning(png_structp, png_const_charp) {}

// All libpng calls live in this one function: libpng reports errors by longjmp to the setjmp
// here, which must not skip C++ destructors, so nothing in it owns anything. Returns false with
// libpng's message in `error` (error_size bytes) on failure.
bool write_png_file(FILE* file, int64_t width, int64_t height, int color, int channels, const uint8_t* pixels,
                    char* error) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, error, on_png_error, on_png_warning);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, info ? &info : nullptr);
    return false;
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8, color,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const size_t stride = static_cast<size_t>(width) * static_cast<size_t>(channels);
  for (int64_t y = 0; y < height; ++y) png_write_row(png, const_cast<uint8_t*>(pixels + y * stride));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

}  // namespace

bool PngWriter::available() { return true; }

void PngWriter::write(const std::string& path, int64_t width, int64_t height, int channels, const uint8_t* pixels) {
  if (width <= 0 || height <= 0 || width > (1 << 20) || height > (1 << 20))
    fail_input("PNG " + path + ": bad size " + std::to_string(width) + "x" + std::to_string(height));
  int color;
  switch (channels) {
    case 1:
      color = PNG_COLOR_TYPE_GRAY;
      break;
    case 3:
      color = PNG_COLOR_TYPE_RGB;
      break;
    case 4:
      color = PNG_COLOR_TYPE_RGBA;
      break;
    default:
      fail_input("PNG " + path + ": " + std::to_string(channels) + " channels; 1, 3 or 4 can be written");
  }
  write_atomically(path, [&](const std::string& tmp) {
    std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(tmp.c_str(), "wb"), &std::fclose);
    if (!file) fail_input("cannot create " + tmp + " (for " + path + ")");
    char error[error_size] = "out of memory";
    if (!write_png_file(file.get(), width, height, color, channels, pixels, error))
      fail_input("writing PNG " + path + " failed: " + error);
    if (std::fflush(file.get()) != 0) fail_input("writing " + path + " failed (disk full?)");
  });
}

void PngWriter::write_grid(const std::string& path, const float* images, int64_t count, int64_t channels,
                           int64_t height, int64_t width, int64_t columns, float lo, float hi, int64_t pad) {
  if (count <= 0) fail_input("PNG grid " + path + ": no images");
  if (channels != 1 && channels != 3)
    fail_input("PNG grid " + path + ": images must have 1 or 3 channels, got " + std::to_string(channels));
  if (!(hi > lo)) fail_input("PNG grid " + path + ": the value range must have hi > lo");
  if (columns <= 0) columns = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(count))));
  const int64_t rows = (count + columns - 1) / columns;
  const int64_t gw = columns * width + (columns + 1) * pad, gh = rows * height + (rows + 1) * pad;
  std::vector<uint8_t> grid(static_cast<size_t>(gw * gh * channels), 0);
  const float scale = 255.0f / (hi - lo);
  for (int64_t i = 0; i < count; ++i) {
    const float* img = images + i * channels * height * width;
    const int64_t x0 = pad + (i % columns) * (width + pad), y0 = pad + (i / columns) * (height + pad);
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t y = 0; y < height; ++y)
        for (int64_t x = 0; x < width; ++x) {
          float v = (img[(c * height + y) * width + x] - lo) * scale;
          v = std::isfinite(v) ? std::clamp(v, 0.0f, 255.0f) : 0.0f;
          grid[static_cast<size_t>(((y0 + y) * gw + x0 + x) * channels + c)] = static_cast<uint8_t>(std::lround(v));
        }
  }
  write(path, gw, gh, static_cast<int>(channels), grid.data());
}

}  // namespace dptrain
