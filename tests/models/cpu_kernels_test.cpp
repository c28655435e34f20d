// The CPU backend's fast paths against their references, on random shapes: the threaded GEMM
// against one serial call, the optimizer loops against their formulas, im2col/col2im and max
// pooling against their definitions, and the batched convolution against the reference
// (KernelBackend's im2col + gemm per sample) and a direct convolution in double precision.
// Where the fast path keeps the reference's summation order the check is bitwise.
#include <omp.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "models/Model.h"
#include "models/core/Philox.h"
#include "models/kernels/cpu/CpuEngine.h"
#include "models/kernels/cpu/CpuInternal.h"
#include "models/kernels/cpu/CpuKernels.h"
#include "models/layers/Conv2d.h"
#include "models/layers/Dense.h"
#include "models/layers/Pool2d.h"
#include "models/layers/Sequential.h"
#include "models/losses/Loss.h"

using namespace dptrain;

namespace {

std::vector<float> random_vector(int64_t n, uint32_t id, float lo = -1.0f, float hi = 1.0f) {
  Philox rng(99, RandomPurpose::synth, id);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = lo + (hi - lo) * rng.uniform();
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

double max_rel_error(const std::vector<float>& a, const std::vector<double>& ref) {
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::fabs(a[i] - ref[i]) / std::max(1.0, std::fabs(ref[i])));
  return worst;
}

// Sets the OpenMP thread count for a scope.
class Threads {
 public:
  explicit Threads(int n) : before_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~Threads() { omp_set_num_threads(before_); }

 private:
  int before_;
};

// Asks for a CPU engine for a scope (DPTRAIN_CPU_ENGINE, when set, still wins).
class EngineScope {
 public:
  explicit EngineScope(CpuEngine e) { set_cpu_engine(e); }
  ~EngineScope() { set_cpu_engine(CpuEngine::automatic); }
};

float activate(Activation act, float v) {
  switch (act) {
    case Activation::relu:
      return v > 0.0f ? v : 0.0f;
    case Activation::tanh:
      return std::tanh(v);
    default:
      return v;
  }
}

struct ConvCase {
  int64_t n, channels, height, width, out_channels, kernel_h, kernel_w, stride, pad, dilation, groups;
  Activation act;
  bool bias;
};

Conv2dSpec spec_of(const ConvCase& c) {
  Conv2dGeometry g{c.channels, c.height, c.width, c.kernel_h, c.kernel_w, c.stride,
                   c.stride,   c.pad,    c.pad,   c.dilation, c.dilation};
  return {g, c.out_channels, c.groups};
}

// Direct convolution in double: out[s, o, y, x] (before activation), and the three gradients.
struct DirectConv {
  std::vector<double> y, dx, dw, db;
};

DirectConv direct_conv(const ConvCase& c, const std::vector<float>& x, const std::vector<float>& w,
                       const std::vector<float>& b, const std::vector<float>& dz) {
  const Conv2dGeometry g = spec_of(c).geometry;
  const int64_t oh = g.out_h(), ow = g.out_w(), cg = c.channels / c.groups, og = c.out_channels / c.groups;
  DirectConv r;
  r.y.assign(static_cast<size_t>(c.n * c.out_channels * oh * ow), 0.0);
  r.dx.assign(x.size(), 0.0);
  r.dw.assign(w.size(), 0.0);
  r.db.assign(static_cast<size_t>(c.out_channels), 0.0);
  for (int64_t s = 0; s < c.n; ++s)
    for (int64_t o = 0; o < c.out_channels; ++o)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          const size_t yi = static_cast<size_t>(((s * c.out_channels + o) * oh + oy) * ow + ox);
          double acc = c.bias ? b[static_cast<size_t>(o)] : 0.0;
          const double d = dz[yi];
          r.db[static_cast<size_t>(o)] += d;
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t ki = 0; ki < c.kernel_h; ++ki)
              for (int64_t kj = 0; kj < c.kernel_w; ++kj) {
                int64_t iy = oy * c.stride - c.pad + ki * c.dilation, ix = ox * c.stride - c.pad + kj * c.dilation;
                if (iy < 0 || iy >= c.height || ix < 0 || ix >= c.width) continue;
                const int64_t chan = (o / og) * cg + ci;
                const size_t xi = static_cast<size_t>(((s * c.channels + chan) * c.height + iy) * c.width + ix);
                const size_t wi = static_cast<size_t>(((o * cg + ci) * c.kernel_h + ki) * c.kernel_w + kj);
                acc += static_cast<double>(w[wi]) * x[xi];
                r.dx[xi] += static_cast<double>(w[wi]) * d;
                r.dw[wi] += static_cast<double>(x[xi]) * d;
              }
          r.y[yi] = acc;
        }
  return r;
}

}  // namespace

