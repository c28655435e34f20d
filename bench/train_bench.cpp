// Train-step throughput of the reference models (bench/README.md), our side of the comparison
// with peers/torch_train.py: the same shapes, loss, optimizer and random inputs, built from the
// models/ layers and the trainer's Optimizer, timed over N steps after a warmup.
//
//   dptrain_train_bench --model mlp|cnn [--threads 1] [--batch 128] [--steps 200] [--warmup 20]
//                       [--rss]   (also report resident memory after the first step, after the
//                                  warmup, after a tenth of the timed steps and at the end)
//                       [--roofline ROUNDS] [--sgemm-sizes 512,1024,2048] [--sgemm-seconds 0.25]
//                                 (CPU: split the timed steps into ROUNDS blocks and, before each,
//                                  time square SGEMMs at each size (OpenBLAS through the backend,
//                                  and the dense layers' unpacked product); prints the medians over
//                                  rounds of the step's GFLOP/s, of the best SGEMM's GFLOP/s and of
//                                  their per-round ratio. Alternating in one
//                                  process, both sides of each ratio see the same machine load.)
//                       [--device cpu|cuda] [--cuda-graphs]  (on the GPU: the batch, labels and
//                                  loss sums live on the device; with --cuda-graphs the timed steps
//                                  replay one CUDA graph of forward + backward + optimizer. The
//                                  clock stops after the device has finished.)
// Prints one line: samples_per_s=<float> samples_per_cpu_s=<float> step_ms=<float> gflops=<float>
//                  cpu_gflops=<float> (the cpu_ figures over the process's CPU time, all threads)
//                  [rss_first_step_kb=.. rss_start_kb=.. rss_tenth_kb=.. rss_end_kb=..]
//                  [roofline_step_gflops=.. roofline_peak_gflops=.. roofline_ratio=.. (CPU clock)
//                   roofline_wall_step_gflops=.. roofline_wall_peak_gflops=.. roofline_wall_ratio=..]
//                  timer_ns_per_step=<float> timer_share=<float> (what the trainer's per-step phase
//                  timing, trainer/StepTimer.h, costs: a step's begin and four marks, against step_ms)
//                  loss=<float>
#include <algorithm>
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

#include "bench/BenchTiming.h"
#include "models/Model.h"
#include "models/core/Philox.h"
#include "models/kernels/cpu/CpuInternal.h"
#include "models/kernels/cpu/CpuKernels.h"
#include "models/kernels/cpu/CpuPlan.h"
#include "models/kernels/cuda/CudaBackend.h"
#include "models/layers/Conv2d.h"
#include "models/layers/Dense.h"
#include "models/layers/Pool2d.h"
#include "models/layers/Sequential.h"
#include "models/losses/Loss.h"
#include "trainer/StepTimer.h"
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
  int64_t roofline_rounds = 0;
  std::vector<int64_t> sgemm_sizes = {512, 1024, 2048};
  double sgemm_seconds = 0.25;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "dptrain_train_bench: %s\nusage: dptrain_train_bench --model mlp|cnn [--threads N] [--batch N] "
               "[--steps N] [--warmup N] [--rss] [--roofline ROUNDS] [--sgemm-sizes a,b] [--sgemm-seconds s] "
               "[--device cpu|cuda] [--cuda-graphs]\n",
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
    else if (a == "--roofline")
      o.roofline_rounds = std::atoll(value().c_str());
    else if (a == "--sgemm-seconds")
      o.sgemm_seconds = std::atof(value().c_str());
    else if (a == "--sgemm-sizes") {
      o.sgemm_sizes.clear();
      const std::string list = value();
      for (const char* p = list.c_str(); *p;) {
        char* end;
        o.sgemm_sizes.push_back(std::strtoll(p, &end, 10));
        if (end == p || o.sgemm_sizes.back() < 1) usage("--sgemm-sizes takes positive sizes separated by commas");
        p = *end ? end + 1 : end;
      }
    } else if (a == "--device")
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
  if (o.roofline_rounds < 0 || o.roofline_rounds > o.steps) usage("--roofline takes 1 to --steps rounds");
  if (o.roofline_rounds && o.device != "cpu") usage("--roofline measures the CPU backend");
  if (o.sgemm_sizes.empty() || !(o.sgemm_seconds > 0.0)) usage("--sgemm-sizes and --sgemm-seconds must be positive");
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

