// Built when libpng is absent: writing a PNG is then a clear error, everything else still works.
#include "models/core/Error.h"
#include "storage/image/PngWriter.h"

namespace dptrain {

bool PngWriter::available() { return false; }

void PngWriter::write(const std::string& path, int64_t, int64_t, int, const uint8_t*) {
  fail_input("cannot write " + path + ": this dptrain was built without libpng (install libpng-dev and rebuild)");
}

void PngWriter::write_grid(const std::string& path, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, float,
                           float, int64_t) {
  write(path, 0, 0, 1, nullptr);
}

}  // namespace dptrain
