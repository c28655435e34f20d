// Training on the GPU follows training on the CPU (issue 8's must-show): a small MLP (with dropout,
// whose masks must be the same bits on both) and a small CNN (convolution, batch norm, max and
// average pooling) train 20 steps from the same seed on each backend, and the parameters and the
// loss sums agree to a relative 1e-4. Also: the same run twice on the GPU gives the same bits, and
// a CUDA graph of the step replays the eager steps exactly.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "models/Model.h"
#include "models/core/Philox.h"
#include "models/kernels/KernelBackend.h"
#include "models/kernels/cuda/CudaBackend.h"
#include "models/layers/BatchNorm.h"
#include "models/layers/Conv2d.h"
#include "models/layers/Dense.h"
#include "models/layers/Dropout.h"
#include "models/layers/Pool2d.h"
#include "models/layers/Sequential.h"
#include "models/losses/Loss.h"

using namespace dptrain;

namespace {

struct Net {
  std::unique_ptr<Sequential> layers;
  Shape sample;
};

Net make_net(const std::string& kind) {
  Net n{std::make_unique<Sequential>(), Shape{}};
  if (kind == "mlp") {
    n.sample = Shape{64};
    n.layers->add(std::make_unique<Dense>(128, true, Activation::relu));
    n.layers->add(std::make_unique<Dropout>(0.3f));
    n.layers->add(std::make_unique<Dense>(96, true, Activation::tanh));
    n.layers->add(std::make_unique<Dense>(10));
  } else {
    n.sample = Shape{2, 12, 12};
    Conv2dOptions c;
    c.out_channels = 8;
    c.kernel_h = c.kernel_w = 3;
    c.padding = 1;
    c.activation = Activation::relu;
    n.layers->add(std::make_unique<Conv2d>(c));
    n.layers->add(std::make_unique<Pool2d>(Pool2d::Kind::max, 2));
    c.out_channels = 12;
    c.activation = Activation::identity;
    n.layers->add(std::make_unique<Conv2d>(c));
    // BatchNorm reads its row count back to the host each step, which graph capture forbids.
    if (kind == "cnn") n.layers->add(std::make_unique<BatchNorm>(0.1f, 1e-5f, false));
    n.layers->add(std::make_unique<Pool2d>(Pool2d::Kind::average, 2));
    n.layers->add(std::make_unique<Dense>(10));
  }
  return n;
}

struct Run {
  std::vector<float> params, stats;
};

// `steps` training steps (softmax cross-entropy, SGD with momentum) of `kind` on `device`; with
// `graph` the steps after the first replay a CUDA graph of one step. The step number keys the
// dropout masks; a graph bakes it in, so graph runs (and eager runs with fixed_key) use step 0.
Run train(const std::string& kind, Device device, int steps, bool graph = false, bool fixed_key = false) {
  Net net = make_net(kind);
  Model model(std::move(net.layers), net.sample, device);
  model.initialize(17);
  const int64_t batch = 24;
  Loss loss(LossKind::softmax_cross_entropy);
  Philox rng(3, RandomPurpose::synth, 0);
  std::vector<float> xs(static_cast<size_t>(batch * net.sample.numel()));
  for (auto& v : xs) v = rng.normal();
  std::vector<int32_t> labels(static_cast<size_t>(batch));
  for (auto& l : labels) l = static_cast<int32_t>(rng.below(10));

  Tensor x = Tensor::zeros(net.sample.with_batch(batch), device);
  x.copy_from(Tensor::view(xs.data(), x.shape()));
  DeviceMemory label_mem(labels.size() * sizeof(int32_t), device);
  copy_memory(label_mem.data(), device, labels.data(), Device::cpu, labels.size() * sizeof(int32_t));
  Tensor stats = Tensor::zeros({num_loss_stats}, device);
  Tensor momentum = Tensor::zeros({model.flat_size()}, device);
  Tensor dout;
  OptimizerStep opt;
  opt.kind = OptimizerKind::momentum;
  opt.lr = 0.05f;
  KernelBackend& k = kernels(device);

  auto step = [&](uint64_t t) {
    StepContext ctx{Mode::train, 11, graph || fixed_key ? 0 : t, 0, nullptr, true};
    model.zero_grad();
    const Tensor& out = model.forward(x, ctx);
    loss.evaluate(out, {static_cast<const int32_t*>(label_mem.data()), nullptr}, 1.0f / static_cast<float>(batch),
                  &dout, stats.data());
    model.backward(dout, ctx);
    k.optimizer_update(opt, model.flat_size(), model.params().data(), model.grads().data(), momentum.data(), nullptr);
  };
  CudaGraph g;
  for (int t = 0; t < steps; ++t) {
    if (graph && t > 0)
      g.run(1, [&] { step(static_cast<uint64_t>(t)); });
    else
      step(static_cast<uint64_t>(t));
  }
  if (graph) CHECK(g.captures() == 1);
  Run r;
  r.params.resize(static_cast<size_t>(model.flat_size()));
  copy_memory(r.params.data(), Device::cpu, model.params().data(), device, r.params.size() * sizeof(float));
  r.stats.resize(num_loss_stats);
  copy_memory(r.stats.data(), Device::cpu, stats.data(), device, r.stats.size() * sizeof(float));
  return r;
}

// Largest |a - b| / max(|b|, 1e-3) (parameters are O(0.1); the floor keeps near-zero ones from
// turning rounding into large ratios).
double max_relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - b[i]) / std::max(std::fabs(double{b[i]}), 1e-3));
  return worst;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("CPU and CUDA training from the same seed agree within 1e-4 after 20 steps", "[cuda][models]") {
  if (!cuda_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  for (const char* kind : {"mlp", "cnn"}) {
    DYNAMIC_SECTION(kind) {
      const Run cpu = train(kind, Device::cpu, 20), gpu = train(kind, Device::cuda, 20);
      const Run start = train(kind, Device::cpu, 0);
      // The runs must have moved: agreement of untrained parameters would prove nothing.
      CHECK(max_relative_difference(cpu.params, start.params) > 1e-2);
      const double diff = max_relative_difference(gpu.params, cpu.params);
      INFO(kind << ": max relative difference of the parameters " << diff);
      CHECK(diff <= 1e-4);
      CHECK(gpu.stats[stat_count] == cpu.stats[stat_count]);
      CHECK(max_relative_difference(gpu.stats, cpu.stats) <= 1e-4);
      // Deterministic on the GPU: the same bits on a second run.
      CHECK(same_bits(train(kind, Device::cuda, 20).params, gpu.params));
    }
  }
}

TEST_CASE("a CUDA graph of the training step replays the eager steps bit for bit", "[cuda][models]") {
  if (!cuda_available() || !cuda_graphs_supported()) {
    WARN("no CUDA device (or no graph support): skipped");
    return;
  }
  for (const char* kind : {"mlp", "cnn without batch norm"}) {
    DYNAMIC_SECTION(kind) {
      const Run eager = train(kind, Device::cuda, 6, false, true);
      const Run graphed = train(kind, Device::cuda, 6, true);
      CHECK(same_bits(graphed.params, eager.params));
      CHECK(same_bits(graphed.stats, eager.stats));
      // And the graph did train: the parameters moved from their start.
      CHECK(max_relative_difference(graphed.params, train(kind, Device::cuda, 0).params) > 1e-3);
    }
  }
}
