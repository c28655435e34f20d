// Train-step throughput of the reference models (bench/README.md), our side of the comparison
// with peers/torch_train.py: the same shapes, loss, optimizer and random inputs, built from the
// models/ layers and the trainer's Optimizer, timed over N steps after a warmup.
//
//   dptrain_train_bench --model mlp|cnn [--threads 1] [--batch 128] [--steps 200] [--warmup 20]
//                       [--rss]   (also report resident memory after the first step, after the
//                                  warmup, after a tenth of the timed steps and at the end)
//                       [--device cpu|cuda] [--cuda-graphs]  (on the GPU: the batch, labels and
//                                  loss sums live on the device; with --cuda-graphs the timed steps
//                                  replay one CUDA graph of forward + backward + optimizer. The
//                                  clock stops after the device has finished.)
// Prints one line: samples_per_s=<float> samples_per_cpu_s=<float> step_ms=<float> gflops=<float>
//                  cpu_gflops=<float> (the cpu_ figures over the process's CPU time, all threads)
//                  [rss_first_step_kb=.. rss_start_kb=.. rss_tenth_kb=.. rss_end_kb=..] loss=<float>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "models/Model.h"
#include "models/core/Philox.h"
#include "models/kernels/cpu/CpuKernels.h"
#include "models/kernels/cuda/CudaBackend.h"
#include "models/layers/Conv2d.h"
#include "models/layers/Dense.h"
#include "models/layers/Pool2d.h"
#include "models/layers/Sequential.h"
#include "models/losses/Loss.h"
#include "trainer/optim/Optimizer.h"

using namespace dptrain;

namespace {

struct Options {
  std::string model = "mlp";
  int threads = 1;
  int64_t batch = 128, steps = 200, warmup = 20;
  bool rss = false;
  std::string device = "cpu";
  bool graphs = false;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "dptrain_train_bench: %s\nusage: dptrain_train_bench --model mlp|cnn [--threads N] [--batch N] "
               "[--steps N] [--warmup N] [--rss] [--device cpu|cuda] [--cuda-graphs]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + a).c_str());
      return argv[++i];
    };
    if (a == "--model")
      o.model = value();
    else if (a == "--threads")
      o.threads = std::atoi(value().c_str());
    else if (a == "--batch")
      o.batch = std::atoll(value().c_str());
    else if (a == "--steps")
      o.steps = std::atoll(value().c_str());
    else if (a == "--warmup")
      o.warmup = std::atoll(value().c_str());
    else if (a == "--rss")
      o.rss = true;
    else if (a == "--device")
      o.device = value();
    else if (a == "--cuda-graphs")
      o.graphs = true;
    else
      usage(("unknown option " + a).c_str());
  }
  if (o.model != "mlp" && o.model != "cnn") usage("--model must be mlp or cnn");
  if (o.device != "cpu" && o.device != "cuda") usage("--device must be cpu or cuda");
  if (o.graphs && o.device != "cuda") usage("--cuda-graphs needs --device cuda");
  if (o.threads < 1 || o.batch < 1 || o.steps < 1 || o.warmup < 0) usage("numbers must be positive");
  return o;
}

// Resident set size of this process in KiB (VmRSS of /proc/self/status), read into a stack
// buffer so that measuring allocates nothing itself.
long rss_kb() {
  char buf[4096];
  int fd = ::open("/proc/self/status", O_RDONLY);
  if (fd < 0) return -1;
  ssize_t len = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (len <= 0) return -1;
  buf[len] = 0;
  const char* at = std::strstr(buf, "VmRSS:");
  return at ? std::atol(at + 6) : -1;
}

// The reference models of peers/torch_train.py, and the multiply-add FLOPs of one training step
// (forward, weight gradients, input gradients except the first layer's): 2 * m * n * k per GEMM.
struct Reference {
  std::unique_ptr<Sequential> net;
  Shape sample;
  double flops_per_sample = 0.0;
};

Reference make_reference(const std::string& kind) {
  Reference r;
  r.net = std::make_unique<Sequential>();
  auto dense_flops = [](double in, double out, bool first) { return 2.0 * in * out * (first ? 2 : 3); };
  if (kind == "mlp") {
    r.sample = Shape{784};
    r.net->add(std::make_unique<Dense>(1024, true, Activation::relu));
    r.net->add(std::make_unique<Dense>(1024, true, Activation::relu));
    r.net->add(std::make_unique<Dense>(10));
    r.flops_per_sample = dense_flops(784, 1024, true) + dense_flops(1024, 1024, false) + dense_flops(1024, 10, false);
  } else {
    r.sample = Shape{1, 28, 28};
    Conv2dOptions c1;
    c1.out_channels = 32;
    c1.kernel_h = c1.kernel_w = 5;
    c1.padding = 2;
    c1.activation = Activation::relu;
    Conv2dOptions c2 = c1;
    c2.out_channels = 64;
    r.net->add(std::make_unique<Conv2d>(c1));
    r.net->add(std::make_unique<Pool2d>(Pool2d::Kind::max, 2));
    r.net->add(std::make_unique<Conv2d>(c2));
    r.net->add(std::make_unique<Pool2d>(Pool2d::Kind::max, 2));
    r.net->add(std::make_unique<Dense>(1024, true, Activation::relu));
    r.net->add(std::make_unique<Dense>(10));
    // A convolution is a GEMM of [out_channels, in_channels * k * k] by [.., out_h * out_w].
    double conv1 = 2.0 * 32 * 25 * 28 * 28, conv2 = 2.0 * 64 * 32 * 25 * 14 * 14;
    r.flops_per_sample = conv1 * 2 + conv2 * 3 + dense_flops(64 * 7 * 7, 1024, false) + dense_flops(1024, 10, false);
  }
  return r;
}

