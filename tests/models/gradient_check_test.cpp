// One table-driven finite-difference check of every layer and loss (docs/design.md rule 2). Each layer
// runs forward on a random batch; with loss L = sum(out * R) for a fixed random R, backward's
// input and parameter gradients must match central differences to a relative error <= 1e-3.
// Inputs are distinct and away from zero; each coordinate is tried with several step sizes and
// must match with one of them: large steps can cross a kink (ReLU at 0, a change of max), small
// ones drown in float32 rounding, but a wrong analytic gradient matches none.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <memory>

#include "models/Model.h"
#include "models/core/Philox.h"
#include "models/kernels/KernelBackend.h"
#include "models/layers/ActivationLayer.h"
#include "models/layers/BatchNorm.h"
#include "models/layers/Concat.h"
#include "models/layers/Conv2d.h"
#include "models/layers/ConvTranspose2d.h"
#include "models/layers/Dense.h"
#include "models/layers/Dropout.h"
#include "models/layers/Embedding.h"
#include "models/layers/GaussianSample.h"
#include "models/layers/Gelu.h"
#include "models/layers/Highway.h"
#include "models/layers/LayerNorm.h"
#include "models/layers/MaxUnpool2d.h"
#include "models/layers/Maxout.h"
#include "models/layers/MinibatchStddev.h"
#include "models/layers/MultiHeadAttention.h"
#include "models/layers/Pool2d.h"
#include "models/layers/PositionalEncoding.h"
#include "models/layers/Recurrent.h"
#include "models/layers/Reshape.h"
#include "models/layers/Residual.h"
#include "models/layers/SequencePool.h"
#include "models/layers/Sequential.h"
#include "models/layers/TiedOutput.h"
#include "models/layers/TimeDistributed.h"
#include "models/layers/Upsample2d.h"
#include "models/losses/GanLoss.h"
#include "models/losses/Loss.h"
#include "models/zoo/Transformer.h"

using namespace dptrain;

namespace {

struct LayerCase {
  const char* name;
  std::function<std::unique_ptr<Layer>()> make;
  Shape input;      // one sample
  int64_t ids = 0;  // > 0: the inputs are integer ids in [0, ids) (embedding), which carry no gradient
};

// Values in [-1, -0.1] U [0.1, 1] in random order, at least 0.9 / n apart, so max operations
// have no near-ties and nothing sits at a ReLU kink.
std::vector<float> random_values(int64_t n, uint32_t id) {
  Philox rng(1234, RandomPurpose::synth, id);
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    float mag = 0.1f + 0.9f * (static_cast<float>(i / 2) + 0.5f) / static_cast<float>((n + 1) / 2);
    v[static_cast<size_t>(i)] = i % 2 ? -mag : mag;
  }
  for (int64_t i = n - 1; i > 0; --i) std::swap(v[static_cast<size_t>(i)], v[rng.below(static_cast<uint64_t>(i + 1))]);
  return v;
}

// A tensor's values on the host, from any device.
std::vector<float> host_values(const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  copy_memory(v.data(), Device::cpu, t.data(), t.device(), v.size() * sizeof(float));
  return v;
}

// Host values into a tensor on any device.
void upload(const std::vector<float>& v, Tensor& t) {
  copy_memory(t.data(), t.device(), v.data(), Device::cpu, v.size() * sizeof(float));
}

double weighted_sum(const Tensor& out, const std::vector<float>& r) {
  const std::vector<float> v = host_values(out);
  double s = 0.0;
  for (size_t i = 0; i < v.size(); ++i) s += static_cast<double>(v[i]) * r[i];
  return s;
}

double relative_error(double a, double b) { return std::fabs(a - b) / std::max({std::fabs(a), std::fabs(b), 1e-2}); }

