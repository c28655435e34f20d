// Hot paths allocate nothing once the first step has sized the workspaces: a training step
// (forward, loss, backward, optimizer) and the reader handing out batches. Counted by replacing
// the global operator new in this test binary.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <new>

#include "models/Model.h"
#include "models/layers/Conv2d.h"
#include "models/layers/Dense.h"
#include "models/layers/Dropout.h"
#include "models/layers/Pool2d.h"
#include "models/layers/Sequential.h"
#include "models/losses/Loss.h"
#include "storage/dataset/Synthesize.h"
#include "storage/reader/ShardedReader.h"
#include "support/TestSupport.h"
#include "trainer/optim/Optimizer.h"

namespace {
std::atomic<int64_t> g_allocations{0};
}

// Every form of new/delete is replaced, all on malloc/free, so AddressSanitizer sees matching
// pairs whichever form a library uses.
namespace {
void* counted_alloc(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
}  // namespace

void* operator new(std::size_t n) {
  if (void* p = counted_alloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

using namespace dptrain;

TEST_CASE("a training step allocates nothing after the first", "[models][memory]") {
  auto seq = std::make_unique<Sequential>();
  Conv2dOptions c;
  c.out_channels = 4;
  c.padding = 1;
  c.activation = Activation::relu;
  seq->add(std::make_unique<Conv2d>(c));
  seq->add(std::make_unique<Pool2d>(Pool2d::Kind::max, 2));
  seq->add(std::make_unique<Dense>(16, true, Activation::relu));
  seq->add(std::make_unique<Dropout>(0.3f));
  seq->add(std::make_unique<Dense>(3));
  Model model(std::move(seq), Shape{1, 8, 8}, Device::cpu);
  model.initialize(1);
  Loss loss(LossKind::softmax_cross_entropy);
  OptimConfig oc;
  oc.kind = OptimizerKind::adam;
  Optimizer opt(oc, model.flat_size(), Device::cpu);
  Tensor x = Tensor::zeros(Shape{16, 1, 8, 8}), dout;
  std::vector<int32_t> labels(16, 1);
  float stats[num_loss_stats] = {};
  int64_t ready_calls = 0;
  std::function<void(int64_t)> on_ready = [&](int64_t) { ++ready_calls; };
  auto step = [&](uint64_t t) {
    StepContext ctx{Mode::train, 3, t, 0, &on_ready, true};
    model.zero_grad();
    const Tensor& out = model.forward(x, ctx);
    loss.evaluate(out, {labels.data(), nullptr}, 1.0f / 16, &dout, stats);
    model.backward(dout, ctx);
    opt.step(model.params(), model.grads(), 0.01f);
  };
  step(0);
  int64_t before = g_allocations.load();
  for (uint64_t t = 1; t <= 20; ++t) step(t);
  CHECK(g_allocations.load() - before == 0);
  CHECK(ready_calls > 0);
  CHECK(stats[stat_count] == 21 * 16);
}

TEST_CASE("the reader hands out batches without allocating", "[storage][memory]") {
  test::TempDir dir;
  SynthOptions s;
  s.kind = "blobs";
  s.n = 500;
  write_dataset_file(dir.file("b.h5"), synthesize(s));
  for (int64_t budget : {int64_t{1} << 30, int64_t{0}}) {  // in memory, then streamed from the file
    DYNAMIC_SECTION("memory budget " << budget) {
      auto file = std::make_shared<const DatasetFile>(dir.file("b.h5"));
      std::vector<int64_t> rows(500);
      for (int64_t i = 0; i < 500; ++i) rows[static_cast<size_t>(i)] = i;
      ReaderOptions o;
      o.global_batch = 32;
      o.memory_budget_bytes = budget;
      o.prefetch = 1;  // the producer works in lockstep, so its allocations would be seen too
      ShardedReader reader(file, rows, o);
      for (int i = 0; i < 20; ++i) reader.next();  // past an epoch boundary (16 steps)
      int64_t before = g_allocations.load();
      for (int i = 0; i < 40; ++i) reader.next();
      CHECK(g_allocations.load() - before == 0);
    }
  }
}
