#include "trainer/tasks/GanSampling.h"

#include <algorithm>

#include "models/core/Error.h"
#include "models/core/Philox.h"
#include "storage/dataset/DatasetFile.h"
#include "storage/image/PngWriter.h"
#include "storage/image/ScatterPlot.h"

namespace dptrain {

void draw_latent(LatentDistribution distribution, uint64_t seed, LatentStream stream, uint64_t step, int64_t row0,
                 int64_t rows, int64_t latent, float* out) {
  const RandomKey key = RandomKey::make(seed, RandomPurpose::noise, static_cast<uint32_t>(stream));
  for (int64_t i = 0; i < rows; ++i) {
    const uint64_t sample = static_cast<uint64_t>(row0 + i);
    float* z = out + i * latent;
    if (distribution == LatentDistribution::normal)
      for (int64_t j = 0; j < latent; ++j) z[j] = philox_normal(key, step, sample, static_cast<uint64_t>(j));
    else  // (0, 1] mapped to (-1, 1]
      for (int64_t j = 0; j < latent; ++j)
        z[j] = 2.0f * philox_uniform(key, step, sample, static_cast<uint64_t>(j)) - 1.0f;
  }
}

void generate_samples(Model& generator, const GanConfig& gan, uint64_t seed, int64_t count, std::vector<float>& out) {
  const int64_t batch = 512, row = generator.output_shape().numel();
  out.assign(static_cast<size_t>(count * row), 0.0f);
  std::vector<float> z(static_cast<size_t>(batch * gan.latent));
  Tensor zt;
  for (int64_t b = 0; b < count; b += batch) {
    const int64_t n = std::min(batch, count - b);
    draw_latent(gan.distribution, seed, LatentStream::evaluation, 0, b, n, gan.latent, z.data());
    zt.resize(Shape{n, gan.latent}, generator.device());
    zt.copy_from(Tensor::view(z.data(), Shape{n, gan.latent}));
    StepContext ctx{Mode::eval, seed, 0, b, nullptr, false};
    const Tensor& y = generator.forward(zt, ctx);
    copy_memory(out.data() + b * row, Device::cpu, y.data(), y.device(), static_cast<size_t>(n * row) * sizeof(float));
  }
}

void write_samples_file(const std::string& path, const std::vector<float>& samples, int64_t count, const Shape& shape) {
  DatasetContents c;
  c.sample_shape = shape;
  c.x.assign(samples.begin(), samples.begin() + count * shape.numel());
  c.label_kind = LabelKind::none;
  write_dataset_file(path, c);
}

std::string write_samples_picture(const std::string& path, const std::vector<float>& samples, int64_t count,
                                  const Shape& shape, const std::vector<float>& real, float lo, float hi) {
  if (shape.rank() == 3 && (shape[0] == 1 || shape[0] == 3)) {
    PngWriter::write_grid(path, samples.data(), count, shape[0], shape[1], shape[2], 0, lo, hi);
    return "a grid of " + std::to_string(count) + " samples";
  }
  if (shape.rank() == 1 && shape[0] == 2) {
    std::vector<ScatterSeries> series;
    if (!real.empty()) series.push_back({real.data(), static_cast<int64_t>(real.size() / 2), {150, 150, 150}, 1});
    series.push_back({samples.data(), count, {220, 30, 30}, 1});
    write_scatter_png(path, series);
    return "a scatter of " + std::to_string(count) + " samples (red)" +
           (real.empty() ? std::string() : " over " + std::to_string(real.size() / 2) + " real points (grey)");
  }
  return "";
}

}  // namespace dptrain
