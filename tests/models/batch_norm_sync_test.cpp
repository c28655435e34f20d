// Synchronized batch norm gives N ranks exactly the one-rank result (docs/design.md rule 5), including
// on uneven slices. Two "ranks" run as threads in one process (as xgboost's collective tests do),
// summing through a CrossRankSum over shared memory, and are compared with one model that sees the
// whole batch: outputs, input gradients, summed parameter gradients and running statistics.
#include <catch2/catch.hpp>

#include <barrier>
#include <cmath>
#include <mutex>
#include <thread>

#include "models/Model.h"
#include "models/core/Philox.h"
#include "models/layers/BatchNorm.h"
#include "models/layers/Conv2d.h"
#include "models/layers/Dense.h"
#include "models/layers/Sequential.h"

using namespace dptrain;

namespace {

// Sums over two threads; addition of two values is commutative, so both get identical bits.
class ThreadPairSum final : public CrossRankSum {
 public:
  struct Shared {
    std::barrier<> barrier{2};
    std::mutex mu;
    std::vector<double> total;
  };
  ThreadPairSum(Shared& shared, int rank) : s_(shared), rank_(rank) {}
  void sum(float* data, int64_t count) override { sum_of(data, count); }
  void sum(double* data, int64_t count) override { sum_of(data, count); }
  int calls = 0;

 private:
  template <typename T>
  void sum_of(T* data, int64_t count) {
    s_.barrier.arrive_and_wait();
    if (rank_ == 0) s_.total.assign(static_cast<size_t>(count), 0.0);
    s_.barrier.arrive_and_wait();
    {
      std::lock_guard<std::mutex> lock(s_.mu);
      for (int64_t i = 0; i < count; ++i) s_.total[static_cast<size_t>(i)] += data[i];
    }
    s_.barrier.arrive_and_wait();
    for (int64_t i = 0; i < count; ++i) data[i] = static_cast<T>(s_.total[static_cast<size_t>(i)]);
    s_.barrier.arrive_and_wait();
    ++calls;
  }

  Shared& s_;
  int rank_;
};

std::unique_ptr<Model> make_model(bool sync, bool image) {
  auto seq = std::make_unique<Sequential>();
  if (image) {
    Conv2dOptions c;
    c.out_channels = 3;
    c.padding = 1;
    seq->add(std::make_unique<Conv2d>(c));
  } else {
    seq->add(std::make_unique<Dense>(4));
  }
  seq->add(std::make_unique<BatchNorm>(0.1f, 1e-5f, sync));
  seq->add(std::make_unique<Dense>(2));
  auto m = std::make_unique<Model>(std::move(seq), image ? Shape{2, 4, 4} : Shape{5}, Device::cpu);
  m->initialize(11);
  return m;
}

std::vector<float> draws(int64_t n, uint32_t id) {
  Philox rng(3, RandomPurpose::synth, id);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = 2.0f * rng.normal() + 0.5f;  // a mean away from 0 exercises the statistics
  return v;
}

struct RunResult {
  std::vector<float> out, din, grads, buffers;
};

// Trains `steps` forward/backward passes on rows [begin, end) of the batch; returns the last ones.
RunResult run(Model& model, const std::vector<float>& x, const std::vector<float>& r, int64_t begin, int64_t end,
              CrossRankSum* cross) {
  const Shape sample = model.input_shape();
  const int64_t row = sample.numel(), out_row = 2;
  std::vector<float> xs(x.begin() + begin * row, x.begin() + end * row);
  Tensor xt = Tensor::view(xs.data(), sample.with_batch(end - begin));
  RunResult res;
  for (int step = 0; step < 3; ++step) {
    StepContext ctx{Mode::train, 1, static_cast<uint64_t>(step), begin, nullptr, true, cross};
    model.zero_grad();
    const Tensor& out = model.forward(xt, ctx);
    Tensor dout = Tensor::zeros(out.shape());
    std::copy(r.begin() + begin * out_row, r.begin() + end * out_row, dout.data());
    Tensor din;
    model.backward(dout, ctx, &din);
    res.out.assign(out.data(), out.data() + out.numel());
    res.din.assign(din.data(), din.data() + din.numel());
  }
  res.grads.assign(model.grads().data(), model.grads().data() + model.flat_size());
  res.buffers.assign(model.buffers().data(), model.buffers().data() + model.buffers().numel());
  return res;
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b, size_t offset_b = 0) {
  double d = 0.0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(double(a[i]) - b[offset_b + i]));
  return d;
}