// Checks about 40 coordinates of a buffer: analytic[i] against (L(x+e) - L(x-e)) / 2e for the
// step sizes e in turn, passing on the first that agrees within tol.
void check_coordinates(const char* what, float* values, const float* analytic, int64_t n,
                       const std::function<double()>& loss, double tol) {
  const int64_t stride = std::max<int64_t>(1, n / 40);
  for (int64_t i = 0; i < n; i += stride) {
    const float keep = values[i];
    double best = 1e30, best_numeric = 0.0;
    auto central = [&](double eps) {
      values[i] = keep + static_cast<float>(eps);
      double up = loss();
      values[i] = keep - static_cast<float>(eps);
      double down = loss();
      values[i] = keep;
      return (up - down) / (2 * eps);
    };
    // Central differences at several steps, then Richardson extrapolation (error O(e^4)), which
    // allows steps large enough to leave float32 rounding behind on smooth functions.
    for (double eps : {1e-2, 3e-3, 1e-3, 3e-2, -5e-2, -1e-1}) {
      double numeric = eps > 0 ? central(eps) : (4 * central(-eps / 2) - central(-eps)) / 3;
      if (relative_error(analytic[i], numeric) < best) {
        best = relative_error(analytic[i], numeric);
        best_numeric = numeric;
      }
      if (best <= tol) break;
    }
    INFO(what << " coordinate " << i << ": analytic " << analytic[i] << " numeric " << best_numeric);
    CHECK(best <= tol);
  }
}

// The model runs on `device`; inputs and parameters live in host mirrors that are perturbed there
// and uploaded before every forward, so the same check covers every backend.
void check_layer(const LayerCase& c, Device device = Device::cpu) {
  const int64_t batch = 3;
  auto seq = std::make_unique<Sequential>();
  seq->add(c.make());
  Model model(std::move(seq), c.input, device);
  model.initialize(7);
  // Keep parameters away from zero too, so products stay away from kinks.
  auto pv = random_values(model.flat_size(), 3);
  std::vector<float> params(static_cast<size_t>(model.flat_size()));
  for (int64_t i = 0; i < model.flat_size(); ++i) params[static_cast<size_t>(i)] = 0.5f * pv[static_cast<size_t>(i)];

  Shape xs = c.input.with_batch(batch);
  std::vector<float> xv = random_values(xs.numel(), 1);
  if (c.ids > 0)
    for (int64_t i = 0; i < xs.numel(); ++i) xv[static_cast<size_t>(i)] = static_cast<float>((i * 7 + 3) % c.ids);
  Tensor x = Tensor::zeros(xs, device);
  // Layers with an auxiliary loss (the VAE's KL term) add it here; the checked loss includes it.
  Tensor aux = Tensor::zeros({num_loss_stats}, device);
  StepContext ctx{Mode::train, 99, 5, 10, nullptr, true};
  ctx.loss_stats = aux.data();
  auto forward = [&]() -> const Tensor& {
    upload(params, model.params());
    upload(xv, x);
    aux.fill(0.0f);
    return model.forward(x, ctx);
  };
  const Tensor& out0 = forward();
  std::vector<float> r = random_values(out0.numel(), 2);
  Tensor dout = Tensor::zeros(out0.shape(), device);
  upload(r, dout);
  Tensor din;
  model.zero_grad();
  model.backward(dout, ctx, &din);
  std::vector<float> dx = host_values(din);
  std::vector<float> dparams = host_values(model.grads());

  auto loss = [&] {
    double main = weighted_sum(forward(), r);
    return main + host_values(aux)[stat_loss];
  };
  const double tol = 1e-3;
  check_coordinates("input", xv.data(), dx.data(), xs.numel(), loss, tol);
  for (const ParamInfo& p : model.param_infos()) {
    INFO("parameter " << p.path);
    check_coordinates(p.path.c_str(), params.data() + p.offset, dparams.data() + p.offset, p.shape.numel(), loss, tol);
  }
}

Conv2dOptions conv(int64_t out, int64_t k, int64_t stride, int64_t pad, int64_t dil, int64_t groups,
                   Activation act = Activation::identity) {
  Conv2dOptions o;
  o.out_channels = out;
  o.kernel_h = o.kernel_w = k;
  o.stride = stride;
  o.padding = pad;
  o.dilation = dil;
  o.groups = groups;
  o.activation = act;
  return o;
}

ConvTranspose2dOptions deconv(int64_t out, int64_t k, int64_t stride, int64_t pad, int64_t out_pad,
                              Activation act = Activation::identity) {
  ConvTranspose2dOptions o;
  o.out_channels = out;
  o.kernel_h = o.kernel_w = k;
  o.stride = stride;
  o.padding = pad;
  o.output_padding = out_pad;
  o.activation = act;
  return o;
}

// A Sequential of the given layers, for containers and for layers that come in pairs.
std::unique_ptr<Sequential> chain(std::vector<std::unique_ptr<Layer>> layers) {
  return std::make_unique<Sequential>(std::move(layers));
}

