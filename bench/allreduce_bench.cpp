// Our side of bench/20-allreduce, run under mpirun: the bucketed gradient all-reduce
// (GradientReducer over the MPI communicator, driven as the trainer drives it) of one buffer, and
// data-parallel training of the reference MLP through the real step (models/ layers, the
// reducer, the Optimizer), with the global batch split across ranks as the trainer splits it.
//
//   dptrain_allreduce_bench --mode reduce [--floats 3330000] [--iters 10] [--rounds 8] [--bucket-mb 25]
//       rank 0 prints ms= (per call) algbw_GBps= busbw_GBps= buckets=, and over MPI the peer's
//       peer_ms= peer_busbw_GBps= (blocking MPI_Allreduce); each the median over the rounds
//   dptrain_allreduce_bench --mode train [--global-batch 128] [--steps 100] [--warmup 10]
//                           [--bucket-mb 25] [--overlap 1] [--threads 1]
//       rank 0 prints samples_per_s= (all ranks together) step_ms= wait_ms= (finish() per step)
//       compute_ms= (forward, loss, backward) optimizer_ms= buckets= ranks=. --overlap 0 gives backward no ready hook,
//       so every bucket starts after backward (with a large --bucket-mb: one blocking all-reduce of the whole
//       gradient).
#include <algorithm>
#include <cstdio>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "bench/BenchSupport.h"
#include "comm/Communicator.h"
#include "comm/GradientReducer.h"
#include "comm/backend/BackendRegistry.h"
#include "models/core/Philox.h"
#include "models/kernels/cpu/CpuKernels.h"
#include "models/losses/Loss.h"
#include "storage/reader/ShardedReader.h"

#ifdef DPTRAIN_BENCH_MPI
#include <mpi.h>
#endif

using namespace dptrain;
using namespace dptrain::bench;