TEST_CASE("the threaded gemm matches one serial call and repeats bit for bit", "[models][cpu]") {
  struct Dims {
    int64_t m, n, k;
  };
  for (Dims d : {Dims{1, 1, 1}, Dims{17, 300, 33}, Dims{300, 17, 65}, Dims{128, 520, 96}, Dims{96, 64, 0}})
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (int threads : {2, 3}) {
          DYNAMIC_SECTION("m " << d.m << " n " << d.n << " k " << d.k << " ta " << ta << " tb " << tb << " threads "
                               << threads) {
            auto a = random_vector(d.m * d.k, 1), b = random_vector(d.k * d.n, 2), c0 = random_vector(d.m * d.n, 3);
            const int64_t lda = ta ? d.m : d.k, ldb = tb ? d.k : d.n;
            std::vector<float> serial = c0, threaded = c0, again = c0;
            cpu_gemm_serial(ta, tb, d.m, d.n, d.k, 0.75f, a.data(), lda, b.data(), ldb, 0.5f, serial.data(), d.n);
            {
              Threads t(threads);
              cpu_gemm(ta, tb, d.m, d.n, d.k, 0.75f, a.data(), lda, b.data(), ldb, 0.5f, threaded.data(), d.n);
              cpu_gemm(ta, tb, d.m, d.n, d.k, 0.75f, a.data(), lda, b.data(), ldb, 0.5f, again.data(), d.n);
            }
            // The same thread count repeats the bits; another one may round a block's edge
            // differently (OpenBLAS 0.3.21's Haswell kernels do), within a float's rounding.
            CHECK(same_bits(threaded, again));
            CHECK(max_rel_error(threaded, std::vector<double>(serial.begin(), serial.end())) < 1e-5);
            // And the serial call is the product it claims to be.
            std::vector<double> ref(serial.size());
            for (int64_t i = 0; i < d.m; ++i)
              for (int64_t j = 0; j < d.n; ++j) {
                double s = 0.0;
                for (int64_t p = 0; p < d.k; ++p)
                  s += static_cast<double>(ta ? a[p * lda + i] : a[i * lda + p]) *
                       (tb ? b[j * ldb + p] : b[p * ldb + j]);
                ref[i * d.n + j] = 0.75 * s + 0.5 * c0[i * d.n + j];
              }
            CHECK(max_rel_error(serial, ref) < 1e-5);
          }
        }
}

TEST_CASE("each optimizer kind's pass follows its formula", "[models][cpu]") {
  const int64_t n = 70000;  // above the threading threshold
  for (OptimizerKind kind : {OptimizerKind::sgd, OptimizerKind::momentum, OptimizerKind::nesterov,
                             OptimizerKind::adagrad, OptimizerKind::rmsprop, OptimizerKind::adam, OptimizerKind::adamw})
    for (bool regularized : {false, true}) {
      DYNAMIC_SECTION("kind " << static_cast<int>(kind) << " regularized " << regularized) {
        OptimizerStep s;
        s.kind = kind;
        s.lr = 0.05f;
        s.grad_scale = 0.8f;
        s.bias_correction1 = 0.19f;
        s.bias_correction2 = 0.0199f;
        if (regularized) {
          s.l1 = 0.01f;
          s.l2 = 0.02f;
          s.weight_decay = 0.1f;
        }
        auto w = random_vector(n, 10), g = random_vector(n, 11), m = random_vector(n, 12, 0.0f, 1.0f),
             v = random_vector(n, 13, 0.0f, 1.0f);
        std::vector<double> rw(w.begin(), w.end()), rm(m.begin(), m.end()), rv(v.begin(), v.end());
        for (int64_t i = 0; i < n; ++i) {
          double wi = w[i], gi = g[i] * static_cast<double>(s.grad_scale) + s.l2 * wi + s.l1 * ((wi > 0) - (wi < 0));
          double step = 0.0;
          switch (kind) {
            case OptimizerKind::sgd:
              step = s.lr * gi;
              break;
            case OptimizerKind::momentum:
              rm[i] = s.momentum * rm[i] + gi;
              step = s.lr * rm[i];
              break;
            case OptimizerKind::nesterov:
              rm[i] = s.momentum * rm[i] + gi;
              step = s.lr * (gi + s.momentum * rm[i]);
              break;
            case OptimizerKind::adagrad:
              rm[i] += gi * gi;
              step = s.lr * gi / (std::sqrt(rm[i]) + s.eps);
              break;
            case OptimizerKind::rmsprop:
              rm[i] = s.rho * rm[i] + (1.0 - s.rho) * gi * gi;
              step = s.lr * gi / (std::sqrt(rm[i]) + s.eps);
              break;
            case OptimizerKind::adam:
            case OptimizerKind::adamw:
              rm[i] = s.beta1 * rm[i] + (1.0 - s.beta1) * gi;
              rv[i] = s.beta2 * rv[i] + (1.0 - s.beta2) * gi * gi;
              step = s.lr * (rm[i] / s.bias_correction1) / (std::sqrt(rv[i] / s.bias_correction2) + s.eps);
              break;
          }
          rw[i] = wi * (1.0 - static_cast<double>(s.lr) * s.weight_decay) - step;
        }
        cpu_optimizer_update(s, n, w.data(), g.data(), m.data(), v.data());
        CHECK(max_rel_error(w, rw) < 1e-5);
        if (kind != OptimizerKind::sgd) CHECK(max_rel_error(m, rm) < 1e-5);
        if (kind == OptimizerKind::adam || kind == OptimizerKind::adamw) CHECK(max_rel_error(v, rv) < 1e-5);
      }
    }
}

TEST_CASE("the checked optimizer pass updates as the plain one and finds every non-finite gradient", "[models][cpu]") {
  OptimizerStep s;
  s.kind = OptimizerKind::adam;
  s.lr = 0.01f;
  s.bias_correction1 = 0.1f;
  s.bias_correction2 = 0.001f;
  for (int64_t n : {1, 7, 64, 1000, 200003}) {  // below and above the threaded size, odd tails
    std::vector<float> g(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) g[static_cast<size_t>(i)] = std::sin(0.37f * static_cast<float>(i));
    std::vector<float> w(g.size(), 0.5f), m(g.size()), v(g.size());
    std::vector<float> w2 = w, m2 = m, v2 = v;
    CHECK(cpu_optimizer_update_checked(s, n, w.data(), g.data(), m.data(), v.data()));
    cpu_optimizer_update(s, n, w2.data(), g.data(), m2.data(), v2.data());
    CHECK(w == w2);
    CHECK(m == m2);
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                      -std::numeric_limits<float>::infinity()})
      for (int64_t at : {int64_t{0}, n / 2, n - 1}) {
        std::vector<float> gb = g;
        gb[static_cast<size_t>(at)] = bad;
        INFO("n " << n << " at " << at << " value " << bad);
        CHECK_FALSE(cpu_optimizer_update_checked(s, n, w.data(), gb.data(), m.data(), v.data()));
      }
    // The largest finite values are finite.
    std::vector<float> big(g.size(), std::numeric_limits<float>::max());
    CHECK(cpu_optimizer_update_checked(s, n, w.data(), big.data(), m.data(), v.data()));
  }
}