template <typename... L>
std::unique_ptr<Sequential> chain_of(std::unique_ptr<L>... layers) {
  std::vector<std::unique_ptr<Layer>> v;
  (v.push_back(std::move(layers)), ...);
  return chain(std::move(v));
}

std::unique_ptr<Layer> pool_then_unpool(int64_t k, int64_t stride, int64_t pad) {
  auto pool = std::make_unique<Pool2d>(Pool2d::Kind::max, k, stride, pad);
  auto unpool = std::make_unique<MaxUnpool2d>(pool.get());
  return chain_of(std::move(pool), std::move(unpool));
}

const std::vector<LayerCase>& layer_cases() {
  static const std::vector<LayerCase> cases = {
      {"dense", [] { return std::make_unique<Dense>(4); }, Shape{5}},
      {"dense+relu", [] { return std::make_unique<Dense>(4, true, Activation::relu); }, Shape{5}},
      {"dense+tanh no bias", [] { return std::make_unique<Dense>(3, false, Activation::tanh); }, Shape{6}},
      {"dense+sigmoid", [] { return std::make_unique<Dense>(3, true, Activation::sigmoid); }, Shape{4}},
      {"dense+leaky_relu", [] { return std::make_unique<Dense>(3, true, Activation::leaky_relu, 0.1f); }, Shape{4}},
      {"dense on images", [] { return std::make_unique<Dense>(3); }, Shape{2, 3, 3}},
      {"relu", [] { return std::make_unique<ActivationLayer>(Activation::relu); }, Shape{7}},
      {"leaky_relu", [] { return std::make_unique<ActivationLayer>(Activation::leaky_relu, 0.2f); }, Shape{7}},
      {"sigmoid", [] { return std::make_unique<ActivationLayer>(Activation::sigmoid); }, Shape{7}},
      {"tanh", [] { return std::make_unique<ActivationLayer>(Activation::tanh); }, Shape{7}},
      {"maxout", [] { return std::make_unique<Maxout>(3); }, Shape{9}},
      {"dropout", [] { return std::make_unique<Dropout>(0.4f); }, Shape{12}},
      {"flatten", [] { return std::make_unique<Reshape>(); }, Shape{2, 2, 3}},
      {"reshape",
       [] {
         return std::make_unique<Reshape>(Shape{1, 3, 4});
       },
       Shape{12}},
      {"conv2d 3x3", [] { return std::make_unique<Conv2d>(conv(3, 3, 1, 0, 1, 1)); }, Shape{2, 5, 5}},
      {"conv2d pad+stride", [] { return std::make_unique<Conv2d>(conv(2, 3, 2, 1, 1, 1)); }, Shape{2, 6, 6}},
      {"conv2d dilation", [] { return std::make_unique<Conv2d>(conv(2, 3, 1, 2, 2, 1)); }, Shape{1, 6, 6}},
      {"conv2d 1x1", [] { return std::make_unique<Conv2d>(conv(4, 1, 1, 0, 1, 1)); }, Shape{3, 4, 4}},
      {"conv2d groups", [] { return std::make_unique<Conv2d>(conv(4, 3, 1, 1, 1, 2)); }, Shape{2, 4, 4}},
      {"conv2d depthwise", [] { return std::make_unique<Conv2d>(conv(3, 3, 1, 1, 1, 3)); }, Shape{3, 4, 4}},
      {"conv2d+relu", [] { return std::make_unique<Conv2d>(conv(2, 3, 1, 1, 1, 1, Activation::relu)); },
       Shape{2, 4, 4}},
      {"conv2d 5x3 kernel",
       [] {
         Conv2dOptions o = conv(2, 3, 1, 1, 1, 1);
         o.kernel_h = 5;
         return std::make_unique<Conv2d>(o);
       },
       Shape{1, 6, 5}},
      {"maxpool 2", [] { return std::make_unique<Pool2d>(Pool2d::Kind::max, 2); }, Shape{2, 4, 4}},
      {"maxpool 3 stride 2 pad 1", [] { return std::make_unique<Pool2d>(Pool2d::Kind::max, 3, 2, 1); }, Shape{2, 5, 5}},
      {"avgpool 2", [] { return std::make_unique<Pool2d>(Pool2d::Kind::average, 2); }, Shape{2, 4, 4}},
      {"avgpool 3 stride 1 pad 1", [] { return std::make_unique<Pool2d>(Pool2d::Kind::average, 3, 1, 1); },
       Shape{1, 4, 4}},
      {"global avgpool", [] { return std::make_unique<Pool2d>(Pool2d::Kind::average, 0); }, Shape{3, 3, 3}},
      // ---- model breadth (issue #7)
      {"batchnorm 1-D features (train)", [] { return std::make_unique<BatchNorm>(); }, Shape{4}},
      {"batchnorm 1-D [channels, length] (train)", [] { return std::make_unique<BatchNorm>(); }, Shape{2, 3}},
      {"batchnorm 2-D (train)", [] { return std::make_unique<BatchNorm>(0.1f, 1e-5f, false); }, Shape{2, 3, 3}},
      {"layernorm flat", [] { return std::make_unique<LayerNorm>(); }, Shape{6}},
      {"layernorm per step", [] { return std::make_unique<LayerNorm>(); }, Shape{3, 4}},
      {"conv_transpose2d 3x3", [] { return std::make_unique<ConvTranspose2d>(deconv(3, 3, 1, 0, 0)); }, Shape{2, 3, 3}},
      {"conv_transpose2d stride 2 pad 1 out_pad 1",
       [] { return std::make_unique<ConvTranspose2d>(deconv(2, 3, 2, 1, 1, Activation::tanh)); }, Shape{2, 3, 3}},
      {"conv_transpose2d 4x4 stride 2", [] { return std::make_unique<ConvTranspose2d>(deconv(2, 4, 2, 1, 0)); },
       Shape{1, 3, 2}},
      {"upsample2d 2x2", [] { return std::make_unique<Upsample2d>(2, 2); }, Shape{2, 2, 3}},
      {"upsample2d 3x1", [] { return std::make_unique<Upsample2d>(3, 1); }, Shape{1, 2, 2}},
      // Batch 3: groups of 2 end in a group of one (its spread is 0, its gradient 0).
      {"minibatch_stddev [C, H, W] group 2", [] { return std::make_unique<MinibatchStddev>(2); }, Shape{2, 3, 3}},
      {"minibatch_stddev features group 3", [] { return std::make_unique<MinibatchStddev>(3); }, Shape{5}},
      {"conv2d + minibatch_stddev + conv2d",
       [] {
         return chain_of(std::make_unique<Conv2d>(conv(2, 3, 1, 1, 1, 1, Activation::tanh)),
                         std::make_unique<MinibatchStddev>(3), std::make_unique<Conv2d>(conv(2, 3, 1, 0, 1, 1)));
       },
       Shape{1, 4, 4}},
      {"maxpool 2 + maxunpool", [] { return pool_then_unpool(2, 2, 0); }, Shape{2, 4, 4}},
      {"maxpool 3 stride 2 pad 1 + maxunpool", [] { return pool_then_unpool(3, 2, 1); }, Shape{1, 5, 5}},
      {"residual identity",
       [] {
         return std::make_unique<Residual>(chain_of(std::make_unique<Conv2d>(conv(2, 3, 1, 1, 1, 1, Activation::tanh)),
                                                    std::make_unique<Conv2d>(conv(2, 3, 1, 1, 1, 1))),
                                           nullptr, Activation::tanh);
       },
       Shape{2, 4, 4}},
      {"residual 1x1 projection stride 2",
       [] {
         return std::make_unique<Residual>(
             chain_of(std::make_unique<Conv2d>(conv(3, 3, 2, 1, 1, 1)), std::make_unique<BatchNorm>()), nullptr,
             Activation::relu);
       },
       Shape{2, 4, 4}},
      {"residual dense projection",
       [] { return std::make_unique<Residual>(chain_of(std::make_unique<Dense>(5)), nullptr, Activation::identity); },
       Shape{4}},
      {"concat channels",
       [] {
         std::vector<std::unique_ptr<Layer>> b;
         b.push_back(std::make_unique<Conv2d>(conv(2, 1, 1, 0, 1, 1)));
         b.push_back(chain_of(std::make_unique<Conv2d>(conv(1, 3, 1, 1, 1, 1, Activation::tanh))));
         return std::make_unique<Concat>(std::move(b));
       },
       Shape{2, 3, 3}},
      {"concat features",
       [] {
         std::vector<std::unique_ptr<Layer>> b;
         b.push_back(std::make_unique<Dense>(2));
         b.push_back(std::make_unique<Dense>(3, true, Activation::tanh));
         b.push_back(std::make_unique<ActivationLayer>(Activation::sigmoid));
         return std::make_unique<Concat>(std::move(b));
       },
       Shape{4}},
      {"highway relu", [] { return std::make_unique<Highway>(Activation::relu); }, Shape{5}},
      {"highway tanh", [] { return std::make_unique<Highway>(Activation::tanh, -0.5f); }, Shape{4}},
      {"embedding", [] { return std::make_unique<Embedding>(5, 3); }, Shape{4}, 5},
      {"embedding [T, 1]", [] { return std::make_unique<Embedding>(3, 2); }, Shape{5, 1}, 3},
      {"rnn last state", [] { return std::make_unique<Recurrent>(Recurrent::Cell::rnn, 3); }, Shape{5, 2}},
      {"rnn sequences", [] { return std::make_unique<Recurrent>(Recurrent::Cell::rnn, 3, true); }, Shape{4, 2}},
      {"lstm last state, 6 steps", [] { return std::make_unique<Recurrent>(Recurrent::Cell::lstm, 3); }, Shape{6, 2}},
      {"lstm sequences, 5 steps", [] { return std::make_unique<Recurrent>(Recurrent::Cell::lstm, 2, true); },
       Shape{5, 3}},
      {"time_distributed dense",
       [] { return std::make_unique<TimeDistributed>(std::make_unique<Dense>(2, true, Activation::tanh)); },
       Shape{4, 3}},
      {"gaussian_sample (VAE, with KL)", [] { return std::make_unique<GaussianSample>(0.5f); }, Shape{6}},
      {"gru last state, 5 steps", [] { return std::make_unique<Recurrent>(Recurrent::Cell::gru, 3); }, Shape{5, 2}},
      {"gru sequences, 4 steps", [] { return std::make_unique<Recurrent>(Recurrent::Cell::gru, 2, true); },
       Shape{4, 3}},
      {"gelu", [] { return std::make_unique<Gelu>(); }, Shape{7}},
      {"attention, 2 heads", [] { return std::make_unique<MultiHeadAttention>(2, false, 0.0f); }, Shape{5, 4}},
      {"attention, causal, 1 head", [] { return std::make_unique<MultiHeadAttention>(1, true, 0.0f); }, Shape{4, 3}},
      {"attention, causal, dropout 0.3", [] { return std::make_unique<MultiHeadAttention>(2, true, 0.3f); },
       Shape{6, 4}},
      {"attention with a padding mask, after an embedding",
       [] {
         auto mask = std::make_shared<SequenceMask>();
         return chain_of(std::make_unique<Embedding>(5, 4, 1.0f, 0, mask),
                         std::make_unique<MultiHeadAttention>(2, false, 0.0f, mask),
                         std::make_unique<SequencePool>(mask));
       },
       Shape{6}, 5},
      {"positional, learned", [] { return std::make_unique<PositionalEncoding>(PositionalEncoding::Kind::learned); },
       Shape{4, 3}},
      {"positional, sinusoidal",
       [] { return std::make_unique<PositionalEncoding>(PositionalEncoding::Kind::sinusoidal); }, Shape{4, 6}},
      {"mean_pool", [] { return std::make_unique<SequencePool>(); }, Shape{3, 4}},
      {"transformer block, causal, dropout 0.2",
       [] {
         TransformerBlockOptions o;
         o.heads = 2;
         o.mlp_ratio = 2;
         o.dropout = 0.2f;
         o.attention_dropout = 0.2f;
         o.causal = true;
         return std::make_unique<TransformerBlock>(o, nullptr);
       },
       Shape{5, 4}},
      {"tied output after an embedding",
       [] {
         auto embedding = std::make_unique<Embedding>(5, 4);
         Embedding& table = *embedding;
         return chain_of(std::move(embedding), std::make_unique<TiedOutput>(table, true));
       },
       Shape{3}, 5},
  };
  return cases;
}

