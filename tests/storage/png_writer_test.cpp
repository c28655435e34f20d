// The PNG writer behind sample grids: the file is a valid PNG of the grid's size (checked from
// the header bytes) whose pixels, decoded with libpng, are the images mapped from [lo, hi].
#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>

#include "storage/image/PngWriter.h"
#include "support/TestSupport.h"

#if __has_include(<png.h>)
#include <png.h>
#define DPT_TEST_HAVE_PNG 1
#endif

using namespace dptrain;

namespace {

uint32_t be32(const std::string& s, size_t at) {
  return (uint32_t(uint8_t(s[at])) << 24) | (uint32_t(uint8_t(s[at + 1])) << 16) | (uint32_t(uint8_t(s[at + 2])) << 8) |
         uint32_t(uint8_t(s[at + 3]));
}

}  // namespace

TEST_CASE("PngWriter writes a grid of images as a PNG", "[storage][png]") {
  if (!PngWriter::available()) {
    WARN("built without libpng");
    return;
  }
  test::TempDir dir;
  // Three 1x4x5 images with values 0, 0.5 and 1 (the third clamped from 2).
  std::vector<float> images(3 * 20);
  for (int i = 0; i < 20; ++i) {
    images[i] = 0.0f;
    images[20 + i] = 0.5f;
    images[40 + i] = 2.0f;
  }
  const std::string path = dir.file("grid.png");
  PngWriter::write_grid(path, images.data(), 3, 1, 4, 5, 2, 0.0f, 1.0f, 1);  // 2 columns, 1 px padding
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(bytes.size() > 33);
  CHECK(bytes.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
  CHECK(bytes.substr(12, 4) == "IHDR");
  CHECK(be32(bytes, 16) == 2 * 5 + 3);  // width: 2 images + 3 paddings
  CHECK(be32(bytes, 20) == 2 * 4 + 3);  // height: 2 rows
  CHECK(dir.entries().size() == 1);     // written atomically: no temporary left behind
#ifdef DPT_TEST_HAVE_PNG
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  REQUIRE(png_image_begin_read_from_file(&img, path.c_str()));
  img.format = PNG_FORMAT_GRAY;
  std::vector<uint8_t> px(PNG_IMAGE_SIZE(img));
  REQUIRE(png_image_finish_read(&img, nullptr, px.data(), 0, nullptr));
  auto at = [&](int x, int y) { return int(px[size_t(y * 13 + x)]); };
  CHECK(at(0, 0) == 0);    // padding
  CHECK(at(1, 1) == 0);    // image 0
  CHECK(at(7, 1) == 128);  // image 1 (0.5 * 255 rounded)
  CHECK(at(1, 6) == 255);  // image 2, clamped
  CHECK(at(7, 6) == 0);    // the empty fourth cell
#endif
}

TEST_CASE("PngWriter refuses a bad grid with a clear error", "[storage][png]") {
  test::TempDir dir;
  std::vector<float> images(8, 0.0f);
  CHECK_THROWS_WITH(PngWriter::write_grid(dir.file("x.png"), images.data(), 2, 2, 2, 1),
                    Catch::Contains("1 or 3 channels"));
}