TEST_CASE("im2col and col2im follow their definitions", "[models][cpu]") {
  Philox rng(7, RandomPurpose::synth, 77);
  for (int trial = 0; trial < 60; ++trial) {
    Conv2dGeometry g{1 + static_cast<int64_t>(rng.below(3)),  3 + static_cast<int64_t>(rng.below(20)),
                     3 + static_cast<int64_t>(rng.below(20)), 1 + static_cast<int64_t>(rng.below(5)),
                     1 + static_cast<int64_t>(rng.below(5)),  1 + static_cast<int64_t>(rng.below(3)),
                     1 + static_cast<int64_t>(rng.below(3)),  static_cast<int64_t>(rng.below(3)),
                     static_cast<int64_t>(rng.below(3)),      1 + static_cast<int64_t>(rng.below(2)),
                     1 + static_cast<int64_t>(rng.below(2))};
    if (trial % 3 == 0) g.stride_h = g.stride_w = 1;  // the vectorized paths
    if (g.out_h() <= 0 || g.out_w() <= 0) continue;
    DYNAMIC_SECTION("trial " << trial) {
      const int64_t oh = g.out_h(), ow = g.out_w(), rows = g.channels * g.kernel_h * g.kernel_w;
      auto x = random_vector(g.channels * g.height * g.width, 20 + trial);
      std::vector<float> expect(static_cast<size_t>(rows * oh * ow), 0.0f);
      for (int64_t c = 0; c < g.channels; ++c)
        for (int64_t ki = 0; ki < g.kernel_h; ++ki)
          for (int64_t kj = 0; kj < g.kernel_w; ++kj)
            for (int64_t oy = 0; oy < oh; ++oy)
              for (int64_t ox = 0; ox < ow; ++ox) {
                int64_t iy = oy * g.stride_h - g.pad_h + ki * g.dilation_h;
                int64_t ix = ox * g.stride_w - g.pad_w + kj * g.dilation_w;
                if (iy >= 0 && iy < g.height && ix >= 0 && ix < g.width)
                  expect[(((c * g.kernel_h + ki) * g.kernel_w + kj) * oh + oy) * ow + ox] =
                      x[(c * g.height + iy) * g.width + ix];
              }
      std::vector<float> col(expect.size(), 5.0f);
      cpu_im2col(g, x.data(), col.data());
      CHECK(same_bits(col, expect));
      cpu_kernels().im2col(g, x.data(), col.data());
      CHECK(same_bits(col, expect));
      // With the padding already zero, a second input overwrites exactly the non-padding entries.
      auto x2 = random_vector(x.size(), 40 + trial);
      cpu_im2col(g, x2.data(), col.data(), /*padding_zeroed=*/true);
      std::vector<float> expect2(col.size());
      cpu_im2col(g, x2.data(), expect2.data());
      CHECK(same_bits(col, expect2));

      // col2im adds each column entry back at its input position, in (channel, tap, row) order.
      auto cols = random_vector(expect.size(), 60 + trial);
      auto dx0 = random_vector(x.size(), 80 + trial);
      std::vector<float> dx_expect = dx0, zero_expect(x.size(), 0.0f);
      for (std::vector<float>* dst : {&dx_expect, &zero_expect})
        for (int64_t c = 0; c < g.channels; ++c)
          for (int64_t ki = 0; ki < g.kernel_h; ++ki)
            for (int64_t kj = 0; kj < g.kernel_w; ++kj)
              for (int64_t oy = 0; oy < oh; ++oy)
                for (int64_t ox = 0; ox < ow; ++ox) {
                  int64_t iy = oy * g.stride_h - g.pad_h + ki * g.dilation_h;
                  int64_t ix = ox * g.stride_w - g.pad_w + kj * g.dilation_w;
                  if (iy >= 0 && iy < g.height && ix >= 0 && ix < g.width)
                    (*dst)[(c * g.height + iy) * g.width + ix] +=
                        cols[(((c * g.kernel_h + ki) * g.kernel_w + kj) * oh + oy) * ow + ox];
                }
      std::vector<float> dx = dx0;
      cpu_col2im(g, cols.data(), dx.data());
      CHECK(same_bits(dx, dx_expect));
      std::vector<float> over = dx0;
      cpu_col2im(g, cols.data(), over.data(), /*overwrite=*/true);
      CHECK(same_bits(over, zero_expect));
    }
  }
}