struct LossCase {
  const char* name;
  LossKind kind;
  int64_t cols;
  enum { labels, values, soft, none } targets;
};

void check_loss(const LossCase& c, Device device = Device::cpu) {
  const int64_t rows = 4;
  Loss loss(c.kind);
  std::vector<float> pred = random_values(rows * c.cols, 11);
  for (auto& p : pred) p *= 2.0f;
  std::vector<int32_t> labels(rows);
  std::vector<float> values(static_cast<size_t>(rows * c.cols));
  for (int64_t r = 0; r < rows; ++r)
    labels[static_cast<size_t>(r)] = static_cast<int32_t>((r * 7 + 1) % std::max<int64_t>(2, c.cols));
  auto tv = random_values(rows * c.cols, 12);
  for (int64_t i = 0; i < rows * c.cols; ++i) values[static_cast<size_t>(i)] = tv[static_cast<size_t>(i)];
  if (c.targets == LossCase::soft)  // rows of a probability distribution
    for (int64_t r = 0; r < rows; ++r) {
      float s = 0;
      for (int64_t j = 0; j < c.cols; ++j)
        s += values[static_cast<size_t>(r * c.cols + j)] = std::fabs(values[static_cast<size_t>(r * c.cols + j)]);
      for (int64_t j = 0; j < c.cols; ++j) values[static_cast<size_t>(r * c.cols + j)] /= s;
    }
  if (c.kind == LossKind::binary_cross_entropy && c.targets == LossCase::values)
    for (auto& v : values) v = v > 0 ? 1.0f : 0.0f;
  // Targets, predictions and stats on the device; predictions are uploaded before each evaluation.
  DeviceMemory label_mem(labels.size() * sizeof(int32_t), device);
  copy_memory(label_mem.data(), device, labels.data(), Device::cpu, labels.size() * sizeof(int32_t));
  Tensor value_mem = Tensor::zeros({rows * c.cols}, device);
  upload(values, value_mem);
  Targets t;
  if (c.targets == LossCase::labels) t.labels = static_cast<const int32_t*>(label_mem.data());
  if (c.targets == LossCase::values || c.targets == LossCase::soft) t.values = value_mem.data();

  Tensor p = Tensor::zeros(Shape{rows, c.cols}, device);
  upload(pred, p);
  Tensor d;
  Tensor stats = Tensor::zeros({num_loss_stats}, device);
  const float scale = 0.25f;
  loss.evaluate(p, t, scale, &d, stats.data());
  CHECK(host_values(stats)[stat_count] == rows);
  std::vector<float> analytic = host_values(d);
  for (auto& a : analytic) a /= scale;
  auto value = [&] {
    upload(pred, p);
    stats.fill(0.0f);
    loss.evaluate(p, t, 1.0f, nullptr, stats.data());
    return static_cast<double>(host_values(stats)[stat_loss]);
  };
  check_coordinates(c.name, pred.data(), analytic.data(), rows * c.cols, value, 1e-3);
}