using bench::cpu_seconds;
using bench::median;

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The roof: square row-major SGEMMs through the backend's product under every engine this build
// has (OpenBLAS, oneDNN, our unpacked product), on the backend's buffers, each size and engine
// timed for `seconds` after one warmup call; the roof is the best of them.
class SquareSgemm {
 public:
  explicit SquareSgemm(const std::vector<int64_t>& sizes) {
    for (int64_t n : sizes) {
      Operands ops{n, Tensor::zeros({n, n}), Tensor::zeros({n, n}), Tensor::zeros({n, n})};
      for (int64_t i = 0; i < n * n; ++i) {
        ops.a.data()[i] = static_cast<float>(i % 7) * 0.25f - 0.75f;
        ops.b.data()[i] = static_cast<float>(i % 5) * 0.125f - 0.25f;
      }
      operands_.push_back(std::move(ops));
    }
  }
  // Best GFLOP/s over the sizes, on the CPU clock and on the wall clock.
  void measure(double seconds, double& cpu_best, double& wall_best) {
    cpu_best = wall_best = 0.0;
    for (Operands& o : operands_)
      for (CpuEngine engine : {CpuEngine::openblas, CpuEngine::onednn, CpuEngine::unpacked}) {
        if (!cpu_engine_available(engine)) continue;
        auto call = [&] {
          cpu_gemm_as(engine, false, false, o.n, o.n, o.n, 1.0f, o.a.data(), o.n, o.b.data(), o.n, 0.0f, o.c.data(),
                      o.n);
        };
        const bench::Rate rate =
            bench::gflops_over(seconds, 2.0 * static_cast<double>(o.n * o.n) * static_cast<double>(o.n), 1, call);
        cpu_best = std::max(cpu_best, rate.cpu_gflops);
        wall_best = std::max(wall_best, rate.wall_gflops);
      }
  }