TEST_CASE("max pooling fast paths give the general path's values and argmax", "[models][cpu]") {
  struct PoolCase {
    int64_t height, width, kernel, stride;
  };
  for (PoolCase p : {PoolCase{28, 28, 2, 2}, PoolCase{14, 14, 2, 2}, PoolCase{9, 35, 2, 2}, PoolCase{7, 7, 3, 2},
                     PoolCase{6, 40, 3, 1}, PoolCase{4, 4, 4, 4}}) {
    DYNAMIC_SECTION("h " << p.height << " w " << p.width << " k " << p.kernel << " s " << p.stride) {
      const int64_t planes = 5;
      Conv2dGeometry g{1, p.height, p.width, p.kernel, p.kernel, p.stride, p.stride, 0, 0, 1, 1};
      const int64_t oh = g.out_h(), ow = g.out_w(), hw = p.height * p.width;
      // Values from a few levels, so windows hold ties; one NaN.
      auto x = random_vector(planes * hw, 5);
      for (auto& v : x) v = std::round(v * 3.0f);
      x[7] = std::numeric_limits<float>::quiet_NaN();
      std::vector<float> y_ref(static_cast<size_t>(planes * oh * ow)), y(y_ref.size());
      std::vector<int32_t> a_ref(y_ref.size()), a(y_ref.size());
      for (int64_t q = 0; q < planes; ++q)
        for (int64_t oy = 0; oy < oh; ++oy)
          for (int64_t ox = 0; ox < ow; ++ox) {
            float best = -std::numeric_limits<float>::infinity();
            int32_t where = -1;
            for (int64_t ki = 0; ki < p.kernel; ++ki)
              for (int64_t kj = 0; kj < p.kernel; ++kj) {
                int64_t at = (oy * p.stride + ki) * p.width + ox * p.stride + kj;
                if (x[q * hw + at] > best || where < 0) {
                  best = x[q * hw + at];
                  where = static_cast<int32_t>(at);
                }
              }
            y_ref[(q * oh + oy) * ow + ox] = best;
            a_ref[(q * oh + oy) * ow + ox] = where;
          }
      cpu_kernels().max_pool(planes, g, x.data(), y.data(), a.data());
      CHECK(same_bits(y, y_ref));
      CHECK(a == a_ref);

      auto dy = random_vector(y.size(), 6);
      dy[3] = -0.0f;
      std::vector<float> dx_ref(x.size(), 0.0f), dx(x.size(), 9.0f);
      for (int64_t q = 0; q < planes; ++q)
        for (int64_t o = 0; o < oh * ow; ++o) dx_ref[q * hw + a_ref[q * oh * ow + o]] += dy[q * oh * ow + o];
      cpu_kernels().max_pool_backward(planes, g, dy.data(), a.data(), dx.data());
      CHECK(same_bits(dx, dx_ref));
    }
  }
}

TEST_CASE("the dense forward's transposed product matches the reference", "[models][cpu]") {
  struct DenseCase {
    int64_t rows, in, out;
    Activation act;
    bool bias;
  };
  // Wide layers take the transposed product (rows and outputs off the 16-wide tiles included);
  // narrow, deep-input or non-ReLU ones the reference formulation.
  for (DenseCase d :
       {DenseCase{128, 784, 1024, Activation::relu, true}, DenseCase{37, 300, 517, Activation::relu, true},
        DenseCase{16, 64, 256, Activation::identity, false}, DenseCase{128, 1024, 10, Activation::identity, true},
        DenseCase{20, 2100, 300, Activation::relu, true}, DenseCase{50, 100, 400, Activation::tanh, true},
        DenseCase{130, 785, 1000, Activation::relu, true}, DenseCase{17, 33, 262, Activation::identity, true},
        DenseCase{3, 50, 300, Activation::relu, true}})
    for (const ProductChoice& choice :
         cpu_product_candidates({ProductKind::dense_forward, false, false, false, d.rows, d.in, d.out}))
      for (int threads : {1, 2}) {
        DYNAMIC_SECTION("rows " << d.rows << " in " << d.in << " out " << d.out << " as " << choice.text()
                                << " threads " << threads) {
          Threads t(threads);
          auto x = random_vector(d.rows * d.in, 200), w = random_vector(d.out * d.in, 201),
               b = random_vector(d.out, 202);
          const float* bias = d.bias ? b.data() : nullptr;
          std::vector<float> y(static_cast<size_t>(d.rows * d.out), 3.0f), y_ref(y.size(), -3.0f);
          LayerScratch fast, reference;
          cpu_dense_forward_as(choice, cpu_kernels(), d.rows, d.in, d.out, x.data(), w.data(), bias, d.act, 0.01f,
                               y.data(), fast);
          cpu_kernels().KernelBackend::dense_forward(d.rows, d.in, d.out, x.data(), w.data(), bias, d.act, 0.01f,
                                                     y_ref.data(), reference);
          std::vector<double> direct(y.size());
          for (int64_t r = 0; r < d.rows; ++r)
            for (int64_t o = 0; o < d.out; ++o) {
              double s = d.bias ? b[o] : 0.0;
              for (int64_t i = 0; i < d.in; ++i) s += static_cast<double>(x[r * d.in + i]) * w[o * d.in + i];
              direct[r * d.out + o] = activate(d.act, static_cast<float>(s));
            }
          CHECK(max_rel_error(y, direct) < 1e-4);
          CHECK(max_rel_error(y_ref, direct) < 1e-4);
          std::vector<float> again(y.size());
          cpu_dense_forward_as(choice, cpu_kernels(), d.rows, d.in, d.out, x.data(), w.data(), bias, d.act, 0.01f,
                               again.data(), fast);
          CHECK(same_bits(again, y));
        }
      }
}

