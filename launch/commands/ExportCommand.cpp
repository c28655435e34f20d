// `dptrain export`: a trained model file to safetensors (PyTorch state_dict names, for
// python/dptrain_torch.py or any nn.Module of the same layout) or ONNX (a graph that computes what
// `dptrain predict` writes, input scaling and softmax included). docs/export.md has the mapping.
#include <algorithm>
#include <cstdio>
#include <vector>

#include "launch/ArgParser.h"
#include "launch/commands/Commands.h"
#include "storage/export/ExportTree.h"
#include "storage/export/OnnxExport.h"
#include "storage/export/Safetensors.h"
#include "trainer/Predictor.h"

namespace dptrain {

namespace {

struct ExportFormat {
  const char* name;
  std::string about;
  void (*write)(const ExportTree&, const std::string&);
};

const std::vector<ExportFormat>& formats() {
  static const std::vector<ExportFormat> table = {
      {"safetensors", "tensors under PyTorch state_dict names, the architecture in the metadata", export_safetensors},
      {"onnx", "an ONNX graph (opset " + std::to_string(onnx_opset) + ") from raw rows to predict's outputs",
       export_onnx},
  };
  return table;
}

std::string format_names() {
  std::string s;
  for (const auto& f : formats()) s += (s.empty() ? "" : ", ") + std::string(f.name);
  return s;
}

}  // namespace

int export_command(const Args& args) {
  std::string formats_help;
  for (const auto& f : formats()) formats_help += "  " + std::string(f.name) + ": " + f.about + "\n";
  ArgParser p("dptrain export",
              "Writes a trained model file (model.h5 of dptrain train) in another framework's format.\n"
              "The exported model computes what dptrain predict writes: input scaling (data.normalize)\n"
              "is stored (safetensors) or folded into the graph (onnx), and classifiers end in softmax\n"
              "(sigmoid for one logit) in onnx. Layer names and layouts: docs/export.md.");
  p.positional("MODEL", "a model file written by dptrain train")
      .option("format", "FORMAT", format_names())
      .option("out", "FILE", "the file to write (replaced atomically)")
      .epilog("Formats:\n" + formats_help);
  if (!p.parse(args)) return 0;
  for (const char* k : {"format", "out"})
    if (!p.has(k)) fail_input(std::string("dptrain export: --") + k + " is required");
  const ExportFormat* format = nullptr;
  for (const auto& f : formats())
    if (p.get("format") == f.name) format = &f;
  if (!format) fail_input("dptrain export: --format '" + p.get("format") + "' is not one of: " + format_names());

  const std::string source = p.get("MODEL");
  TrainedModel trained = load_trained_model(source, Device::cpu);
  const int64_t steps = std::max<int64_t>(1, trained.meta.task.label_width);
  const ExportHead head =
      predict_head(trained.meta.task, trained.reconstruct, trained.model->output_shape().numel() / steps);
  ExportTree tree(*trained.model, trained.meta, head, source);
  const std::string out = p.get("out");
  format->write(tree, out);
  std::printf("wrote %s (%s, %lld parameters, output %s) to %s\n", source.c_str(), format->name,
              static_cast<long long>(trained.model->parameter_count()), export_head_name(head).c_str(), out.c_str());
  return 0;
}

}  // namespace dptrain