void check_two_ranks_match_one(bool image) {
  const int64_t rows = 7, split = 5;  // uneven slices: 5 and 2 rows
  auto whole = make_model(true, image);
  const int64_t row = whole->input_shape().numel();
  std::vector<float> x = draws(rows * row, 1), r = draws(rows * 2, 2);
  RunResult one = run(*whole, x, r, 0, rows, nullptr);

  ThreadPairSum::Shared shared;
  ThreadPairSum sum0(shared, 0), sum1(shared, 1);
  auto m0 = make_model(true, image), m1 = make_model(true, image);
  RunResult r0, r1;
  std::thread t([&] { r1 = run(*m1, x, r, split, rows, &sum1); });
  r0 = run(*m0, x, r, 0, split, &sum0);
  t.join();
  CHECK(sum0.calls == 3 * 2);  // per step: forward statistics, backward reductions

  // Statistics are summed in double, so the normalized outputs and input gradients agree to the
  // last bit or two; the parameter gradients are float sums of two halves.
  CHECK(max_diff(r0.out, one.out) < 1e-6);
  CHECK(max_diff(r1.out, one.out, static_cast<size_t>(split * 2)) < 1e-6);
  CHECK(max_diff(r0.din, one.din) < 1e-6);
  CHECK(max_diff(r1.din, one.din, static_cast<size_t>(split * row)) < 1e-6);
  std::vector<float> summed(r0.grads);
  for (size_t i = 0; i < summed.size(); ++i) summed[i] += r1.grads[i];
  CHECK(max_diff(summed, one.grads) < 1e-5);
  CHECK(max_diff(r0.buffers, one.buffers) < 1e-6);
  CHECK(max_diff(r1.buffers, one.buffers) < 1e-6);
  double moved = 0.0;  // running statistics did move away from (0, 1)
  for (float b : one.buffers) moved = std::max(moved, std::fabs(double(b)) > 0 ? std::fabs(double(b) - 1.0) : 0.0);
  CHECK(moved > 0.05);

  // Per-rank statistics (sync = false) really differ: the comparison above can fail.
  auto local = make_model(false, image);
  RunResult alone = run(*local, x, r, 0, split, nullptr);
  CHECK(max_diff(alone.out, one.out) > 1e-3);
}

}  // namespace

TEST_CASE("synchronized batch norm: two ranks with uneven slices match one rank (2-D)", "[models][batchnorm]") {
  check_two_ranks_match_one(true);
}

TEST_CASE("synchronized batch norm: two ranks with uneven slices match one rank (1-D)", "[models][batchnorm]") {
  check_two_ranks_match_one(false);
}

TEST_CASE("batch norm in eval mode normalizes with the running statistics", "[models][batchnorm]") {
  BatchNorm bn(1.0f);  // momentum 1: the running statistics become the last batch's
  ParamRegistry reg;
  bn.setup(Shape{2}, reg);
  std::vector<float> params(static_cast<size_t>(reg.size())), grads(params.size());
  std::vector<float> buffers(static_cast<size_t>(reg.buffer_size()));
  reg.bind(params.data(), grads.data(), Device::cpu);
  reg.bind_buffers(buffers.data(), Device::cpu);
  for (const auto& e : reg.entries()) std::fill_n(params.data() + e.offset, 2, e.path == "weight" ? 1.0f : 0.0f);
  std::vector<float> xv = {1, 10, 3, 20, 5, 30};  // channel 0: mean 3, var 4 (unbiased); channel 1: mean 20, var 100
  Tensor x = Tensor::view(xv.data(), Shape{3, 2}), y;
  bn.forward(x, y, StepContext{Mode::train});
  CHECK(y.data()[0] == Approx(-2.0f / std::sqrt(8.0f / 3.0f)).epsilon(1e-4));  // biased variance in train mode
  CHECK(buffers[0] == Approx(3.0f));
  CHECK(buffers[static_cast<size_t>(reg.buffer_entries()[1].offset)] == Approx(4.0f));
  std::vector<float> probe = {5, 30};
  Tensor p = Tensor::view(probe.data(), Shape{1, 2});
  bn.forward(p, y, StepContext{Mode::eval});
  CHECK(y.data()[0] == Approx(1.0f).epsilon(1e-4));  // (5 - 3) / sqrt(4)
  CHECK(y.data()[1] == Approx(1.0f).epsilon(1e-4));  // (30 - 20) / sqrt(100)
}
