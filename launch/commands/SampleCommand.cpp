// `dptrain sample SOURCE --n N --out FILE`: draws N samples from a trained GAN generator — a
// generator model file, a checkpoint file, or a directory (a run's out_dir or checkpoint dir,
// whose generator.h5 or latest checkpoint is used) — and writes them as a dataset file (/x) plus a
// picture: a grid for images, a scatter against the real data for 2-D points. The generator is
// rebuilt from the config text stored in the file, so no config is needed.
#include <cstdio>
#include <filesystem>

#include "launch/ArgParser.h"
#include "launch/commands/Commands.h"
#include "models/core/Error.h"
#include "storage/checkpoint/CheckpointFile.h"
#include "storage/checkpoint/CheckpointStore.h"
#include "storage/checkpoint/ModelFile.h"
#include "storage/hdf5/H5.h"
#include "trainer/tasks/GanNetworks.h"
#include "trainer/tasks/GanSampling.h"
#include "trainer/tasks/ModeCoverage.h"

namespace dptrain {

namespace {

namespace fs = std::filesystem;

// A file to read the generator from: directories resolve to their generator.h5, else to the
// latest good checkpoint in them (or in their checkpoints/ folder).
std::string resolve_source(const std::string& spec) {
  if (!fs::is_directory(spec)) {
    if (!fs::exists(spec)) fail_input(spec + ": no such file or directory");
    return spec;
  }
  if (fs::exists(fs::path(spec) / "generator.h5")) return (fs::path(spec) / "generator.h5").string();
  for (const fs::path& dir : {fs::path(spec) / "checkpoints", fs::path(spec)}) {
    if (!fs::is_directory(dir)) continue;
    CheckpointStore store(dir.string(), 1 << 20);
    CheckpointStore::Resolved r = store.resolve("latest");
    for (const auto& why : r.skipped) std::fprintf(stderr, "warning: skipping a damaged checkpoint: %s\n", why.c_str());
    if (!r.path.empty()) return r.path;
  }
  fail_input(spec + ": has neither a generator.h5 nor a usable checkpoint");
}

std::string with_extension(const std::string& path, const std::string& ext) {
  return fs::path(path).replace_extension(ext).string();
}

}  // namespace

int sample_command(const Args& args) {
  ArgParser p("dptrain sample",
              "Draws samples from a trained GAN generator and writes them as a dataset file (/x), with a\n"
              "picture next to it: a grid for images, a scatter against the real data for 2-D points.");
  p.positional("SOURCE",
               "generator.h5, a checkpoint file, or a directory (out_dir or checkpoint dir: its generator.h5 or "
               "latest checkpoint)")
      .option("n", "N", "how many samples", "64")
      .option("out", "FILE", "the HDF5 file to write (/x [N, ...sample shape])")
      .option("png", "FILE", "the picture to write (default: FILE with .png; \"none\" for no picture)")
      .option("seed", "S", "seed of the latent draws (default: the run's seed)")
      .option("data", "FILE",
              "real data for the sample shape, the scatter and 2-D mode coverage (default: the run's "
              "data.train)");
  if (!p.parse(args)) return 0;
  if (!p.has("out")) fail_input("dptrain sample: --out FILE is required");
  const int64_t n = p.get_int("n");
  if (n <= 0 || n > (int64_t{1} << 24)) fail_input("dptrain sample: --n must be in [1, 16777216]");

  const std::string source = resolve_source(p.get("SOURCE"));
  h5_quiet();
  std::string format;
  {
    H5Id f = h5_open_read(source);
    if (!h5_has_attribute(f, "format")) fail_input(source + ": not a dptrain model file or checkpoint");
    format = h5_read_string_attribute(f, "format", source);
  }
  const bool checkpoint = CheckpointState::parse_format_tag(format) != 0;
  const std::string config_text =
      checkpoint ? read_checkpoint_file(source, {}).config_text : read_model_meta(source).config_text;
  ConfigNode root = ConfigNode::parse_string(config_text, source + " (stored config)");
  TrainConfig config = read_train_config(root, source);
  if (config.task != "gan") fail_input(source + ": was not trained with task = \"gan\" (task is " + config.task + ")");
  GanConfig gan = read_gan_config(root, config);

  // The real data gives the sample shape (unless output_shape is in the config) and the scatter.
  std::shared_ptr<DatasetFile> data;
  const std::string data_path = p.has("data") ? p.get("data") : config.data.train;
  if (p.has("data") || (!data_path.empty() && fs::exists(data_path))) data = std::make_shared<DatasetFile>(data_path);
  const Shape shape = gan_sample_shape(root, data ? data->sample_shape() : Shape());
  std::unique_ptr<Model> g = build_gan_generator(root, gan, shape, Device::cpu);
  if (checkpoint) {
    std::vector<FlatSpec> specs{{"generator/params", g->param_infos(), g->flat_size(), true}};
    if (!g->buffer_infos().empty())
      specs.push_back({"generator/buffers", g->buffer_infos(), g->buffers().numel(), true});
    CheckpointState s = read_checkpoint_file(source, specs);
    const auto& params = s.flat("generator/params").data;
    copy_memory(g->params().data(), Device::cpu, params.data(), Device::cpu, params.size() * sizeof(float));
    if (!g->buffer_infos().empty()) {
      const auto& buffers = s.flat("generator/buffers").data;
      copy_memory(g->buffers().data(), Device::cpu, buffers.data(), Device::cpu, buffers.size() * sizeof(float));
    }
  } else {
    load_model_params(source, *g);
  }

  const uint64_t seed = p.has("seed") ? static_cast<uint64_t>(p.get_int("seed")) : config.seed;
  std::vector<float> samples;
  generate_samples(*g, gan, seed, n, samples);
  const std::string out = p.get("out");
  write_samples_file(out, samples, n, shape);
  std::printf("%lld samples of %s from %s written to %s\n", static_cast<long long>(n), shape.str().c_str(),
              source.c_str(), out.c_str());

  std::vector<float> real;
  if (data && shape == Shape{2} && data->sample_shape() == shape) {
    real.resize(static_cast<size_t>(data->rows() * 2));
    data->read_rows(0, data->rows(), real.data());
  }
  const std::string png = p.has("png") ? p.get("png") : with_extension(out, ".png");
  if (png != "none") {
    const bool tanh_output = root.child("gan").child("generator").get_string("output_activation", "") == "tanh";
    std::string what = write_samples_picture(png, samples, n, shape, real, tanh_output ? -1.0f : 0.0f, 1.0f);
    if (!what.empty()) std::printf("%s written to %s\n", what.c_str(), png.c_str());
  }
  if (data && is_gaussian_mixture(*data) && data->sample_shape() == shape) {
    std::vector<int64_t> rows(static_cast<size_t>(data->rows()));
    for (int64_t i = 0; i < data->rows(); ++i) rows[static_cast<size_t>(i)] = i;
    MixtureModes modes = measure_modes(*data, rows);
    std::printf(
        "mode coverage: %s\n",
        describe(score_mode_coverage(modes, samples.data(), n, gan.quality_sigmas, gan.mode_min_samples)).c_str());
  }
  return 0;
}

}  // namespace dptrain