const std::vector<LossCase>& loss_cases() {
  static const std::vector<LossCase> cases = {
      {"mse 1 output", LossKind::mean_squared_error, 1, LossCase::values},
      {"mse 3 outputs", LossKind::mean_squared_error, 3, LossCase::values},
      {"bce labels", LossKind::binary_cross_entropy, 1, LossCase::labels},
      {"bce multi-label targets", LossKind::binary_cross_entropy, 3, LossCase::values},
      {"softmax cross-entropy labels", LossKind::softmax_cross_entropy, 5, LossCase::labels},
      {"softmax cross-entropy soft targets", LossKind::softmax_cross_entropy, 4, LossCase::soft},
      {"multiclass hinge", LossKind::multiclass_hinge, 4, LossCase::labels},
      {"prediction entropy", LossKind::prediction_entropy, 5, LossCase::none},
  };
  return cases;
}

}  // namespace

TEST_CASE("every layer's gradients match finite differences", "[models][gradcheck]") {
  for (const auto& c : layer_cases()) {
    DYNAMIC_SECTION(c.name) { check_layer(c); }
  }
}

TEST_CASE("every loss's gradient matches finite differences", "[models][gradcheck]") {
  for (const auto& c : loss_cases()) {
    DYNAMIC_SECTION(c.name) { check_loss(c); }
  }
}