TEST_CASE("every engine computes every kind of product, and repeats it bit for bit", "[models][cpu]") {
  // Transposes, accumulation, shapes off every tile edge; gemm_serial as convolutions call it.
  const ProductKey keys[] = {
      {ProductKind::dense_input_grad, false, false, false, 37, 300, 530},
      {ProductKind::gemm, false, false, false, 45, 70, 33},
      {ProductKind::gemm, false, true, false, 64, 129, 77},
      {ProductKind::gemm, true, false, true, 100, 50, 37},
      {ProductKind::gemm, true, true, false, 9, 260, 31},
      {ProductKind::gemm_serial, false, true, true, 32, 75, 196},
      {ProductKind::gemm_serial, true, false, false, 75, 196, 32},
  };
  for (const ProductKey& key : keys)
    for (const ProductChoice& choice : cpu_product_candidates(key))
      for (int threads : {1, 2}) {
        DYNAMIC_SECTION(key.text() << " as " << choice.text() << " threads " << threads) {
          Threads t(threads);
          const bool dense = key.kind == ProductKind::dense_input_grad;
          // dense: dz [m x k], w [k x n] -> dx [m x n]; gemm: op(A) [m x k], op(B) [k x n].
          auto a = random_vector(key.m * key.k, 240), b = random_vector(key.k * key.n, 241),
               c0 = random_vector(key.m * key.n, 242);
          std::vector<double> ref(c0.size());
          const int64_t lda = key.trans_a ? key.m : key.k, ldb = key.trans_b ? key.k : key.n;
          for (int64_t i = 0; i < key.m; ++i)
            for (int64_t j = 0; j < key.n; ++j) {
              double s = key.accumulate ? c0[i * key.n + j] : 0.0;
              for (int64_t p = 0; p < key.k; ++p)
                s += static_cast<double>(key.trans_a ? a[p * lda + i] : a[i * lda + p]) *
                     (key.trans_b ? b[j * ldb + p] : b[p * ldb + j]);
              ref[i * key.n + j] = s;
            }
          auto run = [&] {
            std::vector<float> c = c0;
            if (dense)
              cpu_dense_input_grad_as(choice.engine, key.m, key.n, key.k, a.data(), b.data(), c.data());
            else if (key.kind == ProductKind::gemm)
              cpu_gemm_as(choice.engine, key.trans_a, key.trans_b, key.m, key.n, key.k, 1.0f, a.data(), lda, b.data(),
                          ldb, key.accumulate ? 1.0f : 0.0f, c.data(), key.n);
            else
              cpu_gemm_serial_as(choice.engine, key.trans_a, key.trans_b, key.m, key.n, key.k, 1.0f, a.data(), lda,
                                 b.data(), ldb, key.accumulate ? 1.0f : 0.0f, c.data(), key.n);
            return c;
          };
          const std::vector<float> c = run();
          CHECK(max_rel_error(c, ref) < 1e-4);
          CHECK(same_bits(run(), c));
        }
      }
}

TEST_CASE("CPU engines: names, the config's choice and the environment's override", "[models][cpu]") {
  CHECK(parse_cpu_engine("openblas") == CpuEngine::openblas);
  CHECK(parse_cpu_engine("auto") == CpuEngine::automatic);
  CHECK_THROWS_WITH(parse_cpu_engine("fast"),
                    Catch::Contains("'fast'") && Catch::Contains("auto, openblas, onednn, unpacked"));
  CHECK(cpu_engine_available(CpuEngine::unpacked) == cpu_unpacked_gemm_available());
  CHECK(cpu_engine_available(CpuEngine::onednn) == cpu_onednn_available());
  // The config's choice holds unless DPTRAIN_CPU_ENGINE names an engine (the suite may run under it).
  const char* env = std::getenv("DPTRAIN_CPU_ENGINE");
  const CpuEngine forced = env && *env ? parse_cpu_engine(env) : CpuEngine::automatic;
  {
    EngineScope e(CpuEngine::openblas);
    CHECK(cpu_engine() == (forced == CpuEngine::automatic ? CpuEngine::openblas : forced));
    const ProductKey key{ProductKind::gemm, false, false, false, 64, 64, 64};
    CHECK(cpu_product_choice(key).engine ==
          (cpu_engine() == CpuEngine::onednn ? CpuEngine::onednn : CpuEngine::openblas));
  }
  CHECK(cpu_engine() == forced);
  if (!cpu_unpacked_gemm_available())
    CHECK_THROWS_WITH(set_cpu_engine(CpuEngine::unpacked), Catch::Contains("AVX-512"));
}

TEST_CASE("the unpacked gemm computes A B on every edge of its tiles and blocks", "[models][cpu]") {
  struct Case {
    int64_t m, n, k;
  };
  // Both orders (A or B the larger operand), rows and columns off the 8x32 tiles, k = 1, and a k so
  // long that the reused operand is split into several blocks.
  for (Case c : {Case{300, 33, 64}, Case{7, 100, 300}, Case{1, 1, 1}, Case{9, 17, 5}, Case{37, 31, 1},
                 Case{64, 200, 5000}, Case{200, 16, 5000}, Case{128, 1024, 256}, Case{1024, 128, 200}})
    for (int threads : {1, 2}) {
      DYNAMIC_SECTION("m " << c.m << " n " << c.n << " k " << c.k << " threads " << threads) {
        Threads t(threads);
        // Leading dimensions past the widths: the operands are windows of larger matrices.
        const int64_t lda = c.k + 3, ldb = c.n + 5, ldc = c.n + 2;
        auto a = random_vector(c.m * lda, 220), b = random_vector(c.k * ldb, 221);
        std::vector<float> out(static_cast<size_t>(c.m * ldc), 7.0f);
        cpu_unpacked_gemm(c.m, c.n, c.k, a.data(), lda, b.data(), ldb, out.data(), ldc);
        std::vector<float> got;
        std::vector<double> want;
        for (int64_t i = 0; i < c.m; ++i)
          for (int64_t j = 0; j < c.n; ++j) {
            double sum = 0.0;
            for (int64_t p = 0; p < c.k; ++p) sum += static_cast<double>(a[i * lda + p]) * b[p * ldb + j];
            got.push_back(out[i * ldc + j]);
            want.push_back(sum);
          }
        CHECK(max_rel_error(got, want) < 1e-5 * std::sqrt(static_cast<double>(c.k)));
        // Nothing outside the window of C is written.
        bool untouched = true;
        for (int64_t i = 0; i < c.m; ++i)
          for (int64_t j = c.n; j < ldc; ++j) untouched = untouched && out[i * ldc + j] == 7.0f;
        CHECK(untouched);
        // A row's result does not depend on the other rows of the call (without AVX-512 this is
        // OpenBLAS, which promises no such thing).
        if (c.m > 1 && cpu_unpacked_gemm_available()) {
          const int64_t split = c.m / 2;
          std::vector<float> parts(out.size(), 7.0f);
          cpu_unpacked_gemm(split, c.n, c.k, a.data(), lda, b.data(), ldb, parts.data(), ldc);
          cpu_unpacked_gemm(c.m - split, c.n, c.k, a.data() + split * lda, lda, b.data(), ldb,
                            parts.data() + split * ldc, ldc);
          CHECK(same_bits(parts, out));
        }
      }
    }
}

