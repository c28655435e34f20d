// The measured CPU plan (models/kernels/cpu/CpuPlan.h): its text form, the choice every product
// gets from an installed plan, measuring with a per-machine cache that a second start reuses,
// and the time budget.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "models/core/Error.h"
#include "models/kernels/cpu/CpuPlan.h"
#include "support/TestSupport.h"

using namespace dptrain;
using namespace dptrain::test;

namespace {

// Installs a plan for a scope and clears it after.
struct PlanScope {
  explicit PlanScope(const CpuPlan& p) { cpu_plan_install(p); }
  ~PlanScope() { cpu_plan_install({}); }
};

const std::vector<ProductKey> small_keys = {
    {ProductKind::dense_forward, false, false, false, 32, 96, 256},
    {ProductKind::dense_input_grad, false, false, false, 32, 96, 256},
    {ProductKind::gemm, true, false, true, 256, 96, 32},
    {ProductKind::gemm_serial, false, false, false, 16, 100, 75},
};

}  // namespace

TEST_CASE("a CPU plan's text round-trips, and a bad line names its source and line", "[models][cpu][plan]") {
  CpuPlan p;
  p.machine = "Some CPU|threads=2";
  p.entries = {{{ProductKind::gemm, true, false, true, 7, 8, 9}, {CpuEngine::onednn, false}, "measured: onednn 1 ms"},
               {{ProductKind::dense_forward, false, false, false, 128, 784, 1024}, {CpuEngine::openblas, true}, ""}};
  const CpuPlan q = CpuPlan::parse(p.to_text(), "test");
  CHECK(q.machine == p.machine);
  REQUIRE(q.entries.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    CHECK(q.entries[i].key == p.entries[i].key);
    CHECK(q.entries[i].choice == p.entries[i].choice);
    CHECK(q.entries[i].how == p.entries[i].how);
  }
  CHECK(p.entries[0].key.text() == "gemm TN+ 7x8x9");
  CHECK(p.entries[1].choice.text() == "openblas-t");
  CHECK_THROWS_WITH(CpuPlan::parse("machine\tx\ngemm NN 1x2x3\tfastest\n", "run.h5: /strings/cpu_products"),
                    Catch::Contains("run.h5: /strings/cpu_products") && Catch::Contains("line 2"));
  CHECK_THROWS_WITH(CpuPlan::parse("gemm NN 0x2x3\topenblas\n", "src"), Catch::Contains("line 1"));
}

TEST_CASE("an installed plan decides each product: exact, the nearest batch of a layer, else its main engine",
          "[models][cpu][plan]") {
  if (cpu_engine() != CpuEngine::automatic) {
    WARN("DPTRAIN_CPU_ENGINE forces an engine: plans are not consulted");
    return;
  }
  const CpuEngine other = cpu_engine_available(CpuEngine::onednn) ? CpuEngine::onednn : CpuEngine::openblas;
  CpuPlan p;
  p.entries = {
      {{ProductKind::dense_forward, false, false, false, 64, 300, 500}, {other, true}, ""},
      {{ProductKind::dense_forward, false, false, false, 512, 300, 500}, {CpuEngine::openblas, false}, ""},
      {{ProductKind::gemm, true, false, true, 5000, 300, 64}, {other, false}, ""},
  };
  PlanScope scope(p);
  CHECK(cpu_product_choice(p.entries[0].key) == p.entries[0].choice);
  CHECK(cpu_product_choice(p.entries[2].key) == p.entries[2].choice);
  // Evaluation batches of the same layer take the choice for the nearest number of rows.
  CHECK(cpu_product_choice({ProductKind::dense_forward, false, false, false, 100, 300, 500}) == p.entries[0].choice);
  CHECK(cpu_product_choice({ProductKind::dense_forward, false, false, false, 400, 300, 500}) == p.entries[1].choice);
  // An unplanned product takes the engine that does most of the plan's work.
  const ProductChoice unplanned = cpu_product_choice({ProductKind::gemm, false, false, false, 3, 5, 7});
  CHECK(unplanned.engine == (other == CpuEngine::onednn ? CpuEngine::onednn : CpuEngine::openblas));
  {
    // Without a plan everything is OpenBLAS.
    PlanScope none({});
    CHECK(cpu_product_choice(p.entries[0].key).engine == CpuEngine::openblas);
  }
}