// Distillation is a kernel the trainer calls on its own (no LossKind): checked on the kernel, with
// a row labelled -1 (no loss, zero gradient) and both terms weighted.
void check_distillation(Device device) {
  const int64_t rows = 4, cols = 5;
  std::vector<float> student = random_values(rows * cols, 31), teacher = random_values(rows * cols, 32);
  for (auto& v : student) v *= 3.0f;
  for (auto& v : teacher) v *= 3.0f;
  const std::vector<int32_t> labels = {2, -1, 0, 4};
  DeviceMemory label_mem(labels.size() * sizeof(int32_t), device);
  copy_memory(label_mem.data(), device, labels.data(), Device::cpu, labels.size() * sizeof(int32_t));
  const auto* y = static_cast<const int32_t*>(label_mem.data());
  Tensor s = Tensor::zeros(Shape{rows, cols}, device), t = Tensor::zeros(Shape{rows, cols}, device);
  Tensor d = Tensor::zeros(Shape{rows, cols}, device), stats = Tensor::zeros({num_loss_stats}, device);
  upload(teacher, t);
  KernelBackend& k = kernels(device);
  for (float temperature : {1.0f, 2.5f}) {
    upload(student, s);
    const float scale = 0.25f;
    k.distillation_loss(rows, cols, temperature, 0.4f, s.data(), t.data(), y, scale, d.data(), stats.data());
    std::vector<float> analytic = host_values(d);
    for (auto& a : analytic) a /= scale;
    auto value = [&] {
      upload(student, s);
      stats.fill(0.0f);
      k.distillation_loss(rows, cols, temperature, 0.4f, s.data(), t.data(), y, 1.0f, nullptr, stats.data());
      return static_cast<double>(host_values(stats)[stat_loss]);
    };
    check_coordinates(temperature == 1.0f ? "distillation T 1" : "distillation T 2.5", student.data(), analytic.data(),
                      rows * cols, value, 1e-3);
  }
}