// The engines a test can force here: every one this build has (DPTRAIN_CPU_ENGINE still wins).
std::vector<CpuEngine> forceable_engines() {
  std::vector<CpuEngine> out;
  for (CpuEngine e : {CpuEngine::openblas, CpuEngine::onednn, CpuEngine::unpacked})
    if (cpu_engine_available(e)) out.push_back(e);
  return out;
}

TEST_CASE("the dense input gradient matches the reference and splits by rows exactly", "[models][cpu]") {
  const int64_t rows = 100, in = 300, out = 530;
  auto dz = random_vector(rows * out, 230), w = random_vector(out * in, 231);
  for (CpuEngine engine : forceable_engines()) {
    DYNAMIC_SECTION("engine " << cpu_engine_name(engine)) {
      EngineScope e(engine);
      std::vector<float> dx(static_cast<size_t>(rows * in)), ref(dx.size());
      cpu_kernels().dense_backward_input(rows, in, out, dz.data(), w.data(), dx.data());
      cpu_kernels().KernelBackend::dense_backward_input(rows, in, out, dz.data(), w.data(), ref.data());
      std::vector<double> ref_d(ref.begin(), ref.end());
      CHECK(max_rel_error(dx, ref_d) < 1e-4);
      for (int threads : {1, 2}) {
        Threads t(threads);
        std::vector<float> parts(dx.size());
        cpu_kernels().dense_backward_input(37, in, out, dz.data(), w.data(), parts.data());
        cpu_kernels().dense_backward_input(rows - 37, in, out, dz.data() + 37 * out, w.data(), parts.data() + 37 * in);
        if (cpu_engine() == CpuEngine::unpacked)
          CHECK(same_bits(parts, dx));
        else
          CHECK(max_rel_error(parts, ref_d) < 1e-4);
      }
    }
  }
}

TEST_CASE("the dense forward gives each row the same bits whatever the batch split and thread count", "[models][cpu]") {
  // Rank shares of a global batch are row ranges: with our unpacked product a row's outputs do not
  // depend on which other rows share its call (shares of 3 and 5 rows included), nor on the
  // threads. A BLAS agrees to rounding only: OpenBLAS 0.3.21's Haswell kernels differ in the last
  // place, and under 16 rows the OpenBLAS engine takes the plain layout.
  const int64_t rows = 100, in = 300, out = 530;
  auto x = random_vector(rows * in, 210), w = random_vector(out * in, 211), b = random_vector(out, 212);
  for (CpuEngine engine : forceable_engines()) {
    EngineScope e(engine);
    const bool unpacked = cpu_engine() == CpuEngine::unpacked;
    std::vector<float> whole(static_cast<size_t>(rows * out));
    LayerScratch scratch;
    {
      Threads t(1);
      cpu_kernels().dense_forward(rows, in, out, x.data(), w.data(), b.data(), Activation::relu, 0.01f, whole.data(),
                                  scratch);
    }
    const std::vector<int64_t> splits =
        unpacked ? std::vector<int64_t>{5, 16, 37, 64, 97} : std::vector<int64_t>{16, 37, 64};
    for (int threads : {1, 2})
      for (int64_t split : splits) {
        DYNAMIC_SECTION("engine " << cpu_engine_name(engine) << ", first " << split << " rows, then the rest, threads "
                                  << threads) {
          Threads t(threads);
          std::vector<float> parts(whole.size());
          cpu_kernels().dense_forward(split, in, out, x.data(), w.data(), b.data(), Activation::relu, 0.01f,
                                      parts.data(), scratch);
          cpu_kernels().dense_forward(rows - split, in, out, x.data() + split * in, w.data(), b.data(),
                                      Activation::relu, 0.01f, parts.data() + split * out, scratch);
          if (unpacked)
            CHECK(same_bits(parts, whole));
          else
            CHECK(max_rel_error(parts, std::vector<double>(whole.begin(), whole.end())) < 1e-5);
        }
      }
  }
}

