// Our side of bench/10-reader: random-minibatch throughput of ShardedReader (global shuffle) on a
// dataset file, and a real training loop of the reference MLP fed by it, to show whether the
// prefetch thread keeps the step from waiting on I/O.
//
//   dptrain_reader_bench --mode read  --file F [--budget-mb 0] [--batch 128] [--batches 200]
//       prints rows_per_s= MB_per_s= wait_s= in_memory= load_s=
//       (budget 0 streams rows from the file each batch; a budget holding the file loads it first,
//        load_s, and the throughput is then timed from memory)
//   dptrain_reader_bench --mode train --file F [--budget-mb 0] [--steps 200] [--warmup 10]
//       prints step_samples_per_s= (MLP steps on one fixed batch: the consumption rate)
//              fed_samples_per_s= wait_s= loop_s= wait_share= first_wait_s=
#include <cstdio>
#include <memory>
#include <numeric>
#include <vector>

#include "bench/BenchSupport.h"
#include "models/kernels/cpu/CpuKernels.h"
#include "models/losses/Loss.h"
#include "storage/reader/ShardedReader.h"

using namespace dptrain;
using namespace dptrain::bench;

namespace {

std::unique_ptr<ShardedReader> open_reader(const std::shared_ptr<const DatasetFile>& file, const Options& o) {
  std::vector<int64_t> rows(static_cast<size_t>(file->rows()));
  std::iota(rows.begin(), rows.end(), 0);
  ReaderOptions ro;
  ro.global_batch = o.num("batch");
  ro.seed = static_cast<uint64_t>(o.num("seed"));
  ro.shuffle = Shuffle::global;
  ro.prefetch = static_cast<int>(o.num("prefetch"));
  ro.memory_budget_bytes = o.num("budget-mb") << 20;
  return std::make_unique<ShardedReader>(file, std::move(rows), ro);
}

int read_mode(const Options& o) {
  auto file = std::make_shared<const DatasetFile>(o.str("file"));
  const int64_t batches = o.num("batches");
  // A streaming reader starts prefetching when it is built, so the clock starts before that;
  // an in-memory one is timed after its one-time load, which is reported on its own.
  auto t0 = Clock::now();
  auto reader = open_reader(file, o);
  const double load_s = reader->in_memory() ? seconds_since(t0) : 0.0;
  if (reader->in_memory()) t0 = Clock::now();
  int64_t rows = 0;
  for (int64_t i = 0; i < batches; ++i) rows += reader->next().rows();
  const double secs = seconds_since(t0);
  const double bytes = static_cast<double>(rows * file->row_size()) * sizeof(float);
  std::printf("rows_per_s=%.1f MB_per_s=%.1f wait_s=%.4f in_memory=%d load_s=%.3f rows=%lld\n",
              static_cast<double>(rows) / secs, bytes / secs / 1e6, reader->stats().wait_seconds,
              reader->in_memory() ? 1 : 0, load_s, static_cast<long long>(rows));
  return 0;
}

int train_mode(const Options& o) {
  set_cpu_threads(static_cast<int>(o.num("threads")));
  auto file = std::make_shared<const DatasetFile>(o.str("file"));
  if (file->row_size() != 784) {
    std::fprintf(stderr, "dptrain_reader_bench: the reference MLP needs 784 features, %s has %lld\n",
                 o.str("file").c_str(), static_cast<long long>(file->row_size()));
    return 2;
  }
  auto model = make_reference_mlp();
  Optimizer optimizer(reference_sgd(), model->flat_size(), Device::cpu);
  Loss loss(LossKind::softmax_cross_entropy);
  Tensor dout;
  float stats[num_loss_stats] = {};
  uint64_t t = 0;
  auto step = [&](const float* x, int64_t rows, const int32_t* labels) {
    // Forward only reads its input; the view is non-const because Tensor views are.
    Tensor in = Tensor::view(const_cast<float*>(x), Shape{rows, 784});
    StepContext ctx{Mode::train, 0, t++, 0, nullptr, true};
    model->zero_grad();
    const Tensor& out = model->forward(in, ctx);
    loss.evaluate(out, {labels, nullptr}, 1.0f, &dout, stats);
    model->backward(dout, ctx);
    optimizer.step(model->params(), model->grads(), 0.01f, mean_gradient_scale(model->grads(), rows, 0.0));
  };
  const int64_t steps = o.num("steps"), warmup = o.num("warmup"), batch = o.num("batch");

  // The consumption rate: the same steps on one fixed batch, no reader running.
  std::vector<float> fixed(static_cast<size_t>(batch * 784));
  std::vector<int32_t> fixed_labels(static_cast<size_t>(batch));
  file->read_rows(0, batch, fixed.data());
  for (int64_t i = 0; i < batch; ++i) fixed_labels[static_cast<size_t>(i)] = file->labels()[static_cast<size_t>(i)];
  for (int64_t i = 0; i < warmup; ++i) step(fixed.data(), batch, fixed_labels.data());
  auto t0 = Clock::now();
  for (int64_t i = 0; i < steps; ++i) step(fixed.data(), batch, fixed_labels.data());
  const double fixed_s = seconds_since(t0);

  // The same loop fed by the reader. The first batch waits for the prefetch thread to start
  // (reported apart); the steady state is the `steps` after the warmup.
  auto reader = open_reader(file, o);
  const Batch* b = &reader->next();
  const double first_wait = reader->stats().wait_seconds;
  step(b->x.data(), b->rows(), b->labels);
  for (int64_t i = 1; i < warmup; ++i) {
    b = &reader->next();
    step(b->x.data(), b->rows(), b->labels);
  }
  const double wait0 = reader->stats().wait_seconds;
  int64_t rows = 0;
  t0 = Clock::now();
  for (int64_t i = 0; i < steps; ++i) {
    b = &reader->next();
    step(b->x.data(), b->rows(), b->labels);
    rows += b->rows();
  }
  const double loop_s = seconds_since(t0);
  const double wait = reader->stats().wait_seconds - wait0;
  std::printf(
      "step_samples_per_s=%.1f fed_samples_per_s=%.1f wait_s=%.4f loop_s=%.3f wait_share=%.5f first_wait_s=%.4f "
      "in_memory=%d loss=%.4f\n",
      static_cast<double>(steps * batch) / fixed_s, static_cast<double>(rows) / loop_s, wait, loop_s, wait / loop_s,
      first_wait, reader->in_memory() ? 1 : 0, stats[stat_loss] / std::max(1.0f, stats[stat_count]));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o(argc, argv,
            {{"mode", "read"},
             {"file", ""},
             {"budget-mb", "0"},
             {"batch", "128"},
             {"batches", "200"},
             {"prefetch", "2"},
             {"seed", "0"},
             {"steps", "200"},
             {"warmup", "10"},
             {"threads", "1"}},
            "dptrain_reader_bench --mode read|train --file F [--budget-mb MB] [--batch N] [--batches N] "
            "[--prefetch N] [--steps N] [--warmup N] [--threads N]");
  try {
    return o.str("mode") == "train" ? train_mode(o) : read_mode(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dptrain_reader_bench: %s\n", e.what());
    return 1;
  }
}