TEST_CASE(
    "measuring picks the fastest candidate (or its majority engine within 5 %), caches it per machine, and a second "
    "start reuses it",
    "[models][cpu][plan]") {
  TempDir dir;
  const std::string cache = dir.file("cache/cpu-products.tsv");
  std::string warn;
  const CpuPlan first = cpu_plan_measure(small_keys, 10.0, cache, &warn);
  CHECK(warn.empty());
  REQUIRE(first.entries.size() == small_keys.size());
  int multi = 0;
  for (const PlanEntry& e : first.entries) {
    INFO(e.key.text() << ": " << e.how);
    const auto candidates = cpu_product_candidates(e.key);
    CHECK(std::find(candidates.begin(), candidates.end(), e.choice) != candidates.end());
    if (candidates.size() > 1) {
      ++multi;
      // "measured: <fastest> t ms, <next> t ms, ...": every candidate timed, the choice first, or
      // one of the engine that won most work, within 5 % of the fastest, said so.
      const bool fastest = e.how.rfind("measured: " + e.choice.text() + " ", 0) == 0;
      const bool majority = e.how.find("; took " + e.choice.text() + ", within 5 %") != std::string::npos;
      CHECK(fastest != majority);
      for (const ProductChoice& c : candidates) CHECK(e.how.find(" " + c.text() + " ") != std::string::npos);
    }
  }
  CHECK(first.measured == multi);
  CHECK(first.cached == 0);
  const std::string text = read_text(cache);
  CHECK(text.find(cpu_machine_id() + "\t") == 0);

  // A second start on this machine measures nothing and decides the same.
  const CpuPlan second = cpu_plan_measure(small_keys, 10.0, cache, &warn);
  CHECK(second.measured == 0);
  CHECK(second.cached == multi);
  for (size_t i = 0; i < first.entries.size(); ++i) CHECK(second.entries[i].choice == first.entries[i].choice);
  CHECK(read_text(cache) == text);  // nothing appended

  // A damaged line is skipped with a note naming the cache, and the rest still counts.
  write_text(cache, text + cpu_machine_id() + "\tnot a decision\n");
  warn.clear();
  const CpuPlan third = cpu_plan_measure(small_keys, 10.0, cache, &warn);
  CHECK(third.cached == multi);
  CHECK(warn.find(cache) != std::string::npos);
}

TEST_CASE("past the time budget products take the main engine, and that decision is cached too",
          "[models][cpu][plan]") {
  TempDir dir;
  const std::string cache = dir.file("cpu-products.tsv");
  const CpuPlan p = cpu_plan_measure(small_keys, 0.0, cache);
  CHECK(p.measured == 0);
  for (const PlanEntry& e : p.entries) {
    INFO(e.key.text());
    CHECK(e.choice.engine == CpuEngine::openblas);
  }
  // A repeated start decides the same, so its bits match the first run's.
  const CpuPlan again = cpu_plan_measure(small_keys, 10.0, cache);
  CHECK(again.measured == 0);
  for (size_t i = 0; i < p.entries.size(); ++i) CHECK(again.entries[i].choice == p.entries[i].choice);
  // No cache (an unwritable place): measured afresh, with a note.
  std::string warn;
  cpu_plan_measure(small_keys, 0.0, "/proc/no-such-dir/cpu-products.tsv", &warn);
  CHECK(warn.find("/proc/no-such-dir/cpu-products.tsv") != std::string::npos);
}