TEST_CASE("the batched convolution matches the reference path and a direct convolution", "[models][cpu]") {
  const ConvCase cases[] = {
      {5, 1, 28, 28, 8, 5, 5, 1, 2, 1, 1, Activation::relu, true},       // the reference CNN's first layer
      {3, 6, 14, 14, 8, 5, 5, 1, 2, 1, 1, Activation::relu, true},       // and its second, narrower
      {4, 4, 11, 9, 6, 3, 3, 2, 1, 1, 2, Activation::tanh, true},        // stride, groups
      {3, 3, 12, 13, 4, 3, 2, 1, 2, 2, 1, Activation::identity, false},  // dilation, no bias
      {2, 6, 8, 8, 6, 3, 3, 1, 1, 1, 6, Activation::relu, true},         // depthwise
      {7, 5, 6, 7, 3, 1, 1, 1, 0, 1, 1, Activation::identity, true},     // 1x1: no im2col
      {1, 2, 20, 20, 3, 4, 4, 3, 0, 1, 1, Activation::relu, true},       // one sample
  };
  for (const ConvCase& c : cases)
    for (int threads : {1, 2, 3}) {
      DYNAMIC_SECTION("case " << c.channels << "x" << c.height << "x" << c.width << " k" << c.kernel_h << " s"
                              << c.stride << " p" << c.pad << " d" << c.dilation << " g" << c.groups << " threads "
                              << threads) {
        Threads t(threads);
        KernelBackend& k = cpu_kernels();
        const Conv2dSpec spec = spec_of(c);
        const Conv2dGeometry& g = spec.geometry;
        const int64_t out_n = c.n * c.out_channels * g.out_h() * g.out_w();
        auto x = random_vector(c.n * c.channels * c.height * c.width, 100);
        auto w = random_vector(c.out_channels * c.channels / c.groups * c.kernel_h * c.kernel_w, 101);
        auto b = random_vector(c.out_channels, 102);
        const float* bias = c.bias ? b.data() : nullptr;

        std::vector<float> y(static_cast<size_t>(out_n)), y_ref(y.size());
        LayerScratch fast, reference;
        k.conv2d_forward(spec, c.n, x.data(), w.data(), bias, c.act, 0.01f, y.data(), fast);
        k.KernelBackend::conv2d_forward(spec, c.n, x.data(), w.data(), bias, c.act, 0.01f, y_ref.data(), reference);
        CHECK(same_bits(y, y_ref));

        // Gradients accumulate onto what is there; dx is overwritten. dz = dout * act'(y).
        auto dout = random_vector(out_n, 103);
        std::vector<float> dz(dout.size());
        k.activation_backward(c.act, 0.01f, out_n, y.data(), dout.data(), dz.data());
        auto dw0 = random_vector(w.size(), 104), db0 = random_vector(b.size(), 105);
        std::vector<float> dx(x.size(), 7.0f), dx_ref(x.size(), -7.0f), dw = dw0, dw_ref = dw0, db = db0, db_ref = db0;
        k.conv2d_backward(spec, c.n, x.data(), w.data(), y.data(), dout.data(), c.act, 0.01f, dx.data(), dw.data(),
                          db.data(), fast);
        k.KernelBackend::conv2d_backward(spec, c.n, x.data(), w.data(), y.data(), dout.data(), c.act, 0.01f,
                                         dx_ref.data(), dw_ref.data(), db_ref.data(), reference);
        CHECK(same_bits(dx, dx_ref));
        if (threads == 1) {  // the same summation order as the reference
          CHECK(same_bits(dw, dw_ref));
          CHECK(same_bits(db, db_ref));
        }

        DirectConv d = direct_conv(c, x, w, b, dz);
        std::vector<double> y_direct(d.y.size());
        for (size_t i = 0; i < d.y.size(); ++i) y_direct[i] = activate(c.act, static_cast<float>(d.y[i]));
        for (size_t i = 0; i < dw.size(); ++i) d.dw[i] += dw0[i];
        for (size_t i = 0; i < db.size(); ++i) d.db[i] += db0[i];
        CHECK(max_rel_error(y, y_direct) < 1e-4);
        CHECK(max_rel_error(dx, d.dx) < 1e-4);
        CHECK(max_rel_error(dw, d.dw) < 1e-4);
        CHECK(max_rel_error(db, d.db) < 1e-4);

        // Only parameter gradients, only input gradients: each part stands alone.
        std::vector<float> dw2 = dw0, dx2(x.size());
        k.conv2d_backward(spec, c.n, x.data(), w.data(), y.data(), dout.data(), c.act, 0.01f, nullptr, dw2.data(),
                          nullptr, fast);
        CHECK(same_bits(dw2, dw));
        k.conv2d_backward(spec, c.n, x.data(), w.data(), y.data(), dout.data(), c.act, 0.01f, dx2.data(), nullptr,
                          nullptr, fast);
        CHECK(same_bits(dx2, dx));

        // Run again on the same scratch: bitwise the same (determinism for a thread count).
        std::vector<float> y2(y.size()), dx3(x.size()), dw3 = dw0, db3 = db0;
        k.conv2d_forward(spec, c.n, x.data(), w.data(), bias, c.act, 0.01f, y2.data(), fast);
        k.conv2d_backward(spec, c.n, x.data(), w.data(), y.data(), dout.data(), c.act, 0.01f, dx3.data(), dw3.data(),
                          db3.data(), fast);
        CHECK(same_bits(y2, y));
        CHECK(same_bits(dx3, dx));
        CHECK(same_bits(dw3, dw));
        CHECK(same_bits(db3, db));
      }
    }
}

TEST_CASE("training steps repeat bit for bit for a given thread count", "[models][cpu]") {
  // Every threaded path at once: batched convolution with per-thread gradient sums, pooling, the
  // transposed dense forward, split GEMMs, threaded fills and the optimizer pass.
  auto train = [](int threads) {
    Threads t(threads);
    auto seq = std::make_unique<Sequential>();
    Conv2dOptions c;
    c.out_channels = 6;
    c.kernel_h = c.kernel_w = 3;
    c.padding = 1;
    c.activation = Activation::relu;
    seq->add(std::make_unique<Conv2d>(c));
    seq->add(std::make_unique<Pool2d>(Pool2d::Kind::max, 2));
    seq->add(std::make_unique<Dense>(300, true, Activation::relu));
    seq->add(std::make_unique<Dense>(5));
    Model model(std::move(seq), Shape{2, 12, 12}, Device::cpu);
    model.initialize(5);
    Loss loss(LossKind::softmax_cross_entropy);
    auto xs = random_vector(40 * 2 * 12 * 12, 300);
    Tensor x = Tensor::view(xs.data(), Shape{40, 2, 12, 12});
    std::vector<int32_t> labels(40);
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>(i % 5);
    Tensor dout;
    float stats[num_loss_stats] = {};
    OptimizerStep step;
    step.kind = OptimizerKind::momentum;
    Tensor momentum = Tensor::zeros({model.flat_size()});
    for (uint64_t s = 0; s < 4; ++s) {
      StepContext ctx{Mode::train, 1, s, 0, nullptr, true};
      model.zero_grad();
      const Tensor& out = model.forward(x, ctx);
      loss.evaluate(out, {labels.data(), nullptr}, 1.0f / 40, &dout, stats);
      model.backward(dout, ctx);
      cpu_kernels().optimizer_update(step, model.flat_size(), model.params().data(), model.grads().data(),
                                     momentum.data(), nullptr);
    }
    return std::vector<float>(model.params().data(), model.params().data() + model.flat_size());
  };
  for (int threads : {1, 2, 3}) {
    DYNAMIC_SECTION("threads " << threads) {
      auto first = train(threads), second = train(threads), one = train(1);
      CHECK(same_bits(first, second));
      // Other thread counts sum the gradients in another order: close, not equal.
      CHECK(max_rel_error(first, std::vector<double>(one.begin(), one.end())) < 1e-4);
    }
  }
}

