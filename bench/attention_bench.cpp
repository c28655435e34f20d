// Attention against sequence length (bench/06-transformer): forward + backward of one
// MultiHeadAttention layer (models/layers/MultiHeadAttention.h; causal, the layout of PyTorch's
// nn.MultiheadAttention) on a batch of random sequences [n, T, width], input gradient included, as
// the peer peers/torch_attention.py does with nn.MultiheadAttention.
//
//   dptrain_attention_bench [--seq 64,128,256,512] [--batch 8] [--width 128] [--heads 4]
//                           [--dropout 0.1] [--threads 1] [--reps 10] [--plan-seconds 1]
//
// Per T, one step of a first instance of the layer records its GEMMs and the measured engine plan
// is installed (as `dptrain train` with cpu_engine = "auto" does; cached in $DPTRAIN_CACHE_DIR);
// that instance is dropped, and a second one runs 2 warm-up steps, then `reps` steps timed one by
// one. Prints one line per T:
//   seq=T ms=<median wall ms per step> cpu_ms=<median process CPU ms per step>
//   attn_buffers=<k> attn_bytes=<bytes> saved_bytes=<bytes> rss_peak_growth_mib=<MiB>
// attn_bytes: the layer's members of n heads T T floats, which it keeps from step to step:
// probs_ (the weights, kept for backward), dropped_ (after dropout, kept for backward, only with
// dropout), dprobs_ and dscores_ (backward's scratch). saved_bytes: the part of them forward keeps
// for backward (probs_ and dropped_). rss_peak_growth_mib: the process's peak resident set (VmHWM,
// reset through /proc/self/clear_refs once the inputs exist, the plan is installed and free heap
// pages are returned by malloc_trim) over the resident set at that point, i.e. everything the
// second instance, its parameters and its steps added at their peak; meaningful when
// one T runs per process (bench/06-transformer runs it so), as the peer measures it.
#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench/BenchSupport.h"
#include "bench/BenchTiming.h"
#include "models/Model.h"
#include "models/core/Philox.h"
#include "models/kernels/cpu/CpuKernels.h"
#include "models/kernels/cpu/CpuPlan.h"
#include "models/layers/MultiHeadAttention.h"

using namespace dptrain;

namespace {

// A field of /proc/self/status in kB ("VmRSS", "VmHWM"), -1 if absent.
long status_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(key) + ":";
  while (std::getline(f, line))
    if (line.rfind(prefix, 0) == 0) return std::atol(line.c_str() + prefix.size());
  return -1;
}

// Resets VmHWM to the current resident set (Linux: "5" into clear_refs); false if refused.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> v;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) v.push_back(std::atoll(item.c_str()));
  return v;
}

void fill_normal(Tensor& t, uint32_t stream) {
  Philox rng(0, RandomPurpose::synth, stream);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = rng.normal();
}

}  // namespace

int main(int argc, char** argv) {
  const bench::Options o(argc, argv,
                         {{"seq", "64,128,256,512"},
                          {"batch", "8"},
                          {"width", "128"},
                          {"heads", "4"},
                          {"dropout", "0.1"},
                          {"threads", "1"},
                          {"reps", "10"},
                          {"plan-seconds", "1"}},
                         "dptrain_attention_bench [--seq 64,128,256,512] [--batch 8] [--width 128] [--heads 4] "
                         "[--dropout 0.1] [--threads 1] [--reps 10] [--plan-seconds 1]");
  const int64_t n = o.num("batch"), D = o.num("width"), H = o.num("heads"), reps = o.num("reps");
  const float p = static_cast<float>(o.real("dropout"));
  if (n < 1 || D < 1 || H < 1 || reps < 1) {
    std::fprintf(stderr, "dptrain_attention_bench: numbers must be positive\n");
    return 2;
  }
  set_cpu_threads(static_cast<int>(o.num("threads")));

  for (const int64_t T : parse_list(o.str("seq"))) {
    const Shape sample{T, D};
    Tensor x = Tensor::zeros(sample.with_batch(n)), dout = Tensor::zeros(sample.with_batch(n)), din;
    fill_normal(x, 1);
    fill_normal(dout, 2);
    auto make_model = [&] {
      auto m = std::make_unique<Model>(std::make_unique<MultiHeadAttention>(H, true, p), sample, Device::cpu);
      m->initialize(0);
      return m;
    };
    uint64_t t = 0;
    auto step = [&](Model& model) {
      const StepContext ctx{.mode = Mode::train, .seed = 0, .step = t++, .row0 = 0};
      model.zero_grad();
      model.forward(x, ctx);
      model.backward(dout, ctx, &din);
    };
    // The engine plan, from one step of a first instance that records the products; the instance
    // and the measurement's buffers are gone (and their pages returned) before the measured one.
    if (cpu_engine() == CpuEngine::automatic) {
      auto first = make_model();
      cpu_plan_record(true);
      step(*first);
      cpu_plan_record(false);
      const CpuPlan measured = cpu_plan_measure(cpu_plan_recorded(), o.real("plan-seconds"), cpu_plan_cache_path());
      cpu_plan_install(measured);
      std::fprintf(stderr, "T=%lld cpu engines: %s\n", static_cast<long long>(T), measured.summary().c_str());
    }
    din = Tensor();
    malloc_trim(0);
    const long rss_before = status_kb("VmRSS");
    const bool peak_reset = reset_peak_rss();
    {
      auto model = make_model();
      for (int i = 0; i < 2; ++i) step(*model);
      std::vector<double> wall, cpu;
      for (int64_t r = 0; r < reps; ++r) {
        const double c0 = bench::cpu_seconds();
        const auto w0 = bench::Clock::now();
        step(*model);
        wall.push_back(bench::seconds_since(w0));
        cpu.push_back(bench::cpu_seconds() - c0);
      }
      const int64_t buffers = p > 0.0f ? 4 : 3, saved = p > 0.0f ? 2 : 1;
      const double per_buffer = static_cast<double>(n * H * T * T) * sizeof(float);
      const long peak = status_kb("VmHWM");
      char growth[32] = "nan";
      if (peak_reset && peak > 0 && rss_before > 0)
        std::snprintf(growth, sizeof growth, "%.3f", static_cast<double>(peak - rss_before) / 1024.0);
      std::printf(
          "seq=%lld ms=%.3f cpu_ms=%.3f attn_buffers=%lld attn_bytes=%.0f saved_bytes=%.0f "
          "rss_peak_growth_mib=%s\n",
          static_cast<long long>(T), 1e3 * bench::median(wall), 1e3 * bench::median(cpu),
          static_cast<long long>(buffers), per_buffer * static_cast<double>(buffers),
          per_buffer * static_cast<double>(saved), growth);
      std::fflush(stdout);
    }
    cpu_plan_install(CpuPlan{});
  }
  return 0;
}
