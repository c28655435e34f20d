// The measured plan: which engine (CpuEngine.h) computes each distinct product of a model on the
// machine where the job runs (docs/design.md rule 8). The kernels ask cpu_product_choice() for
// every product. With `cpu_engine = "auto"` the trainer records the products of the first
// training step, rank 0 times each under every engine that can compute it (within a time budget,
// largest first), keeps the fastest, caches the decision per machine (CPU model, threads, BLAS
// kernels) and broadcasts the plan; every rank installs it before the second step. Checkpoints
// carry the plan, so a resumed run computes with the same engines (bitwise, even on another
// machine); the cache makes a repeated run on the same machine take the same decisions, so timing
// noise never changes a run's bits. Until a plan is installed, and for products it lacks (other
// batch sizes in evaluation), a product takes the plan's engine for the same layer, else OpenBLAS.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <vector>

#include "models/kernels/cpu/CpuEngine.h"

namespace dptrain {

enum class ProductKind : uint8_t {
  dense_forward,     // y = act(x w^T + b): m rows, n inputs, k outputs
  dense_input_grad,  // dx = dz w: m rows, n inputs, k outputs
  gemm,              // C = op(A) op(B) (+ C), m x n x k, threaded over the process's threads
  gemm_serial,       // the same, one thread (convolutions run one per sample on each thread)
};

struct ProductKey {
  ProductKind kind = ProductKind::gemm;
  bool trans_a = false, trans_b = false, accumulate = false;  // accumulate: beta = 1
  int64_t m = 0, n = 0, k = 0;
  auto operator<=>(const ProductKey&) const = default;
  double flops() const { return 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k); }
  // "dense_forward 256x2048x2048", "gemm TN+ 2048x2048x256" (+: accumulates into C)
  std::string text() const;
};

// How a product is computed: the engine and, for the dense forward, whether it computes y^T and
// transposes back (fusing bias and ReLU into the transpose) or y directly.
struct ProductChoice {
  CpuEngine engine = CpuEngine::openblas;
  bool transposed = false;
  auto operator<=>(const ProductChoice&) const = default;
  std::string text() const;  // "onednn", "openblas-t", "unpacked-t"
};

// The choice for one product: the forced engine (cpu_engine() != automatic), else the installed
// plan's, else the default. Records the key while recording is on. Cheap: a short search.
ProductChoice cpu_product_choice(const ProductKey& key);
// The engines that can compute `key` on this build, in a fixed order.
std::vector<ProductChoice> cpu_product_candidates(const ProductKey& key);

struct PlanEntry {
  ProductKey key;
  ProductChoice choice;
  std::string how;  // "measured: onednn 1.02 ms, openblas 2.11 ms, ..." or "cached" or "budget spent"
};

struct CpuPlan {
  std::vector<PlanEntry> entries;  // sorted by key
  std::string machine;             // cpu_machine_id() of the machine that measured it
  double measure_seconds = 0.0;    // spent measuring at this start (0: all from the cache)
  int measured = 0, cached = 0, unmeasured = 0;

  // One line per entry ("<key>\t<choice>\t<how>"), after a "machine\t<id>" line; parse() reads it
  // back and fails as bad input naming `source` and the line.
  std::string to_text() const;
  static CpuPlan parse(const std::string& text, const std::string& source);
  // "11 products: onednn 9, openblas-t 2 (measured 7 in 0.84 s, 4 from the cache)"
  std::string summary() const;
};

// Recording: while on, cpu_product_choice() collects every key it is asked for.
void cpu_plan_record(bool on);
std::vector<ProductKey> cpu_plan_recorded();

// Times the candidates of every key (largest first) until `budget_seconds` is spent; keys already
// decided in the cache file (when `cache_path` is not empty) take the cached choice, and new
// decisions are appended to it, under a file lock so that processes starting together on one
// machine share one decision per product. Keys left when the budget is spent take the engine that
// won the most measured work, and that decision is cached too. A cache that cannot be read or
// written is reported on `warn` and skipped.
CpuPlan cpu_plan_measure(const std::vector<ProductKey>& keys, double budget_seconds, const std::string& cache_path,
                         std::string* warn = nullptr);

// Installs a plan (an empty one clears it); entries naming an engine this build lacks fall back
// to OpenBLAS, and `warn` says so.
void cpu_plan_install(const CpuPlan& plan, std::string* warn = nullptr);
const CpuPlan& cpu_plan_installed();

// The machine a decision holds for: CPU model, the decision rule's version, thread count, the
// OpenBLAS kernels in use, the engines built in. Decisions taken under another id are not reused
// from the cache.
std::string cpu_machine_id();
// The cache file: $DPTRAIN_CACHE_DIR, else $XDG_CACHE_HOME/dptrain, else ~/.cache/dptrain, and
// "cpu-products.tsv" in it.
std::string cpu_plan_cache_path();

}  // namespace dptrain