TEST_CASE("the distillation loss's gradient matches finite differences", "[models][gradcheck]") {
  check_distillation(Device::cpu);
}

TEST_CASE("the distillation loss's gradient matches finite differences on CUDA", "[cuda][gradcheck]") {
  if (!cuda_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  check_distillation(Device::cuda);
}

TEST_CASE("every layer's gradients match finite differences on CUDA", "[cuda][gradcheck]") {
  if (!cuda_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  for (const auto& c : layer_cases()) {
    DYNAMIC_SECTION(c.name) { check_layer(c, Device::cuda); }
  }
}

TEST_CASE("every loss's gradient matches finite differences on CUDA", "[cuda][gradcheck]") {
  if (!cuda_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  for (const auto& c : loss_cases()) {
    DYNAMIC_SECTION(c.name) { check_loss(c, Device::cuda); }
  }
}

TEST_CASE("every GAN loss term's gradient matches finite differences", "[models][gradcheck][gan]") {
  const int64_t rows = 8;
  // Scores on both sides of the hinge kinks at +-1, never within 0.2 of them.
  std::vector<float> scores = random_values(rows, 21);
  for (int64_t i = 0; i < rows; ++i) {
    float& v = scores[static_cast<size_t>(i)];
    v = i % 2 ? 0.8f * v : (v > 0 ? 1.2f + v : -1.2f + v);
  }
  for (GanLossKind kind : {GanLossKind::minimax, GanLossKind::non_saturating, GanLossKind::wasserstein,
                           GanLossKind::hinge, GanLossKind::least_squares})
    for (GanRole role : {GanRole::real, GanRole::fake, GanRole::generator}) {
      const std::string name = GanLoss::name(kind) + (role == GanRole::real   ? " real"
                                                      : role == GanRole::fake ? " fake"
                                                                              : " generator");
      DYNAMIC_SECTION(name) {
        GanLoss loss(kind);
        Tensor p = Tensor::view(scores.data(), Shape{rows, 1});
        Tensor d;
        float stats[num_loss_stats] = {};
        const float scale = 0.125f;
        loss.evaluate(role, p, scale, &d, stats);
        CHECK(stats[stat_count] == rows);
        std::vector<float> analytic(d.data(), d.data() + d.numel());
        for (auto& a : analytic) a /= scale;
        auto value = [&] {
          float s[num_loss_stats] = {};
          loss.evaluate(role, p, 1.0f, nullptr, s);
          return static_cast<double>(s[stat_loss]);
        };
        check_coordinates(name.c_str(), scores.data(), analytic.data(), rows, value, 1e-3);
      }
    }
  // Spot values of the objectives at s = 0 (D(x) = 1/2): log 2 per term for the cross-entropies.
  float s0 = 0.0f, st[num_loss_stats] = {};
  GanLoss(GanLossKind::minimax).evaluate(GanRole::real, Tensor::view(&s0, Shape{1, 1}), 1.0f, nullptr, st);
  CHECK(st[stat_loss] == Approx(std::log(2.0)));
  GanLoss(GanLossKind::minimax).evaluate(GanRole::generator, Tensor::view(&s0, Shape{1, 1}), 1.0f, nullptr, st);
  CHECK(st[stat_loss] == Approx(0.0).margin(1e-6));  // log 2 - log 2
  GanLoss(GanLossKind::hinge).evaluate(GanRole::fake, Tensor::view(&s0, Shape{1, 1}), 1.0f, nullptr, st);
  CHECK(st[stat_loss] == Approx(1.0));
}

TEST_CASE("parameter gradients accumulate across backward calls", "[models]") {
  auto seq = std::make_unique<Sequential>();
  seq->add(std::make_unique<Dense>(3, true, Activation::tanh));
  seq->add(std::make_unique<Dense>(2));
  Model model(std::move(seq), Shape{4}, Device::cpu);
  model.initialize(1);
  std::vector<float> xv = random_values(8, 4);
  Tensor x = Tensor::view(xv.data(), Shape{2, 4});
  StepContext ctx;
  const Tensor& out = model.forward(x, ctx);
  Tensor dout = Tensor::zeros(out.shape());
  dout.fill(1.0f);
  model.zero_grad();
  model.backward(dout, ctx);
  std::vector<float> once(model.grads().data(), model.grads().data() + model.flat_size());
  model.backward(dout, ctx);
  for (int64_t i = 0; i < model.flat_size(); ++i)
    CHECK(model.grads().data()[i] == Approx(2 * once[static_cast<size_t>(i)]));
  double norm = 0;
  for (float g : once) norm += g * g;
  CHECK(norm > 0.0);
}

TEST_CASE("dropout masks depend on the global sample index, not on the batch split", "[models]") {
  Dropout layer(0.5f);
  ParamRegistry reg;
  layer.setup(Shape{64}, reg);
  std::vector<float> ones(4 * 64, 1.0f);
  Tensor x = Tensor::view(ones.data(), Shape{4, 64});
  Tensor whole, first, second;
  StepContext ctx{Mode::train, 5, 17, 0, nullptr, true};
  layer.forward(x, whole, ctx);
  layer.forward(x.rows_view(0, 2), first, ctx);
  ctx.row0 = 2;
  layer.forward(x.rows_view(2, 4), second, ctx);
  int64_t kept = 0;
  for (int64_t i = 0; i < 128; ++i) {
    CHECK(whole.data()[i] == first.data()[i]);
    CHECK(whole.data()[128 + i] == second.data()[i]);
  }
  for (int64_t i = 0; i < 256; ++i) kept += whole.data()[i] != 0.0f;
  CHECK(kept > 96);  // about half of 256 kept
  CHECK(kept < 160);
  for (int64_t i = 0; i < 256; ++i) CHECK((whole.data()[i] == 0.0f || whole.data()[i] == 2.0f));
}

TEST_CASE("per-step cross-entropy scores every step and skips padding (-1)", "[models][gradcheck]") {
  // 2 samples of 3 steps over 4 classes; one padding step per sample.
  const int64_t rows = 2, steps = 3, classes = 4;
  std::vector<float> pred = random_values(rows * steps * classes, 21);
  const std::vector<int32_t> labels = {1, -1, 3, 0, 2, -1};
  Loss loss(LossKind::softmax_cross_entropy);
  Tensor p = Tensor::zeros(Shape{rows, steps, classes});
  upload(pred, p);
  Targets t{labels.data(), nullptr, steps};
  Tensor d;
  float stats[num_loss_stats] = {};
  loss.evaluate(p, t, 1.0f, &d, stats);
  CHECK(stats[stat_count] == 4.0f);  // the padding steps are not counted
  std::vector<float> analytic = host_values(d);
  for (int64_t j = 0; j < classes; ++j) {  // and get no gradient
    CHECK(analytic[static_cast<size_t>(1 * classes + j)] == 0.0f);
    CHECK(analytic[static_cast<size_t>(5 * classes + j)] == 0.0f);
  }
  auto value = [&] {
    upload(pred, p);
    float s[num_loss_stats] = {};
    loss.evaluate(p, t, 1.0f, nullptr, s);
    return static_cast<double>(s[stat_loss]);
  };
  check_coordinates("per-step logits", pred.data(), analytic.data(), rows * steps * classes, value, 1e-3);
  // An output that is not [steps, classes] per sample is refused.
  Tensor wrong = Tensor::zeros(Shape{rows, 5});
  CHECK_THROWS_WITH(loss.evaluate(wrong, t, 1.0f, nullptr, stats), Catch::Contains("per-step targets"));
}