// CPU time of the whole process (all threads): on one thread, the time it actually ran, which
// leaves out the time the scheduler gave to other processes on a shared machine.
double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  set_cpu_threads(o.threads);

  const Device device = o.device == "cuda" ? Device::cuda : Device::cpu;
  if (device == Device::cuda && !cuda_available()) {
    std::fprintf(stderr, "dptrain_train_bench: not measured: no GPU (no usable CUDA device in this build/machine)\n");
    return 3;
  }
  KernelBackend& k = kernels(device);

  Reference ref = make_reference(o.model);
  Model model(std::move(ref.net), ref.sample, device);
  model.initialize(0);
  Loss loss(LossKind::softmax_cross_entropy);
  OptimConfig oc;
  oc.kind = OptimizerKind::momentum;  // SGD lr 0.01 momentum 0.9, as the peer
  oc.lr = 0.01;
  oc.momentum = 0.9;
  Optimizer optimizer(oc, model.flat_size(), device);

  // Random inputs: standard normal features and uniform labels, as torch.randn / randint.
  Shape batch_shape = ref.sample.with_batch(o.batch);
  Tensor host_x = Tensor::zeros(batch_shape);
  Philox rng(0, RandomPurpose::synth, 0);
  for (int64_t i = 0; i < host_x.numel(); ++i) host_x.data()[i] = rng.normal();
  std::vector<int32_t> labels(static_cast<size_t>(o.batch));
  for (auto& l : labels) l = static_cast<int32_t>(rng.below(10));
  // The batch, its labels and the loss sums on the model's device (one upload: the peer also
  // trains on one fixed random batch).
  Tensor x = Tensor::zeros(batch_shape, device);
  x.copy_from(host_x);
  DeviceMemory label_mem(labels.size() * sizeof(int32_t), device);
  copy_memory(label_mem.data(), device, labels.data(), Device::cpu, labels.size() * sizeof(int32_t));
  const int32_t* label_data = static_cast<const int32_t*>(label_mem.data());
  Tensor stats = Tensor::zeros({num_loss_stats}, device);
  Tensor dout;

  auto body = [&](uint64_t t) {
    StepContext ctx{Mode::train, 0, t, 0, nullptr, true};
    model.zero_grad();
    const Tensor& out = model.forward(x, ctx);
    loss.evaluate(out, {label_data, nullptr}, 1.0f / static_cast<float>(o.batch), &dout, stats.data());
    model.backward(dout, ctx);
    optimizer.step(model.params(), model.grads(), 0.01f);
  };
  // With --cuda-graphs every step after the first (which allocates the workspaces) replays one
  // captured step: shapes and scalars are the same every step.
  CudaGraph graph;
  auto step = [&](uint64_t t) {
    if (o.graphs && t > 0)
      graph.run(0, [&] { body(t); });
    else
      body(t);
  };

  uint64_t t = 0;
  step(t++);
  k.synchronize();
  const long rss_first = rss_kb();
  for (int64_t i = 1; i < o.warmup; ++i) step(t++);
  k.synchronize();
  const long rss_start = rss_kb();
  const double cpu_start = cpu_seconds();
  auto start = std::chrono::steady_clock::now();
  long rss_mid = -1;
  for (int64_t i = 0; i < o.steps; ++i) {
    step(t++);
    if (o.rss && i + 1 == o.steps / 10) rss_mid = rss_kb();
  }
  k.synchronize();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double cpu_secs = cpu_seconds() - cpu_start;
  const long rss_end = rss_kb();

  double samples_per_s = static_cast<double>(o.steps * o.batch) / secs;
  const double flops = static_cast<double>(o.steps * o.batch) * ref.flops_per_sample;
  std::printf("samples_per_s=%.1f samples_per_cpu_s=%.1f step_ms=%.3f gflops=%.2f cpu_gflops=%.2f", samples_per_s,
              static_cast<double>(o.steps * o.batch) / cpu_secs, 1e3 * secs / static_cast<double>(o.steps),
              flops / secs / 1e9, flops / cpu_secs / 1e9);
  if (o.rss)
    std::printf(" rss_first_step_kb=%ld rss_start_kb=%ld rss_tenth_kb=%ld rss_end_kb=%ld", rss_first, rss_start,
                rss_mid, rss_end);
  float sums[num_loss_stats];
  copy_memory(sums, Device::cpu, stats.data(), device, sizeof sums);
  std::printf(" loss=%.4f", sums[stat_loss] / std::max(1.0f, sums[stat_count]));
  if (device == Device::cuda) std::printf(" device=\"%s\" graphs=%d", cuda_device_name(), o.graphs ? 1 : 0);
  std::printf("\n");
  return 0;
}