namespace {

int64_t bucket_bytes(const Options& o) { return static_cast<int64_t>(o.real("bucket-mb") * 1024 * 1024); }

// Ours and the peer (raw blocking MPI_Allreduce in place, the floor any all-reduce over MPI sits
// on) in the same processes on the same buffer, in alternating blocks of `iters` calls, so that
// load from other tenants, which drifts over seconds, hits both sides alike.
int reduce_mode(Communicator& comm, const Options& o) {
  const int64_t n = o.num("floats"), iters = o.num("iters"), rounds = o.num("rounds");
  std::vector<float> grads(static_cast<size_t>(n), 1.0f);
  GradientReducer reducer(comm, grads.data(), n, {0}, bucket_bytes(o));
  auto ours = [&](int64_t step) {
    reducer.begin_step(step);
    reducer.ready_from(0);  // the whole buffer is final, as after backward
    reducer.finish();
  };
#ifdef DPTRAIN_BENCH_MPI
  int mpi_up = 0;
  MPI_Initialized(&mpi_up);
  const bool with_peer = mpi_up != 0;
  auto peer = [&] {
    if (MPI_Allreduce(MPI_IN_PLACE, grads.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) !=
        MPI_SUCCESS)
      throw std::runtime_error("MPI_Allreduce failed");
  };
#else
  const bool with_peer = false;
  auto peer = [] {};
#endif
  std::vector<double> ours_s, peer_s;
  for (int64_t i = 0; i < 3; ++i) {
    ours(i);
    if (with_peer) peer();
  }
  for (int64_t round = 0; round < rounds; ++round)
    for (int side = 0; side < (with_peer ? 2 : 1); ++side) {
      std::fill(grads.begin(), grads.end(), 1.0f);  // sums double each call: keep them finite
      comm.barrier();
      auto t0 = Clock::now();
      for (int64_t i = 0; i < iters; ++i) side == 0 ? ours(3 + round * iters + i) : peer();
      (side == 0 ? ours_s : peer_s).push_back(seconds_since(t0) / static_cast<double>(iters));
    }
  if (comm.rank() == 0) {
    const double ranks = comm.size(), bus = 2.0 * (ranks - 1) / ranks;
    const double dt = median(ours_s), alg = static_cast<double>(n) * 4.0 / dt / 1e9;
    std::printf("ms=%.3f algbw_GBps=%.2f busbw_GBps=%.2f buckets=%zu floats=%lld", dt * 1e3, alg, alg * bus,
                reducer.buckets().size(), static_cast<long long>(n));
    if (with_peer) {
      const double pt = median(peer_s), palg = static_cast<double>(n) * 4.0 / pt / 1e9;
      std::printf(" peer_ms=%.3f peer_busbw_GBps=%.2f", pt * 1e3, palg * bus);
    }
    std::printf("\n");
  }
  return 0;
}

int train_mode(Communicator& comm, const Options& o) {
  set_cpu_threads(static_cast<int>(o.num("threads")));
  auto model = make_reference_mlp();
  Optimizer optimizer(reference_sgd(), model->flat_size(), Device::cpu);
  Loss loss(LossKind::softmax_cross_entropy);
  std::vector<int64_t> offsets;
  for (const auto& p : model->param_infos()) offsets.push_back(p.offset);
  GradientReducer reducer(comm, model->grads().data(), model->flat_size(), offsets, bucket_bytes(o));
  const std::function<void(int64_t)> on_ready = [&](int64_t offset) { reducer.ready_from(offset); };
  const bool overlap = o.num("overlap") != 0;

  // This rank's slice of the global batch (ShardedReader::rank_slice), random as the peer's.
  const int64_t global = o.num("global-batch");
  auto [begin, end] = ShardedReader::rank_slice(global, comm.rank(), comm.size());
  const int64_t rows = end - begin;
  Tensor x = Tensor::zeros(Shape{rows, 784});
  Philox rng(static_cast<uint64_t>(comm.rank()), RandomPurpose::synth, 0);
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = rng.normal();
  std::vector<int32_t> labels(static_cast<size_t>(rows));
  for (auto& l : labels) l = static_cast<int32_t>(rng.below(10));
  Tensor dout;
  float stats[num_loss_stats] = {};

  double waited = 0.0, computed = 0.0, updated = 0.0;
  auto step = [&](int64_t t) {
    auto t0 = Clock::now();
    StepContext ctx{Mode::train, 0, static_cast<uint64_t>(t), begin, overlap ? &on_ready : nullptr, true};
    model->zero_grad();
    reducer.begin_step(t);
    const Tensor& out = model->forward(x, ctx);
    // Mean over the global batch: each rank scales by 1 / global, the all-reduce sums.
    loss.evaluate(out, {labels.data(), nullptr}, 1.0f, &dout, stats);
    model->backward(dout, ctx);
    computed += seconds_since(t0);
    reducer.finish();
    waited += reducer.last_wait_seconds();
    auto t1 = Clock::now();
    optimizer.step(model->params(), model->grads(), 0.01f, mean_gradient_scale(model->grads(), global, 0.0));
    updated += seconds_since(t1);
  };
  const int64_t warmup = o.num("warmup"), steps = o.num("steps");
  for (int64_t t = 0; t < warmup; ++t) step(t);
  comm.barrier();
  waited = computed = updated = 0.0;
  auto t0 = Clock::now();
  for (int64_t t = 0; t < steps; ++t) step(warmup + t);
  comm.barrier();
  const double secs = seconds_since(t0);
  const double per_step = 1e3 / static_cast<double>(steps);
  if (comm.rank() == 0)
    std::printf(
        "samples_per_s=%.1f step_ms=%.3f wait_ms=%.3f compute_ms=%.3f optimizer_ms=%.3f buckets=%zu ranks=%d "
        "rows_per_rank=%lld floats=%lld\n",
        static_cast<double>(global * steps) / secs, secs * per_step, comm.size() > 1 ? waited * per_step : 0.0,
        computed * per_step, updated * per_step, reducer.buckets().size(), comm.size(), static_cast<long long>(rows),
        static_cast<long long>(model->flat_size()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o(argc, argv,
            {{"mode", "reduce"},
             {"floats", "3330000"},
             {"iters", "10"},
             {"rounds", "8"},
             {"bucket-mb", "25"},
             {"global-batch", "128"},
             {"steps", "100"},
             {"warmup", "10"},
             {"overlap", "1"},
             {"threads", "1"},
             {"backend", "auto"},
             {"port", "29400"}},
            "dptrain_allreduce_bench --mode reduce|train [--floats N] [--iters N] [--rounds N] [--bucket-mb MB] "
            "[--global-batch N] [--steps N] [--warmup N] [--overlap 0|1] [--threads N] [--backend auto|gloo --port P]\n"
            "  --backend gloo (under mpirun): ours runs over Gloo (rendezvous on 127.0.0.1:P), the peer stays "
            "MPI_Allreduce");
  try {
    auto comm = make_communicator("auto", 120.0);
    if (o.str("backend") == "gloo") {
      // MPI stays up for the peer; ours gets a Gloo communicator over the same ranks.
      RankEnvironment env;
      env.source = "bench";
      env.rank = comm->rank();
      env.world = comm->size();
      env.rendezvous_host = "127.0.0.1";
      env.rendezvous_port = static_cast<uint16_t>(o.num("port"));
      env.token = "bench";
      auto gloo = make_gloo_communicator(env, 120.0);
      return o.str("mode") == "train" ? train_mode(*gloo, o) : reduce_mode(*gloo, o);
    }
    return o.str("mode") == "train" ? train_mode(*comm, o) : reduce_mode(*comm, o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dptrain_allreduce_bench: %s\n", e.what());
    return 1;
  }
}