 private:
  struct Operands {
    int64_t n;
    Tensor a, b, c;
  };
  std::vector<Operands> operands_;
};

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

  // As every task (docs/design.md rule 5): gradient sums, divided by the batch in the update.
  const float grad_scale = mean_gradient_scale(model.grads(), o.batch, 0.0);
  auto body = [&](uint64_t t) {
    StepContext ctx{Mode::train, 0, t, 0, nullptr, true};
    model.zero_grad();
    const Tensor& out = model.forward(x, ctx);
    loss.evaluate(out, {label_data, nullptr}, 1.0f, &dout, stats.data());
    model.backward(dout, ctx);
    optimizer.step(model.params(), model.grads(), 0.01f, grad_scale);
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
  // The first step records the model's products and the measured plan (CpuPlan.h) takes over
  // from the second, as in `dptrain train` with cpu_engine = "auto".
  const bool plan = device == Device::cpu && cpu_engine() == CpuEngine::automatic;
  if (plan) cpu_plan_record(true);
  step(t++);
  k.synchronize();
  if (plan) {
    cpu_plan_record(false);
    const CpuPlan p = cpu_plan_measure(cpu_plan_recorded(), 2.0, cpu_plan_cache_path());
    cpu_plan_install(p);
    std::fprintf(stderr, "cpu engines: %s\n", p.summary().c_str());
  }
  const long rss_first = rss_kb();
  for (int64_t i = 1; i < o.warmup; ++i) step(t++);
  k.synchronize();
  const long rss_start = rss_kb();
  // Without --roofline one block of all timed steps; with it, ROUNDS blocks, each after a
  // measurement of the SGEMM roof, and only the blocks' time counts.
  std::unique_ptr<SquareSgemm> roof;
  if (o.roofline_rounds) roof = std::make_unique<SquareSgemm>(o.sgemm_sizes);
  const int64_t rounds = std::max<int64_t>(1, o.roofline_rounds);
  std::vector<double> step_cpu, step_wall, peak_cpu, peak_wall, ratio_cpu, ratio_wall;
  double secs = 0.0, cpu_secs = 0.0;
  long rss_mid = -1;
  int64_t done = 0;
  for (int64_t r = 0; r < rounds; ++r) {
    if (roof) {
      double c = 0.0, w = 0.0;
      roof->measure(o.sgemm_seconds, c, w);
      peak_cpu.push_back(c);
      peak_wall.push_back(w);
    }
    const int64_t block = o.steps * (r + 1) / rounds - done;
    const double cpu0 = cpu_seconds(), wall0 = wall_seconds();
    for (int64_t i = 0; i < block; ++i, ++done) {
      step(t++);
      if (o.rss && done + 1 == o.steps / 10) rss_mid = rss_kb();
    }
    k.synchronize();
    const double wall_dt = wall_seconds() - wall0, cpu_dt = cpu_seconds() - cpu0;
    secs += wall_dt;
    cpu_secs += cpu_dt;
    if (roof) {
      const double block_flops = static_cast<double>(block * o.batch) * ref.flops_per_sample;
      step_cpu.push_back(block_flops / cpu_dt / 1e9);
      step_wall.push_back(block_flops / wall_dt / 1e9);
      ratio_cpu.push_back(step_cpu.back() / peak_cpu.back());
      ratio_wall.push_back(step_wall.back() / peak_wall.back());
    }
  }
  const long rss_end = rss_kb();

  double samples_per_s = static_cast<double>(o.steps * o.batch) / secs;
  const double flops = static_cast<double>(o.steps * o.batch) * ref.flops_per_sample;
  std::printf("samples_per_s=%.1f samples_per_cpu_s=%.1f step_ms=%.3f gflops=%.2f cpu_gflops=%.2f", samples_per_s,
              static_cast<double>(o.steps * o.batch) / cpu_secs, 1e3 * secs / static_cast<double>(o.steps),
              flops / secs / 1e9, flops / cpu_secs / 1e9);
  if (o.rss)
    std::printf(" rss_first_step_kb=%ld rss_start_kb=%ld rss_tenth_kb=%ld rss_end_kb=%ld", rss_first, rss_start,
                rss_mid, rss_end);
  if (roof)
    std::printf(
        " roofline_step_gflops=%.2f roofline_peak_gflops=%.2f roofline_ratio=%.4f roofline_wall_step_gflops=%.2f "
        "roofline_wall_peak_gflops=%.2f roofline_wall_ratio=%.4f",
        median(step_cpu), median(peak_cpu), median(ratio_cpu), median(step_wall), median(peak_wall),
        median(ratio_wall));
  {
    // The trainer times each step's phases (docs/observability.md): one begin and four marks a step.
    StepTimer timer;
    const int64_t n = 200000;
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < n; ++i) {
      timer.begin(i);
      timer.mark(StepTimer::data);
      timer.mark(StepTimer::compute);
      timer.mark(StepTimer::allreduce);
      timer.mark(StepTimer::optimizer);
    }
    const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / n;
    std::printf(" timer_ns_per_step=%.1f timer_share=%.6f", ns, ns / (1e9 * secs / static_cast<double>(o.steps)));
  }
  float sums[num_loss_stats];
  copy_memory(sums, Device::cpu, stats.data(), device, sizeof sums);
  std::printf(" loss=%.4f", sums[stat_loss] / std::max(1.0f, sums[stat_count]));
  if (device == Device::cuda) std::printf(" device=\"%s\" graphs=%d", cuda_device_name(), o.graphs ? 1 : 0);
  std::printf("\n");
  return 0;
}
