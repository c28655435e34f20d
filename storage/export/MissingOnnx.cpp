// Built when CMake finds no libonnx (Debian: libonnx-dev): asking for ONNX is then a clear error;
// safetensors export and everything else still work.
#include "models/core/Error.h"
#include "storage/export/OnnxExport.h"

namespace dptrain {

bool onnx_export_available() { return false; }

void export_onnx(const ExportTree&, const std::string& path) {
  fail_input("cannot write " + path +
             ": this dptrain was built without ONNX support (install libonnx-dev and libprotobuf-dev and rebuild); "
             "--format safetensors works");
}

}  // namespace dptrain