TEST_CASE("buffers of 2 MiB and more sit on 2 MiB boundaries and may use huge pages", "[models][cpu]") {
  KernelBackend& k = cpu_kernels();
  constexpr size_t huge = size_t{2} << 20;
  void* small = k.allocate(1000);
  void* large = k.allocate(huge + 12345);
  CHECK(reinterpret_cast<uintptr_t>(small) % 64 == 0);
  REQUIRE(reinterpret_cast<uintptr_t>(large) % huge == 0);
  // The whole rounded-up size is usable (the advice covers it).
  std::memset(large, 1, 2 * huge);
  // Where the kernel offers transparent huge pages on request, the mapping holding the buffer is
  // eligible for them (THPeligible in /proc/self/smaps, Linux 5.0 and later).
  std::string mode;
  if (std::FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r")) {
    char buf[128] = {};
    if (std::fgets(buf, sizeof buf, f)) mode = buf;
    std::fclose(f);
  }
  if (mode.find("[madvise]") != std::string::npos || mode.find("[always]") != std::string::npos) {
    std::FILE* f = std::fopen("/proc/self/smaps", "r");
    REQUIRE(f);
    char line[512];
    bool inside = false;
    int eligible = -1;
    const uintptr_t at = reinterpret_cast<uintptr_t>(large);
    while (std::fgets(line, sizeof line, f)) {
      unsigned long lo = 0, hi = 0;
      if (std::sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {  // a mapping's first line
        inside = lo <= at && at < hi;
      } else if (inside && std::sscanf(line, "THPeligible: %d", &eligible) == 1) {
        break;
      }
    }
    std::fclose(f);
    if (eligible >= 0) CHECK(eligible == 1);
  }
  k.release(large);
  k.release(small);
}

TEST_CASE("the LSTM cell's vectorized gates match libm and keep NaN", "[models][cpu]") {
  const int64_t n = 3, hidden = 37;  // a hidden size off the vector width
  auto gates = random_vector(n * 4 * hidden, 250), c_prev = random_vector(n * hidden, 251);
  for (size_t i = 0; i < gates.size(); ++i) gates[i] *= 12.0f * static_cast<float>(i % 7);  // up to |x| ~ 70
  std::vector<float> g = gates, c(static_cast<size_t>(n * hidden)), h(c.size());
  cpu_kernels().lstm_cell(n, hidden, g.data(), c_prev.data(), c.data(), h.data());
  double worst = 0.0;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < hidden; ++j) {
      const float* x = gates.data() + r * 4 * hidden;
      auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
      const double i = sig(x[j]), f = sig(x[hidden + j]), gg = std::tanh(static_cast<double>(x[2 * hidden + j])),
                   o = sig(x[3 * hidden + j]);
      const double cv = f * c_prev[r * hidden + j] + i * gg;
      worst = std::max(worst, std::fabs(cv - c[r * hidden + j]));
      worst = std::max(worst, std::fabs(o * std::tanh(cv) - h[r * hidden + j]));
    }
  CHECK(worst < 2e-6);
  // A diverged run stays visibly diverged: NaN in, NaN out.
  std::vector<float> bad(static_cast<size_t>(4 * hidden), std::numeric_limits<float>::quiet_NaN());
  std::vector<float> c1(static_cast<size_t>(hidden)), h1(c1.size());
  cpu_kernels().lstm_cell(1, hidden, bad.data(), nullptr, c1.data(), h1.data());
  CHECK(std::isnan(c1[0]));
  CHECK(std::isnan(h1[hidden - 1]));
}

// The CPU dropout computes 16 Philox blocks at a time; the mask must still be exactly the one
// philox_uniform defines (the CUDA backend draws each value with it), at any row length.
TEST_CASE("CPU dropout keeps exactly the values philox_uniform keeps", "[models][cpu]") {
  const int64_t rows = 3, row_size = 150;
  const float p = 0.3f;
  const SampleKeys keys{RandomKey::make(11, RandomPurpose::dropout, 5), 1234567, (int64_t{1} << 33) + 5};
  std::vector<float> x(static_cast<size_t>(rows * row_size), 1.0f), y(x.size());
  cpu_kernels().dropout(rows, row_size, p, keys, x.data(), y.data());
  int64_t kept = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < row_size; ++i) {
      const bool keep =
          philox_uniform(keys.key, keys.step, static_cast<uint64_t>(keys.row0 + r), static_cast<uint64_t>(i)) > p;
      INFO("row " << r << " value " << i);
      REQUIRE(y[static_cast<size_t>(r * row_size + i)] == (keep ? 1.0f / (1.0f - p) : 0.0f));
      kept += keep;
    }
  CHECK(kept > rows * row_size / 2);
}
