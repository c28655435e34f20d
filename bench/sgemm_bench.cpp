// Single-core SGEMM throughput, the roof of the GEMM roofline in bench/RESULTS.md: the OpenBLAS we
// link (cblas_sgemm), the CPU backend's gemm (which may route to another engine) and the unpacked
// product the dense layers use (dptrain-gemm:unpacked, where AVX-512 is there), on square
// row-major products, each timed for a fixed wall time after a warmup.
//
//   dptrain_sgemm_bench [--threads 1] [--sizes 1024,2048] [--seconds 1.0]
// Prints one line per engine and size: engine=<name> m=<n> n=<n> k=<n> gflops=<float> cpu_gflops=<float>
// (cpu_gflops: over the process's CPU time, which leaves out time other processes had the core)
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "bench/BenchTiming.h"
#include "models/core/Tensor.h"
#include "models/kernels/cpu/CpuInternal.h"
#include "models/kernels/cpu/CpuKernels.h"

using namespace dptrain;

int main(int argc, char** argv) {
  int threads = 1;
  double seconds = 1.0;
  std::vector<int64_t> sizes = {1024, 2048};
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--threads") {
      threads = std::atoi(argv[i + 1]);
    } else if (a == "--seconds") {
      seconds = std::atof(argv[i + 1]);
    } else if (a == "--sizes") {
      std::vector<int64_t> parsed;
      for (const char* p = argv[i + 1]; *p;) {
        char* end;
        parsed.push_back(std::strtoll(p, &end, 10));
        p = *end ? end + 1 : end;
      }
      sizes = std::move(parsed);
    } else {
      std::fprintf(stderr, "usage: dptrain_sgemm_bench [--threads N] [--sizes a,b] [--seconds s]\n");
      return 2;
    }
  }
  set_cpu_threads(threads);
  for (int64_t n : sizes) {
    std::vector<float> a(static_cast<size_t>(n * n)), b(a.size()), c(a.size());
    for (size_t i = 0; i < a.size(); ++i) {
      a[i] = static_cast<float>(i % 7) * 0.25f - 0.75f;
      b[i] = static_cast<float>(i % 5) * 0.125f - 0.25f;
    }
    // The backend's rows multiply the same values held in the backend's own buffers, as layers'
    // tensors are (2 MiB aligned, on transparent huge pages from 2 MiB up).
    Tensor ta = Tensor::zeros({n, n}), tb = Tensor::zeros({n, n}), tc = Tensor::zeros({n, n});
    std::copy(a.begin(), a.end(), ta.data());
    std::copy(b.begin(), b.end(), tb.data());
    // Raw cblas_sgemm first, then the backend's product under each engine it has.
    const CpuEngine engines[] = {CpuEngine::automatic, CpuEngine::openblas, CpuEngine::onednn, CpuEngine::unpacked};
    for (CpuEngine engine : engines) {
      if (!cpu_engine_available(engine)) continue;
      auto call = [&] {
        if (engine == CpuEngine::automatic)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(n), static_cast<blasint>(n),
                      static_cast<blasint>(n), 1.0f, a.data(), static_cast<blasint>(n), b.data(),
                      static_cast<blasint>(n), 0.0f, c.data(), static_cast<blasint>(n));
        else
          cpu_gemm_as(engine, false, false, n, n, n, 1.0f, ta.data(), n, tb.data(), n, 0.0f, tc.data(), n);
      };
      const bench::Rate rate =
          bench::gflops_over(seconds, 2.0 * static_cast<double>(n) * static_cast<double>(n * n), 2, call);
      std::printf("engine=%s%s m=%lld n=%lld k=%lld gflops=%.2f cpu_gflops=%.2f\n",
                  engine == CpuEngine::automatic ? "" : "dptrain-gemm:",
                  engine == CpuEngine::automatic ? "openblas" : cpu_engine_name(engine), static_cast<long long>(n),
                  static_cast<long long>(n), static_cast<long long>(n), rate.wall_gflops, rate.cpu_gflops);
    }
  }
  return 0;
}
