// `dptrain export --format onnx`: the model as an ONNX graph (opset onnx_opset) with the input
// scaling and the head that `dptrain predict` applies folded in, so the graph computes predict's
// /outputs from raw rows. Built from Debian's libonnx protobuf classes where CMake finds them
// (OnnxExport.cpp); otherwise MissingOnnx.cpp says that this dptrain was built without ONNX.
#pragma once

#include <string>

#include "storage/export/ExportTree.h"

namespace dptrain {

// Opset 13: the newest most converters and OpenCV 4.6's dnn importer take.
constexpr int onnx_opset = 13;

// Whether this build writes ONNX.
bool onnx_export_available();

// Writes the model to `path` atomically after onnx::checker accepts it; a layer with no ONNX
// form fails as bad input naming its path and kind, before anything is written.
void export_onnx(const ExportTree& tree, const std::string& path);

}  // namespace dptrain
