// One table of every KernelBackend operation (as ggml's test-backend-ops): each row makes random
// inputs on the host, runs the operation on a backend, and every buffer it may touch comes back to
// the host. The CUDA backend is compared with the CPU's on the same inputs within the row's
// tolerance (0 means the same bits: data movement, max pooling and its argmax, dropout masks);
// on machines without a GPU the [cuda] test says so and stops. The CPU backend is also run twice
// against itself (same bits, as its determinism promises), which also proves the table runs. Rows
// with a plain reference (computed here in double from the operation's doc comment) check every
// backend's results against it too.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>

#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/core/Error.h"
#include "models/core/Philox.h"
#include "models/core/Tensor.h"
#include "models/kernels/KernelBackend.h"
#include "models/kernels/KernelMath.h"
#include "models/layers/ActivationNames.h"

using namespace dptrain;

namespace {

// Host values of every buffer of one operation, by name, plus the scalars it returns.
struct OpData {
  std::map<std::string, std::vector<float>> f;
  std::map<std::string, std::vector<int32_t>> i;
  std::map<std::string, std::vector<double>> d;
  std::vector<double> results;
};

// The same buffers on a device; download() brings them all back.
class DeviceData {
 public:
  DeviceData(const OpData& host, Device device) : device_(device) {
    for (auto& [k, v] : host.f) upload(k, v.data(), v.size() * sizeof(float));
    for (auto& [k, v] : host.i) upload(k, v.data(), v.size() * sizeof(int32_t));
    for (auto& [k, v] : host.d) upload(k, v.data(), v.size() * sizeof(double));
  }
  float* f(const std::string& k) { return static_cast<float*>(at(k)); }
  int32_t* i(const std::string& k) { return static_cast<int32_t*>(at(k)); }
  double* d(const std::string& k) { return static_cast<double*>(at(k)); }
  OpData download(const OpData& like) {
    kernels(device_).synchronize();
    OpData out = like;
    for (auto& [k, v] : out.f) copy_memory(v.data(), Device::cpu, at(k), device_, v.size() * sizeof(float));
    for (auto& [k, v] : out.i) copy_memory(v.data(), Device::cpu, at(k), device_, v.size() * sizeof(int32_t));
    for (auto& [k, v] : out.d) copy_memory(v.data(), Device::cpu, at(k), device_, v.size() * sizeof(double));
    out.results = results;
    return out;
  }
  std::vector<double> results;

 private:
  void upload(const std::string& k, const void* p, size_t bytes) {
    auto mem = std::make_shared<DeviceMemory>(bytes ? bytes : 4, device_);
    copy_memory(mem->data(), device_, p, Device::cpu, bytes);
    mem_[k] = mem;
  }
  void* at(const std::string& k) {
    auto it = mem_.find(k);
    INFO("buffer '" << k << "'");
    REQUIRE(it != mem_.end());
    return it->second->data();
  }
  Device device_;
  std::map<std::string, std::shared_ptr<DeviceMemory>> mem_;
};

struct OpCase {
  std::string name;
  double tol;  // max |got - want| / max(1, |want|) over float and double buffers; 0: the same bits
  std::function<void(OpData&)> make;
  std::function<void(KernelBackend&, DeviceData&)> run;
  // Where set, a plain reference written here (in double, straight from the operation's doc
  // comment) that checks a backend's outputs `out` from the inputs `in` that `make` wrote.
  std::function<void(const OpData& in, const OpData& out)> reference = {};
};

std::vector<float> uniform(int64_t n, uint32_t id, float lo = -1.0f, float hi = 1.0f) {
  Philox rng(2024, RandomPurpose::synth, id);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = lo + (hi - lo) * rng.uniform();
  return v;
}

std::vector<int32_t> integers(int64_t n, uint32_t id, int32_t lo, int32_t hi) {  // [lo, hi)
  Philox rng(7, RandomPurpose::synth, id);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = lo + static_cast<int32_t>(rng.below(static_cast<uint64_t>(hi - lo)));
  return v;
}

const Activation all_acts[] = {Activation::identity, Activation::relu, Activation::leaky_relu, Activation::sigmoid,
                               Activation::tanh};

Conv2dGeometry geometry(int64_t c, int64_t h, int64_t w, int64_t k, int64_t stride, int64_t pad, int64_t dil,
                        int64_t kw = 0) {
  return Conv2dGeometry{c, h, w, k, kw ? kw : k, stride, stride, pad, pad, dil, dil};
}

std::string geo_name(const Conv2dGeometry& g) {
  return std::to_string(g.channels) + "x" + std::to_string(g.height) + "x" + std::to_string(g.width) + " k" +
         std::to_string(g.kernel_h) + "x" + std::to_string(g.kernel_w) + " s" + std::to_string(g.stride_h) + " p" +
         std::to_string(g.pad_h) + " d" + std::to_string(g.dilation_h);
}

// ---- plain references

// Checks got[i] against want[i] within tol * max(1, |want[i]|); names the worst place.
void check_near(const std::string& what, const std::vector<float>& got, const std::vector<double>& want, double tol) {
  REQUIRE(got.size() == want.size());
  if (want.empty()) return;
  double worst = 0.0;
  size_t at = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double diff = std::fabs(got[i] - want[i]) / std::max(1.0, std::fabs(want[i]));
    if (!(diff <= worst)) {  // a NaN counts as infinitely far
      worst = std::isnan(diff) ? INFINITY : diff;
      at = i;
    }
  }
  INFO(what << "[" << at << "]: got " << got[at] << ", want " << want[at] << " (worst relative difference " << worst
            << ", tolerance " << tol << ")");
  CHECK(worst <= tol);
}

std::vector<double> doubles(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

double gelu_reference(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

// One GRU unit from the doc comment of KernelBackend::gru_cell: r, z, c and h.
std::array<double, 4> gru_reference(double xr, double xz, double xn, double hr, double hz, double hn, double prev) {
  const double r = 1.0 / (1.0 + std::exp(-(xr + hr))), z = 1.0 / (1.0 + std::exp(-(xz + hz)));
  const double c = std::tanh(xn + r * hn);
  return {r, z, c, (1.0 - z) * c + z * prev};
}

// Row-major C = alpha op(A) op(B) + beta C in double, touching only C's m x n elements.
void gemm_reference(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const float* a, int64_t lda,
                    const float* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (int64_t p = 0; p < k; ++p)
        acc += static_cast<double>(ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
      c[i * ldc + j] = alpha * acc + beta * c[i * ldc + j];
    }
}

// Log-sum-exp of k z over a row, in double.
double log_sum_exp_reference(const float* z, int64_t cols, double k = 1.0) {
  double m = -INFINITY;
  for (int64_t j = 0; j < cols; ++j) m = std::max(m, k * z[j]);
  double s = 0.0;
  for (int64_t j = 0; j < cols; ++j) s += std::exp(k * z[j] - m);
  return m + std::log(s);
}

// 1 when fewer than 5 values of the row lie strictly above z[label].
double top5_reference(const float* z, int64_t cols, int64_t label) {
  int64_t above = 0;
  for (int64_t j = 0; j < cols; ++j) above += z[j] > z[label];
  return above < 5 ? 1.0 : 0.0;
}

// KernelBackend::distillation_loss from its doc comment, in double: stats and (when with_d) d.
void distillation_reference(const OpData& in, const OpData& out, int64_t rows, int64_t cols, double temperature,
                            double alpha, double scale, bool with_d) {
  const auto &s = in.f.at("z"), &t = in.f.at("teacher");
  const auto& y = in.i.at("labels");
  std::vector<double> d(s.size(), 0.0), stats = doubles(in.f.at("stats"));
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t label = y[static_cast<size_t>(r)];
    if (label == -1) continue;
    const float *sr = s.data() + r * cols, *tr = t.data() + r * cols;
    const double lse = log_sum_exp_reference(sr, cols), lse_s = log_sum_exp_reference(sr, cols, 1.0 / temperature),
                 lse_t = log_sum_exp_reference(tr, cols, 1.0 / temperature);
    double kl = 0.0;
    int64_t best = 0;
    for (int64_t j = 0; j < cols; ++j) {
      const double log_pt = tr[j] / temperature - lse_t, log_ps = sr[j] / temperature - lse_s;
      kl += std::exp(log_pt) * (log_pt - log_ps);
      if (sr[j] > sr[best]) best = j;
      d[static_cast<size_t>(r * cols + j)] =
          scale * (alpha * (std::exp(sr[j] - lse) - (j == label ? 1.0 : 0.0)) +
                   (1.0 - alpha) * temperature * (std::exp(log_ps) - std::exp(log_pt)));
    }
    stats[stat_loss] += alpha * (lse - sr[label]) + (1.0 - alpha) * temperature * temperature * kl;
    stats[stat_correct] += best == label ? 1.0 : 0.0;
    stats[stat_count] += 1.0;
    stats[stat_top5] += top5_reference(sr, cols, label);
  }
  if (with_d) check_near("d", out.f.at("d"), d, 1e-5);
  check_near("stats", out.f.at("stats"), stats, 1e-5);
}

// The adversarial ops' selected rows, from the doc comment's draw, for `rows` rows from row0.
std::vector<bool> selected_rows(const SampleKeys& keys, int64_t rows, float fraction) {
  std::vector<bool> v(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r)
    v[static_cast<size_t>(r)] = adversarial_row_selected(keys, keys.row0 + r, fraction);
  return v;
}

std::vector<OpCase> op_cases() {
  std::vector<OpCase> t;
  const int64_t n = 5000;  // more than one block of every grid, not a multiple of any block size

  // ---- vector operations
  t.push_back({"fill", 0, [=](OpData& d) { d.f["x"] = uniform(n, 1); },
               [=](KernelBackend& k, DeviceData& b) { k.fill(n, 0.75f, b.f("x")); }});
  t.push_back({"fill zero", 0, [=](OpData& d) { d.f["x"] = uniform(n, 1); },
               [=](KernelBackend& k, DeviceData& b) { k.fill(n - 3, 0.0f, b.f("x")); }});
  t.push_back({"copy", 0,
               [=](OpData& d) {
                 d.f["x"] = uniform(n, 1);
                 d.f["y"] = uniform(n, 2);
               },
               [=](KernelBackend& k, DeviceData& b) { k.copy(n - 1, b.f("x"), b.f("y")); }});
  t.push_back({"axpy", 1e-6,
               [=](OpData& d) {
                 d.f["x"] = uniform(n, 1);
                 d.f["y"] = uniform(n, 2);
               },
               [=](KernelBackend& k, DeviceData& b) { k.axpy(n, -0.3f, b.f("x"), b.f("y")); }});
  t.push_back({"scale", 0, [=](OpData& d) { d.f["x"] = uniform(n, 1); },
               [=](KernelBackend& k, DeviceData& b) { k.scale(n, 1.7f, b.f("x")); }});
  t.push_back({"add", 0,
               [=](OpData& d) {
                 d.f["a"] = uniform(n, 1);
                 d.f["b"] = uniform(n, 2);
                 d.f["y"] = uniform(n, 3);
               },
               [=](KernelBackend& k, DeviceData& b) { k.add(n, b.f("a"), b.f("b"), b.f("y")); }});
  t.push_back({"multiply", 0,
               [=](OpData& d) {
                 d.f["a"] = uniform(n, 1);
                 d.f["b"] = uniform(n, 2);
                 d.f["y"] = uniform(n, 3);
               },
               [=](KernelBackend& k, DeviceData& b) { k.multiply(n, b.f("a"), b.f("b"), b.f("y")); }});
  for (int64_t len : {int64_t{1}, int64_t{1000}, int64_t{300001}}) {
    t.push_back({"sum and sum_squares of " + std::to_string(len), 1e-5,
                 [=](OpData& d) { d.f["x"] = uniform(len, 4, -1.0f, 2.0f); },
                 [=](KernelBackend& k, DeviceData& b) {
                   b.results.push_back(k.sum(len, b.f("x")));
                   b.results.push_back(k.sum_squares(len, b.f("x")));
                 }});
  }

  // ---- GEMM: every transpose, sub-matrices (ld larger than the width), alpha and beta
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const int64_t m = 37, nn = 53, kk = 29, pad = 3;
      const int64_t lda = (ta ? m : kk) + pad, ldb = (tb ? kk : nn) + pad, ldc = nn + pad;
      const int64_t a_rows = ta ? kk : m, b_rows = tb ? nn : kk;
      t.push_back({std::string("gemm ") + (ta ? "T" : "N") + (tb ? "T" : "N"), 1e-5,
                   [=](OpData& d) {
                     d.f["a"] = uniform(a_rows * lda, 5);
                     d.f["b"] = uniform(b_rows * ldb, 6);
                     d.f["c"] = uniform(m * ldc, 7);
                   },
                   [=](KernelBackend& k, DeviceData& b) {
                     k.gemm(ta, tb, m, nn, kk, 0.7f, b.f("a"), lda, b.f("b"), ldb, 0.5f, b.f("c"), ldc);
                   }});
    }

  // ---- bias gradients, bias + activation, activations
  t.push_back({"row_bias_grad", 1e-5,
               [](OpData& d) {
                 d.f["dy"] = uniform(300 * 77, 8);
                 d.f["db"] = uniform(77, 9);
               },
               [](KernelBackend& k, DeviceData& b) { k.row_bias_grad(300, 77, b.f("dy"), b.f("db")); }});
  t.push_back({"channel_bias_grad", 1e-5,
               [](OpData& d) {
                 d.f["dy"] = uniform(6 * 5 * 49, 8);
                 d.f["db"] = uniform(5, 9);
               },
               [](KernelBackend& k, DeviceData& b) { k.channel_bias_grad(6, 5, 49, b.f("dy"), b.f("db")); }});
  for (Activation a : all_acts) {
    const float slope = 0.1f;
    const double tol = a == Activation::sigmoid || a == Activation::tanh ? 2e-6 : 0;
    for (int64_t hw : {int64_t{1}, int64_t{13}})
      for (bool bias : {true, false})
        t.push_back({"bias_activation " + activation_name(a) + " hw " + std::to_string(hw) + (bias ? "" : " no bias"),
                     bias ? std::max(tol, 1e-7) : tol,
                     [=](OpData& d) {
                       d.f["y"] = uniform(7 * 11 * hw, 10, -3.0f, 3.0f);
                       d.f["bias"] = uniform(11, 11);
                     },
                     [=](KernelBackend& k, DeviceData& b) {
                       k.bias_activation(a, slope, 7, 11, hw, bias ? b.f("bias") : nullptr, b.f("y"));
                     }});
    t.push_back({"activation " + activation_name(a), tol,
                 [=](OpData& d) {
                   d.f["x"] = uniform(n, 12, -4.0f, 4.0f);
                   d.f["y"] = uniform(n, 13);
                 },
                 [=](KernelBackend& k, DeviceData& b) { k.activation(a, slope, n, b.f("x"), b.f("y")); }});
    t.push_back(
        {"activation_backward " + activation_name(a), 1e-7,
         [=](OpData& d) {
           d.f["y"] = uniform(n, 12, a == Activation::sigmoid ? 0.0f : -1.0f, 1.0f);
           d.f["dy"] = uniform(n, 14);
           d.f["dx"] = uniform(n, 15);
         },
         [=](KernelBackend& k, DeviceData& b) { k.activation_backward(a, slope, n, b.f("y"), b.f("dy"), b.f("dx")); }});
  }

  // ---- maxout (ties included: the first piece equal to the max takes the gradient)
  t.push_back({"maxout and backward", 0,
               [](OpData& d) {
                 auto x = uniform(9 * 8 * 3, 16);
                 for (size_t i = 0; i < x.size(); i += 7) x[i + 1 < x.size() ? i + 1 : i] = x[i];  // ties
                 d.f["x"] = x;
                 d.f["y"] = uniform(9 * 8, 17);
                 d.f["dy"] = uniform(9 * 8, 18);
                 d.f["dx"] = uniform(9 * 8 * 3, 19);
               },
               [](KernelBackend& k, DeviceData& b) {
                 k.maxout(9, 8, 3, b.f("x"), b.f("y"));
                 k.maxout_backward(9, 8, 3, b.f("x"), b.f("y"), b.f("dy"), b.f("dx"));
               }});

  // ---- dropout: the masks are the same bits on every backend
  for (float p : {0.1f, 0.5f}) {
    SampleKeys keys{RandomKey::make(11, RandomPurpose::dropout, 3), (uint64_t{1} << 33) + 17, 123456789012};
    t.push_back({"dropout p " + std::to_string(p), 0,
                 [](OpData& d) {
                   d.f["x"] = uniform(33 * 101, 20);
                   d.f["y"] = uniform(33 * 101, 21);
                   d.f["dy"] = uniform(33 * 101, 22);
                   d.f["dx"] = uniform(33 * 101, 23);
                 },
                 [=](KernelBackend& k, DeviceData& b) {
                   k.dropout(33, 101, p, keys, b.f("x"), b.f("y"));
                   k.dropout_backward(33, 101, p, keys, b.f("dy"), b.f("dx"));
                 }});
  }

  // ---- adversarial inputs: the selection and the start noise are the same bits on every backend
  {
    const SampleKeys keys{RandomKey::make(11, RandomPurpose::adversarial, 0), (uint64_t{1} << 33) + 5, 98765432101};
    const int64_t rows = 41, row_size = 150;
    const float eps = 0.1f;
    auto inputs = [=](OpData& d) {
      d.f["x0"] = uniform(rows * row_size, 160);
      d.f["x"] = uniform(rows * row_size, 161);
      auto g = uniform(rows * row_size, 162);
      for (size_t i = 0; i < g.size(); i += 7) g[i] = 0.0f;  // sign(0) = 0
      d.f["g"] = g;
    };
    for (float fraction : {0.4f, 1.0f})
      for (bool random_start : {true, false})
        t.push_back(
            {"adversarial_start fraction " + std::to_string(fraction) + (random_start ? "" : " no noise"), 0, inputs,
             [=](KernelBackend& k, DeviceData& b) {
               k.adversarial_start(rows, row_size, eps, fraction, random_start, keys, b.f("x0"), b.f("x"));
             },
             // x0 + eps (2u - 1) with u draw e of the row's sample, on the selected rows.
             [=](const OpData& in, const OpData& out) {
               const auto& x0 = in.f.at("x0");
               const auto selected = selected_rows(keys, rows, fraction);
               std::vector<double> want(x0.size());
               for (int64_t r = 0; r < rows; ++r)
                 for (int64_t e = 0; e < row_size; ++e) {
                   const size_t i = static_cast<size_t>(r * row_size + e);
                   const double u = philox_uniform(keys.key, keys.step, static_cast<uint64_t>(keys.row0 + r),
                                                   static_cast<uint64_t>(e));
                   want[i] = x0[i] + (random_start && selected[static_cast<size_t>(r)] ? eps * (2.0 * u - 1.0) : 0.0);
                 }
               check_near("x", out.f.at("x"), want, 1e-6);
             }});
    // x starts near x0, some of it outside the box (clamped back).
    auto near_x0 = [=](OpData& d) {
      inputs(d);
      const auto noise = uniform(rows * row_size, 163, -1.3f * eps, 1.3f * eps);
      for (size_t i = 0; i < noise.size(); ++i) d.f["x"][i] = d.f["x0"][i] + noise[i];
    };
    t.push_back({"adversarial_step fraction 0.4", 0, near_x0,
                 [=](KernelBackend& k, DeviceData& b) {
                   k.adversarial_step(rows, row_size, 0.07f, eps, 0.4f, keys, b.f("x0"), b.f("g"), b.f("x"));
                 },
                 [=](const OpData& in, const OpData& out) {
                   const auto &x0 = in.f.at("x0"), &x = in.f.at("x"), &g = in.f.at("g");
                   const auto selected = selected_rows(keys, rows, 0.4f);
                   std::vector<double> want(x.size());
                   for (size_t i = 0; i < x.size(); ++i) {
                     want[i] = x[i];
                     if (!selected[i / static_cast<size_t>(row_size)]) continue;
                     const double v = x[i] + 0.07 * ((g[i] > 0) - (g[i] < 0));
                     want[i] = std::min(std::max(v, x0[i] - 0.1), x0[i] + 0.1);
                   }
                   check_near("x", out.f.at("x"), want, 1e-6);
                 }});
  }

  // ---- im2col / col2im and pooling over assorted geometries
  const Conv2dGeometry geos[] = {geometry(3, 9, 8, 3, 1, 0, 1), geometry(2, 10, 11, 3, 2, 1, 1),
                                 geometry(2, 9, 9, 3, 1, 2, 2), geometry(4, 6, 7, 5, 1, 2, 1, 3),
                                 geometry(1, 8, 8, 2, 2, 0, 1), geometry(3, 5, 5, 1, 1, 0, 1)};
  for (const auto& g : geos) {
    const int64_t col_size = g.channels * g.kernel_h * g.kernel_w * g.out_h() * g.out_w();
    const int64_t in_size = g.channels * g.height * g.width;
    t.push_back({"im2col " + geo_name(g), 0,
                 [=](OpData& d) {
                   d.f["x"] = uniform(in_size, 24);
                   d.f["col"] = uniform(col_size, 25);
                 },
                 [=](KernelBackend& k, DeviceData& b) { k.im2col(g, b.f("x"), b.f("col")); }});
    t.push_back({"col2im (+=) " + geo_name(g), 1e-6,
                 [=](OpData& d) {
                   d.f["col"] = uniform(col_size, 26);
                   d.f["dx"] = uniform(in_size, 27);
                 },
                 [=](KernelBackend& k, DeviceData& b) { k.col2im(g, b.f("col"), b.f("dx")); }});
    const int64_t batch = 3, out_size = batch * g.channels * g.out_h() * g.out_w();
    if (g.pad_h * 2 <= g.kernel_h) {  // windows that lie wholly in padding are not a pooling geometry
      t.push_back({"max_pool and backward " + geo_name(g), 0,
                   [=](OpData& d) {
                     auto x = uniform(batch * in_size, 28);
                     for (size_t i = 0; i + 1 < x.size(); i += 5) x[i + 1] = x[i];  // ties: first in scan order
                     d.f["x"] = x;
                     d.f["y"] = uniform(out_size, 29);
                     d.i["argmax"] = integers(out_size, 30, 0, 1);
                     d.f["dy"] = uniform(out_size, 31);
                     d.f["dx"] = uniform(batch * in_size, 32);
                   },
                   [=](KernelBackend& k, DeviceData& b) {
                     k.max_pool(batch, g, b.f("x"), b.f("y"), b.i("argmax"));
                     k.max_pool_backward(batch, g, b.f("dy"), b.i("argmax"), b.f("dx"));
                   }});
      t.push_back({"avg_pool and backward " + geo_name(g), 1e-6,
                   [=](OpData& d) {
                     d.f["x"] = uniform(batch * in_size, 33);
                     d.f["y"] = uniform(out_size, 34);
                     d.f["dy"] = uniform(out_size, 35);
                     d.f["dx"] = uniform(batch * in_size, 36);
                   },
                   [=](KernelBackend& k, DeviceData& b) {
                     k.avg_pool(batch, g, b.f("x"), b.f("y"));
                     k.avg_pool_backward(batch, g, b.f("dy"), b.f("dx"));
                   }});
    }
  }

  // ---- losses: stats accumulate onto what is there; gradients are overwritten
  const int64_t rows = 37;
  for (int64_t cols : {int64_t{1}, int64_t{10}, int64_t{300}}) {
    auto base = [=](OpData& d, uint32_t id) {
      d.f["z"] = uniform(rows * cols, id, -3.0f, 3.0f);
      d.f["d"] = uniform(rows * cols, id + 1);
      d.f["stats"] = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f};
      auto t = uniform(rows * cols, id + 2, 0.0f, 1.0f);
      d.f["targets"] = t;
      d.i["labels"] = integers(rows, id + 3, 0, static_cast<int32_t>(cols));
      d.i["binary"] = integers(rows, id + 4, 0, 2);
      std::vector<float> soft = t;  // rows of a distribution
      for (int64_t r = 0; r < rows; ++r) {
        float s = 0.0f;
        for (int64_t j = 0; j < cols; ++j) s += soft[static_cast<size_t>(r * cols + j)];
        for (int64_t j = 0; j < cols; ++j) soft[static_cast<size_t>(r * cols + j)] /= s;
      }
      d.f["soft"] = soft;
    };
    const std::string c = " cols " + std::to_string(cols);
    t.push_back({"softmax_cross_entropy labels" + c, 2e-5, [=](OpData& d) { base(d, 40); },
                 [=](KernelBackend& k, DeviceData& b) {
                   k.softmax_cross_entropy(rows, cols, b.f("z"), b.i("labels"), nullptr, 0.25f, b.f("d"), b.f("stats"));
                 }});
    // Rows labelled -1 (padding of per-step targets) add no loss and no count and get a zero
    // gradient; checked against log-sum-exp in double. With 10 classes also a batch of padding only.
    auto ce_reference = [=](const OpData& in, const OpData& out) {
      const auto& z = in.f.at("z");
      const auto& y = in.i.at("labels");
      std::vector<double> d(static_cast<size_t>(rows * cols)), stats = doubles(in.f.at("stats"));
      for (int64_t r = 0; r < rows; ++r) {
        if (y[static_cast<size_t>(r)] == -1) continue;
        const float* zr = z.data() + r * cols;
        int64_t best = 0;
        for (int64_t j = 1; j < cols; ++j)
          if (zr[j] > zr[best]) best = j;
        double sum = 0.0;
        for (int64_t j = 0; j < cols; ++j) sum += std::exp(static_cast<double>(zr[j]) - zr[best]);
        const double lse = zr[best] + std::log(sum);
        const int32_t label = y[static_cast<size_t>(r)];
        stats[stat_loss] += lse - zr[label];
        stats[stat_correct] += best == label ? 1.0 : 0.0;
        stats[stat_count] += 1.0;
        stats[stat_top5] += top5_reference(zr, cols, label);
        for (int64_t j = 0; j < cols; ++j)
          d[static_cast<size_t>(r * cols + j)] = 0.25 * (std::exp(zr[j] - lse) - (j == label ? 1.0 : 0.0));
      }
      check_near("d", out.f.at("d"), d, 1e-5);
      check_near("stats", out.f.at("stats"), stats, 1e-5);
    };
    for (int64_t every : {int64_t{3}, int64_t{1}}) {
      if (every == 1 && cols != 10) continue;
      t.push_back({"softmax_cross_entropy labels" + std::string(every == 1 ? ", all -1" : " with -1 rows") + c, 2e-5,
                   [=](OpData& d) {
                     base(d, 130);
                     for (int64_t r = 0; r < rows; r += every) d.i["labels"][static_cast<size_t>(r)] = -1;
                   },
                   [=](KernelBackend& k, DeviceData& b) {
                     k.softmax_cross_entropy(rows, cols, b.f("z"), b.i("labels"), nullptr, 0.25f, b.f("d"),
                                             b.f("stats"));
                   },
                   ce_reference});
    }
    t.push_back({"softmax_cross_entropy soft targets, no gradient" + c, 2e-5, [=](OpData& d) { base(d, 41); },
                 [=](KernelBackend& k, DeviceData& b) {
                   k.softmax_cross_entropy(rows, cols, b.f("z"), nullptr, b.f("soft"), 0.5f, nullptr, b.f("stats"));
                 }});
    t.push_back({"softmax_cross_entropy soft targets" + c, 2e-5, [=](OpData& d) { base(d, 42); },
                 [=](KernelBackend& k, DeviceData& b) {
                   k.softmax_cross_entropy(rows, cols, b.f("z"), nullptr, b.f("soft"), 0.5f, b.f("d"), b.f("stats"));
                 }});
    // Distillation with rows labelled -1, at a few temperatures and weights; without a gradient too.
    struct DistillRow {
      float temperature, alpha;
      bool with_d;
    };
    for (DistillRow dr : {DistillRow{2.0f, 0.3f, true}, DistillRow{1.0f, 0.0f, true}, DistillRow{4.0f, 0.0f, false},
                          DistillRow{0.5f, 0.9f, true}}) {
      t.push_back({"distillation_loss T " + std::to_string(dr.temperature) + " alpha " + std::to_string(dr.alpha) +
                       (dr.with_d ? "" : ", no gradient") + c,
                   2e-5,
                   [=](OpData& d) {
                     base(d, 170);
                     d.f["teacher"] = uniform(rows * cols, 175, -4.0f, 4.0f);
                     for (int64_t r = 2; r < rows; r += 5) d.i["labels"][static_cast<size_t>(r)] = -1;
                   },
                   [=](KernelBackend& k, DeviceData& b) {
                     k.distillation_loss(rows, cols, dr.temperature, dr.alpha, b.f("z"), b.f("teacher"), b.i("labels"),
                                         0.25f, dr.with_d ? b.f("d") : nullptr, b.f("stats"));
                   },
                   [=](const OpData& in, const OpData& out) {
                     distillation_reference(in, out, rows, cols, dr.temperature, dr.alpha, 0.25, dr.with_d);
                   }});
    }
    t.push_back({"sigmoid_cross_entropy labels" + c, 2e-5, [=](OpData& d) { base(d, 43); },
                 [=](KernelBackend& k, DeviceData& b) {
                   k.sigmoid_cross_entropy(rows, cols, b.f("z"), b.i("binary"), nullptr, 0.25f, b.f("d"), b.f("stats"));
                 }});
    t.push_back({"sigmoid_cross_entropy targets" + c, 2e-5, [=](OpData& d) { base(d, 44); },
                 [=](KernelBackend& k, DeviceData& b) {
                   k.sigmoid_cross_entropy(rows, cols, b.f("z"), nullptr, b.f("targets"), 0.25f, b.f("d"),
                                           b.f("stats"));
                 }});
    t.push_back({"mean_squared_error" + c, 1e-5, [=](OpData& d) { base(d, 45); },
                 [=](KernelBackend& k, DeviceData& b) {
                   k.mean_squared_error(rows, cols, b.f("z"), b.f("targets"), 0.25f, b.f("d"), b.f("stats"));
                 }});
    t.push_back({"multiclass_hinge" + c, 1e-5, [=](OpData& d) { base(d, 46); },
                 [=](KernelBackend& k, DeviceData& b) {
                   k.multiclass_hinge(rows, cols, b.f("z"), b.i("labels"), 1.0f, 0.25f, b.f("d"), b.f("stats"));
                 }});
    t.push_back({"prediction_entropy" + c, 2e-5, [=](OpData& d) { base(d, 47); },
                 [=](KernelBackend& k, DeviceData& b) {
                   k.prediction_entropy(rows, cols, b.f("z"), 0.25f, b.f("d"), b.f("stats"));
                 }});
    t.push_back({"softmax" + c, 2e-6, [=](OpData& d) { base(d, 48); },
                 [=](KernelBackend& k, DeviceData& b) { k.softmax(rows, cols, b.f("z"), b.f("d")); }});
  }
  for (auto shape : {KernelBackend::GanTerm::softplus, KernelBackend::GanTerm::linear, KernelBackend::GanTerm::relu,
                     KernelBackend::GanTerm::half_square}) {
    KernelBackend::GanTerm term;
    term.shape = shape;
    term.a = -1.0f;
    term.b = 0.5f;
    term.c = 2.0f;
    t.push_back(
        {"gan_loss shape " + std::to_string(static_cast<int>(shape)), 1e-5,
         [](OpData& d) {
           d.f["s"] = uniform(300, 49, -4.0f, 4.0f);
           d.f["d"] = uniform(300, 50);
           d.f["stats"] = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f};
         },
         [=](KernelBackend& k, DeviceData& b) { k.gan_loss(term, 300, b.f("s"), 0.125f, b.f("d"), b.f("stats")); }});
  }

  // ---- optimizers: every kind, with and without regularization, decay and clipping scale
  for (OptimizerKind kind : {OptimizerKind::sgd, OptimizerKind::momentum, OptimizerKind::nesterov,
                             OptimizerKind::adagrad, OptimizerKind::rmsprop, OptimizerKind::adam, OptimizerKind::adamw})
    for (bool reg : {false, true}) {
      OptimizerStep s;
      s.kind = kind;
      s.lr = 0.05f;
      s.grad_scale = 0.8f;
      s.bias_correction1 = 0.19f;
      s.bias_correction2 = 0.0199f;
      if (reg) {
        s.l1 = 1e-3f;
        s.l2 = 1e-2f;
      }
      if (kind == OptimizerKind::adamw) s.weight_decay = 0.1f;
      t.push_back(
          {"optimizer_update kind " + std::to_string(static_cast<int>(kind)) + (reg ? " l1+l2" : ""), 2e-6,
           [](OpData& d) {
             d.f["w"] = uniform(n, 51);
             d.f["g"] = uniform(n, 52);
             d.f["m"] = uniform(n, 53, 0.0f, 0.5f);  // non-negative: Adagrad/RMSProp/Adam's v are sums of squares
             d.f["v"] = uniform(n, 54, 0.0f, 0.5f);
           },
           [=](KernelBackend& k, DeviceData& b) { k.optimizer_update(s, n, b.f("w"), b.f("g"), b.f("m"), b.f("v")); }});
    }
  t.push_back({"clamp", 0, [](OpData& d) { d.f["x"] = uniform(n, 55, -2.0f, 2.0f); },
               [](KernelBackend& k, DeviceData& b) { k.clamp(n, -0.5f, 0.25f, b.f("x")); }});

  // ---- model breadth
  t.push_back({"copy_2d", 0,
               [](OpData& d) {
                 d.f["src"] = uniform(13 * 20, 56);
                 d.f["dst"] = uniform(13 * 17, 57);
               },
               [](KernelBackend& k, DeviceData& b) { k.copy_2d(13, 9, b.f("src") + 2, 20, b.f("dst") + 1, 17); }});
  const int64_t bn_n = 6, bn_c = 5, bn_hw = 23, bn_total = bn_n * bn_c * bn_hw;
  auto bn_data = [=](OpData& d) {
    d.f["x"] = uniform(bn_total, 58, 0.5f, 3.0f);
    d.f["dy"] = uniform(bn_total, 59);
    d.f["shift"] = uniform(bn_c, 60, 1.0f, 2.0f);
    d.d["sum"] = std::vector<double>(bn_c, 9.0);
    d.d["sumsq"] = std::vector<double>(bn_c, 9.0);
    d.d["sum_dy"] = std::vector<double>(bn_c, 9.0);
    d.d["sum_dy_xhat"] = std::vector<double>(bn_c, 9.0);
    d.f["mean"] = uniform(bn_c, 61);
    d.f["var"] = uniform(bn_c, 62, 0.1f, 1.0f);
    d.f["running_mean"] = uniform(bn_c, 63);
    d.f["running_var"] = uniform(bn_c, 64, 0.5f, 1.0f);
    d.f["gamma"] = uniform(bn_c, 65, 0.5f, 1.5f);
    d.f["beta"] = uniform(bn_c, 66);
    d.f["dgamma"] = uniform(bn_c, 67);
    d.f["dbeta"] = uniform(bn_c, 68);
    d.f["y"] = uniform(bn_total, 69);
    d.f["dx"] = uniform(bn_total, 70);
  };
  for (bool shifted : {false, true})
    t.push_back({std::string("batch norm train pass") + (shifted ? " shifted" : ""), 1e-5, bn_data,
                 [=](KernelBackend& k, DeviceData& b) {
                   const float* shift = shifted ? b.f("shift") : nullptr;
                   const double count = static_cast<double>(bn_n * bn_hw);
                   k.batch_norm_stats(bn_n, bn_c, bn_hw, b.f("x"), shift, b.d("sum"), b.d("sumsq"));
                   k.batch_norm_finalize(bn_c, count, 0.1f, shift, b.d("sum"), b.d("sumsq"), b.f("mean"), b.f("var"),
                                         b.f("running_mean"), b.f("running_var"));
                   k.batch_norm_forward(bn_n, bn_c, bn_hw, 1e-5f, b.f("x"), b.f("mean"), b.f("var"), b.f("gamma"),
                                        b.f("beta"), b.f("y"));
                   k.batch_norm_backward_reduce(bn_n, bn_c, bn_hw, 1e-5f, b.f("dy"), b.f("x"), b.f("mean"), b.f("var"),
                                                b.d("sum_dy"), b.d("sum_dy_xhat"), b.f("dgamma"), b.f("dbeta"));
                   k.batch_norm_backward(bn_n, bn_c, bn_hw, 1e-5f, count, b.f("dy"), b.f("x"), b.f("mean"), b.f("var"),
                                         b.f("gamma"), b.d("sum_dy"), b.d("sum_dy_xhat"), b.f("dx"));
                 }});
  t.push_back(
      {"batch norm eval (fixed statistics, no running update)", 1e-6, bn_data, [=](KernelBackend& k, DeviceData& b) {
         k.batch_norm_forward(bn_n, bn_c, bn_hw, 1e-5f, b.f("x"), b.f("running_mean"), b.f("running_var"), b.f("gamma"),
                              b.f("beta"), b.f("y"));
         k.batch_norm_backward(bn_n, bn_c, bn_hw, 1e-5f, 1.0, b.f("dy"), b.f("x"), b.f("running_mean"),
                               b.f("running_var"), b.f("gamma"), nullptr, nullptr, b.f("dx"));
         k.batch_norm_finalize(bn_c, 1.0, 0.1f, nullptr, b.d("sum"), b.d("sumsq"), b.f("mean"), b.f("var"), nullptr,
                               nullptr);
       }});
  for (int64_t cols : {int64_t{7}, int64_t{300}})
    for (bool params : {true, false})
      t.push_back({"layer norm cols " + std::to_string(cols) + (params ? "" : " no parameter gradients"), 1e-5,
                   [=](OpData& d) {
                     d.f["x"] = uniform(19 * cols, 71, -2.0f, 3.0f);
                     d.f["dy"] = uniform(19 * cols, 72);
                     d.f["gamma"] = uniform(cols, 73, 0.5f, 1.5f);
                     d.f["beta"] = uniform(cols, 74);
                     d.f["y"] = uniform(19 * cols, 75);
                     d.f["mean"] = uniform(19, 76);
                     d.f["inv_std"] = uniform(19, 77);
                     d.f["dx"] = uniform(19 * cols, 78);
                     d.f["dgamma"] = uniform(cols, 79);
                     d.f["dbeta"] = uniform(cols, 80);
                   },
                   [=](KernelBackend& k, DeviceData& b) {
                     k.layer_norm_forward(19, cols, 1e-5f, b.f("x"), b.f("gamma"), b.f("beta"), b.f("y"), b.f("mean"),
                                          b.f("inv_std"));
                     k.layer_norm_backward(19, cols, b.f("x"), b.f("dy"), b.f("gamma"), b.f("mean"), b.f("inv_std"),
                                           b.f("dx"), params ? b.f("dgamma") : nullptr,
                                           params ? b.f("dbeta") : nullptr);
                   }});
  t.push_back({"upsample_nearest and backward", 1e-6,
               [](OpData& d) {
                 d.f["x"] = uniform(4 * 5 * 6, 81);
                 d.f["y"] = uniform(4 * 15 * 12, 82);
                 d.f["dy"] = uniform(4 * 15 * 12, 83);
                 d.f["dx"] = uniform(4 * 5 * 6, 84);
               },
               [](KernelBackend& k, DeviceData& b) {
                 k.upsample_nearest(4, 5, 6, 3, 2, b.f("x"), b.f("y"));
                 k.upsample_nearest_backward(4, 5, 6, 3, 2, b.f("dy"), b.f("dx"));
               }});
  // [3, 5, 5] samples (one extra channel of 25) in groups of 4 with a shorter last group, and
  // 300 features (one extra) in groups of 3.
  for (auto [rows, group, features, extra] : {std::array<int64_t, 4>{13, 4, 75, 25}, {12, 3, 300, 1}})
    t.push_back({"minibatch_stddev and backward, group " + std::to_string(group), 1e-5,
                 [=](OpData& d) {
                   d.f["x"] = uniform(rows * features, 94, -2.0f, 3.0f);
                   d.f["y"] = uniform(rows * (features + extra), 95);
                   d.f["dy"] = uniform(rows * (features + extra), 96);
                   d.f["dx"] = uniform(rows * features, 97);
                 },
                 [=](KernelBackend& k, DeviceData& b) {
                   k.minibatch_stddev(rows, group, features, extra, b.f("x"), b.f("y"));
                   k.minibatch_stddev_backward(rows, group, features, extra, b.f("x"), b.f("dy"), b.f("dx"));
                 }});
  t.push_back({"max_unpool and backward (repeated and missing argmax)", 0,
               [](OpData& d) {
                 auto a = integers(6 * 10, 85, -1, 25);  // -1: no position; repeats: overlapping windows
                 d.i["argmax"] = a;
                 d.f["x"] = uniform(6 * 10, 86);
                 d.f["y"] = uniform(6 * 25, 87);
                 d.f["dy"] = uniform(6 * 25, 88);
                 d.f["dx"] = uniform(6 * 10, 89);
               },
               [](KernelBackend& k, DeviceData& b) {
                 k.max_unpool(6, 10, 25, b.f("x"), b.i("argmax"), b.f("y"));
                 k.max_unpool_backward(6, 10, 25, b.f("dy"), b.i("argmax"), b.f("dx"));
               }});
  t.push_back({"embedding and backward (repeated ids)", 0,
               [](OpData& d) {
                 std::vector<float> ids(40);
                 auto ints = integers(40, 90, 0, 7);
                 for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<float>(ints[i]) + 0.2f;  // rounded
                 d.f["ids"] = ids;
                 d.f["w"] = uniform(7 * 12, 91);
                 d.f["y"] = uniform(40 * 12, 92);
                 d.f["dy"] = uniform(40 * 12, 93);
                 d.f["dw"] = uniform(7 * 12, 94);
               },
               [](KernelBackend& k, DeviceData& b) {
                 k.embedding(40, 12, 7, b.f("ids"), b.f("w"), b.f("y"));
                 k.embedding_backward(40, 12, b.f("ids"), b.f("dy"), b.f("dw"));
               }});
  for (bool first : {true, false})
    t.push_back({std::string("lstm_cell and backward") + (first ? " (no c_prev)" : ""), 2e-6,
                 [](OpData& d) {
                   d.f["gates"] = uniform(9 * 4 * 11, 95, -3.0f, 3.0f);
                   d.f["c_prev"] = uniform(9 * 11, 96);
                   d.f["c"] = uniform(9 * 11, 97);
                   d.f["h"] = uniform(9 * 11, 98);
                   d.f["dh"] = uniform(9 * 11, 99);
                   d.f["dc"] = uniform(9 * 11, 100);
                   d.f["dgates"] = uniform(9 * 4 * 11, 101);
                 },
                 [=](KernelBackend& k, DeviceData& b) {
                   const float* c_prev = first ? nullptr : b.f("c_prev");
                   k.lstm_cell(9, 11, b.f("gates"), c_prev, b.f("c"), b.f("h"));
                   k.lstm_cell_backward(9, 11, b.f("gates"), c_prev, b.f("c"), b.f("dh"), b.f("dc"), b.f("dgates"));
                 }});
  for (bool sample : {true, false}) {
    SampleKeys keys{RandomKey::make(5, RandomPurpose::noise, 2), 41, 1000};
    t.push_back({std::string("gaussian_sample and backward") + (sample ? "" : " (mean only)"), 1e-5,
                 [](OpData& d) {
                   d.f["x"] = uniform(21 * 2 * 8, 102, -1.0f, 1.0f);
                   d.f["z"] = uniform(21 * 8, 103);
                   d.f["kl"] = {0.5f};
                   d.f["dz"] = uniform(21 * 8, 104);
                   d.f["dx"] = uniform(21 * 2 * 8, 105);
                 },
                 [=](KernelBackend& k, DeviceData& b) {
                   k.gaussian_sample(21, 8, sample, keys, b.f("x"), b.f("z"), b.f("kl"));
                   k.gaussian_sample_backward(21, 8, sample, keys, b.f("x"), b.f("dz"), 0.3f, b.f("dx"));
                 }});
  }

  for (bool first : {true, false}) {
    const int64_t gn = 9, hid = 11;
    t.push_back(
        {std::string("gru_cell and backward") + (first ? " (no h_prev)" : ""), 1e-5,
         [=](OpData& d) {
           d.f["gx"] = uniform(gn * 3 * hid, 120, -3.0f, 3.0f);
           d.f["gh"] = uniform(gn * 3 * hid, 121, -3.0f, 3.0f);
           d.f["h_prev"] = uniform(gn * hid, 122);
           d.f["h"] = uniform(gn * hid, 123);
           d.f["dh"] = uniform(gn * hid, 124);
           d.f["dgx"] = uniform(gn * 3 * hid, 125);
           d.f["dgh"] = uniform(gn * 3 * hid, 126);
           d.f["dh_prev"] = uniform(gn * hid, 127);
         },
         [=](KernelBackend& k, DeviceData& b) {
           const float* h_prev = first ? nullptr : b.f("h_prev");
           k.gru_cell(gn, hid, b.f("gx"), b.f("gh"), h_prev, b.f("h"));
           k.gru_cell_backward(gn, hid, b.f("gx"), b.f("gh"), h_prev, b.f("dh"), b.f("dgx"), b.f("dgh"),
                               first ? nullptr : b.f("dh_prev"));
         },
         // The doc comment's formulas in double; the gradients as central differences of
         // sum(dh * h) in each of the unit's seven inputs (gh held fixed, so dh_prev = z dh).
         [=](const OpData& in, const OpData& out) {
           const auto &gx = in.f.at("gx"), &gh = in.f.at("gh"), &hp = in.f.at("h_prev"), &dh = in.f.at("dh");
           std::vector<double> acts(gx.size()), h(static_cast<size_t>(gn * hid)), dgx(gx.size()), dgh(gx.size());
           std::vector<double> dh_prev = doubles(in.f.at("dh_prev"));  // untouched without h_prev
           for (int64_t r = 0; r < gn; ++r)
             for (int64_t j = 0; j < hid; ++j) {
               const size_t g[3] = {static_cast<size_t>(r * 3 * hid + j), static_cast<size_t>(r * 3 * hid + hid + j),
                                    static_cast<size_t>(r * 3 * hid + 2 * hid + j)};
               const size_t at = static_cast<size_t>(r * hid + j);
               std::array<double, 7> v = {
                   gx[g[0]], gx[g[1]], gx[g[2]], gh[g[0]], gh[g[1]], gh[g[2]], first ? 0.0 : hp[at]};
               auto unit = [&](const std::array<double, 7>& u) {
                 return gru_reference(u[0], u[1], u[2], u[3], u[4], u[5], u[6]);
               };
               const auto o = unit(v);
               for (int q = 0; q < 3; ++q) acts[g[q]] = o[static_cast<size_t>(q)];
               h[at] = o[3];
               double grad[7];
               for (size_t q = 0; q < 7; ++q) {
                 const double step = 1e-4;
                 auto up = v, down = v;
                 up[q] += step;
                 down[q] -= step;
                 grad[q] = dh[at] * (unit(up)[3] - unit(down)[3]) / (2.0 * step);
               }
               for (int q = 0; q < 3; ++q) {
                 dgx[g[q]] = grad[q];
                 dgh[g[q]] = grad[3 + q];
               }
               if (!first) dh_prev[at] = grad[6];
             }
           check_near("gx (r, z, c)", out.f.at("gx"), acts, 1e-6);
           check_near("h", out.f.at("h"), h, 1e-6);
           check_near("dgx", out.f.at("dgx"), dgx, 1e-5);
           check_near("dgh", out.f.at("dgh"), dgh, 1e-5);
           check_near("dh_prev", out.f.at("dh_prev"), dh_prev, first ? 0.0 : 1e-5);
         }});
  }

  // ---- sequences and attention
  t.push_back({"gelu and backward", 1e-6,
               [=](OpData& d) {
                 auto x = uniform(n, 131, -6.0f, 6.0f);
                 x[0] = 0.0f;
                 x[1] = -12.0f;
                 x[2] = 12.0f;
                 d.f["x"] = x;
                 d.f["y"] = uniform(n, 132);
                 d.f["dy"] = uniform(n, 133);
                 d.f["dx"] = uniform(n, 134);
               },
               [=](KernelBackend& k, DeviceData& b) {
                 k.gelu(n, b.f("x"), b.f("y"));
                 k.gelu_backward(n, b.f("x"), b.f("dy"), b.f("dx"));
               },
               // 0.5 x (1 + erf(x / sqrt 2)) in double, and the gradient as a central difference of it.
               [=](const OpData& in, const OpData& out) {
                 const auto &x = in.f.at("x"), &dy = in.f.at("dy");
                 std::vector<double> y(x.size()), dx(x.size());
                 for (size_t i = 0; i < x.size(); ++i) {
                   const double step = 1e-4;
                   y[i] = gelu_reference(x[i]);
                   dx[i] = dy[i] * (gelu_reference(x[i] + step) - gelu_reference(x[i] - step)) / (2.0 * step);
                 }
                 check_near("y", out.f.at("y"), y, 1e-6);
                 check_near("dx", out.f.at("dx"), dx, 1e-6);
               }});
  // Batched GEMM as attention calls it: A's items interleaved in one wide matrix (heads side by side,
  // the stride one head's width), B's and C's stacked with gaps; every transpose, alpha and beta.
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const int64_t m = 7, nn = 9, kk = 5, batch = 4;
      const int64_t a_rows = ta ? kk : m, a_cols = ta ? m : kk, b_rows = tb ? nn : kk, b_cols = tb ? kk : nn;
      const int64_t lda = batch * a_cols + 2, stride_a = a_cols;
      const int64_t ldb = b_cols + 1, stride_b = b_rows * ldb + 3;
      const int64_t ldc = nn + 2, stride_c = m * ldc + 5;
      t.push_back({std::string("gemm_batched ") + (ta ? "T" : "N") + (tb ? "T" : "N"), 1e-5,
                   [=](OpData& d) {
                     d.f["a"] = uniform(a_rows * lda, 135);
                     d.f["b"] = uniform(batch * stride_b, 136);
                     d.f["c"] = uniform(batch * stride_c, 137);
                   },
                   [=](KernelBackend& k, DeviceData& b) {
                     k.gemm_batched(ta, tb, m, nn, kk, 0.7f, b.f("a"), lda, stride_a, b.f("b"), ldb, stride_b, 0.5f,
                                    b.f("c"), ldc, stride_c, batch);
                   },
                   // Against the CPU backend's gemm item by item, and a product in double (the
                   // gaps between C's items must stay as they were).
                   [=](const OpData& in, const OpData& out) {
                     std::vector<float> per_item = in.f.at("c");
                     std::vector<double> want = doubles(in.f.at("c"));
                     for (int64_t i = 0; i < batch; ++i) {
                       const float* a = in.f.at("a").data() + i * stride_a;
                       const float* b = in.f.at("b").data() + i * stride_b;
                       kernels(Device::cpu)
                           .gemm(ta, tb, m, nn, kk, 0.7f, a, lda, b, ldb, 0.5f, per_item.data() + i * stride_c, ldc);
                       gemm_reference(ta, tb, m, nn, kk, static_cast<double>(0.7f), a, lda, b, ldb, 0.5,
                                      want.data() + i * stride_c, ldc);
                     }
                     check_near("c (per-item gemm)", out.f.at("c"), doubles(per_item), 1e-5);
                     check_near("c (double)", out.f.at("c"), want, 1e-5);
                   }});
    }
  t.push_back({"gemm_batched NN contiguous, larger", 1e-5,
               [](OpData& d) {
                 d.f["a"] = uniform(3 * 40 * 70, 138);
                 d.f["b"] = uniform(3 * 70 * 50, 139);
                 d.f["c"] = uniform(3 * 40 * 50, 140);
               },
               [](KernelBackend& k, DeviceData& b) {
                 k.gemm_batched(false, false, 40, 50, 70, 1.0f, b.f("a"), 70, 40 * 70, b.f("b"), 50, 70 * 50, 0.0f,
                                b.f("c"), 50, 40 * 50, 3);
               },
               [](const OpData& in, const OpData& out) {
                 std::vector<double> want(3 * 40 * 50, 0.0);
                 for (int64_t i = 0; i < 3; ++i)
                   gemm_reference(false, false, 40, 50, 70, 1.0, in.f.at("a").data() + i * 40 * 70, 70,
                                  in.f.at("b").data() + i * 70 * 50, 50, 0.0, want.data() + i * 40 * 50, 50);
                 check_near("c", out.f.at("c"), want, 1e-5);
               }});
  // Attention weights over [samples, heads, T, T] scores: sample 0 keeps every key, sample 1 none
  // (all-zero weights), sample 2 loses key 0 (so a causal query 0 has no key) and key 3.
  for (int64_t steps : {int64_t{5}, int64_t{37}})
    for (bool causal : {false, true})
      for (bool masked : {false, true}) {
        const int64_t samples = 3, heads = 2, rows = samples * heads * steps;
        const float scale = 0.35f;
        t.push_back(
            {"attention_softmax T " + std::to_string(steps) + (causal ? " causal" : "") + (masked ? " key mask" : ""),
             2e-6,
             [=](OpData& d) {
               d.f["s"] = uniform(rows * steps, 141, -4.0f, 4.0f);
               std::vector<float> keep(static_cast<size_t>(samples * steps), 1.0f);
               for (int64_t j = 0; j < steps; ++j) keep[static_cast<size_t>(steps + j)] = 0.0f;
               keep[static_cast<size_t>(2 * steps)] = 0.0f;
               keep[static_cast<size_t>(2 * steps + 3)] = 0.0f;
               d.f["key_mask"] = keep;
             },
             [=](KernelBackend& k, DeviceData& b) {
               k.attention_softmax(samples, heads, steps, scale, causal, masked ? b.f("key_mask") : nullptr, b.f("s"));
             },
             // softmax_j(scale s) in double over the kept keys, zeros elsewhere.
             [=](const OpData& in, const OpData& out) {
               const auto &s = in.f.at("s"), &keep = in.f.at("key_mask");
               std::vector<double> want(s.size(), 0.0);
               for (int64_t r = 0; r < rows; ++r) {
                 const int64_t sample = r / (heads * steps), query = r % steps;
                 auto kept = [&](int64_t j) {
                   return (!causal || j <= query) && (!masked || keep[static_cast<size_t>(sample * steps + j)] != 0.0f);
                 };
                 double m = -INFINITY, sum = 0.0;
                 for (int64_t j = 0; j < steps; ++j)
                   if (kept(j)) m = std::max(m, static_cast<double>(scale) * s[static_cast<size_t>(r * steps + j)]);
                 for (int64_t j = 0; j < steps; ++j)
                   if (kept(j)) sum += std::exp(static_cast<double>(scale) * s[static_cast<size_t>(r * steps + j)] - m);
                 for (int64_t j = 0; j < steps; ++j)
                   if (kept(j))
                     want[static_cast<size_t>(r * steps + j)] =
                         std::exp(static_cast<double>(scale) * s[static_cast<size_t>(r * steps + j)] - m) / sum;
               }
               check_near("weights", out.f.at("s"), want, 1e-6);
             }});
      }
  for (int64_t cols : {int64_t{5}, int64_t{37}}) {
    const int64_t rows = 23;
    t.push_back(
        {"softmax_backward cols " + std::to_string(cols), 1e-5,
         [=](OpData& d) {
           auto p = uniform(rows * cols, 142, 0.0f, 1.0f);  // rows of a distribution; row 1 all zero
           for (int64_t r = 0; r < rows; ++r) {
             float sum = 0.0f;
             for (int64_t j = 0; j < cols; ++j) sum += p[static_cast<size_t>(r * cols + j)];
             for (int64_t j = 0; j < cols; ++j)
               p[static_cast<size_t>(r * cols + j)] = r == 1 ? 0.0f : p[static_cast<size_t>(r * cols + j)] / sum;
           }
           d.f["p"] = p;
           d.f["dp"] = uniform(rows * cols, 143);
           d.f["ds"] = uniform(rows * cols, 144);
         },
         [=](KernelBackend& k, DeviceData& b) {
           k.softmax_backward(rows, cols, 0.35f, b.f("p"), b.f("dp"), b.f("ds"));
         },
         [=](const OpData& in, const OpData& out) {
           const auto &p = in.f.at("p"), &dp = in.f.at("dp");
           std::vector<double> want(p.size());
           for (int64_t r = 0; r < rows; ++r) {
             double dot = 0.0;
             for (int64_t j = 0; j < cols; ++j)
               dot += static_cast<double>(p[static_cast<size_t>(r * cols + j)]) * dp[static_cast<size_t>(r * cols + j)];
             for (int64_t j = 0; j < cols; ++j) {
               const size_t i = static_cast<size_t>(r * cols + j);
               want[i] = 0.35 * p[i] * (dp[i] - dot);
             }
           }
           check_near("ds", out.f.at("ds"), want, 1e-6);
         }});
  }
  t.push_back({"token_mask", 0,
               [](OpData& d) {
                 auto ints = integers(300, 145, 0, 5);  // 0 is the padding id
                 d.f["ids"] = std::vector<float>(ints.begin(), ints.end());
                 d.f["mask"] = uniform(300, 146);
               },
               [](KernelBackend& k, DeviceData& b) { k.token_mask(300, b.f("ids"), 0.0f, b.f("mask")); },
               [](const OpData& in, const OpData& out) {
                 std::vector<double> want(300);
                 for (size_t i = 0; i < want.size(); ++i) want[i] = in.f.at("ids")[i] != 0.0f ? 1.0 : 0.0;
                 check_near("mask", out.f.at("mask"), want, 0.0);
               }});
  // Masked means over [samples, T, dim]: sample 0 keeps every step, sample 2 none (zeros), the
  // others some; and without a mask.
  for (int64_t dim : {int64_t{7}, int64_t{300}})
    for (bool masked : {true, false}) {
      const int64_t samples = 4, steps = 9;
      t.push_back({"sequence_mean and backward dim " + std::to_string(dim) + (masked ? "" : " no mask"), 1e-6,
                   [=](OpData& d) {
                     d.f["x"] = uniform(samples * steps * dim, 147, -2.0f, 2.0f);
                     auto keep = integers(samples * steps, 148, 0, 2);
                     std::vector<float> mask(keep.begin(), keep.end());
                     for (int64_t t = 0; t < steps; ++t) {
                       mask[static_cast<size_t>(t)] = 1.0f;
                       mask[static_cast<size_t>(2 * steps + t)] = 0.0f;
                     }
                     d.f["mask"] = mask;
                     d.f["y"] = uniform(samples * dim, 149);
                     d.f["dy"] = uniform(samples * dim, 150);
                     d.f["dx"] = uniform(samples * steps * dim, 151);
                   },
                   [=](KernelBackend& k, DeviceData& b) {
                     const float* mask = masked ? b.f("mask") : nullptr;
                     k.sequence_mean(samples, steps, dim, b.f("x"), mask, b.f("y"));
                     k.sequence_mean_backward(samples, steps, dim, b.f("dy"), mask, b.f("dx"));
                   },
                   [=](const OpData& in, const OpData& out) {
                     const auto &x = in.f.at("x"), &mask = in.f.at("mask"), &dy = in.f.at("dy");
                     std::vector<double> y(static_cast<size_t>(samples * dim), 0.0), dx(x.size(), 0.0);
                     for (int64_t s = 0; s < samples; ++s) {
                       double count = 0.0;
                       for (int64_t t = 0; t < steps; ++t)
                         count += masked ? mask[static_cast<size_t>(s * steps + t)] : 1.0;
                       if (count == 0.0) continue;  // no step left: zeros
                       for (int64_t t = 0; t < steps; ++t) {
                         const double w = (masked ? mask[static_cast<size_t>(s * steps + t)] : 1.0) / count;
                         for (int64_t j = 0; j < dim; ++j) {
                           y[static_cast<size_t>(s * dim + j)] += w * x[static_cast<size_t>((s * steps + t) * dim + j)];
                           dx[static_cast<size_t>((s * steps + t) * dim + j)] =
                               w * dy[static_cast<size_t>(s * dim + j)];
                         }
                       }
                     }
                     check_near("y", out.f.at("y"), y, 1e-6);
                     check_near("dx", out.f.at("dx"), dx, 1e-6);
                   }});
    }

  // ---- whole-batch convolution and dense forward
  struct ConvRow {
    int64_t n, c, h, w, oc, k, stride, pad, dil, groups;
    Activation act;
    bool bias;
  };
  const ConvRow convs[] = {{4, 3, 9, 9, 5, 3, 1, 1, 1, 1, Activation::relu, true},
                           {1, 2, 8, 7, 4, 3, 2, 1, 1, 1, Activation::tanh, true},
                           {3, 4, 7, 7, 6, 3, 1, 2, 2, 2, Activation::identity, false},
                           {2, 3, 6, 6, 3, 3, 1, 1, 1, 3, Activation::sigmoid, true},
                           {5, 4, 5, 5, 8, 1, 1, 0, 1, 1, Activation::leaky_relu, true}};
  for (const ConvRow& r : convs) {
    Conv2dSpec spec{geometry(r.c, r.h, r.w, r.k, r.stride, r.pad, r.dil), r.oc, r.groups};
    const int64_t in_size = r.n * r.c * r.h * r.w,
                  out_size = r.n * r.oc * spec.geometry.out_h() * spec.geometry.out_w();
    const int64_t w_size = r.oc * (r.c / r.groups) * r.k * r.k;
    t.push_back({"conv2d forward and backward n " + std::to_string(r.n) + " " + geo_name(spec.geometry) + " oc " +
                     std::to_string(r.oc) + " groups " + std::to_string(r.groups) + " " + activation_name(r.act),
                 2e-5,
                 [=](OpData& d) {
                   d.f["x"] = uniform(in_size, 106);
                   d.f["w"] = uniform(w_size, 107);
                   d.f["bias"] = uniform(r.oc, 108);
                   d.f["y"] = uniform(out_size, 109);
                   d.f["dout"] = uniform(out_size, 110);
                   d.f["dx"] = uniform(in_size, 111);
                   d.f["dw"] = uniform(w_size, 112);
                   d.f["dbias"] = uniform(r.oc, 113);
                 },
                 [=](KernelBackend& k, DeviceData& b) {
                   LayerScratch scratch;
                   float* bias = r.bias ? b.f("bias") : nullptr;
                   k.conv2d_forward(spec, r.n, b.f("x"), b.f("w"), bias, r.act, 0.1f, b.f("y"), scratch);
                   k.conv2d_backward(spec, r.n, b.f("x"), b.f("w"), b.f("y"), b.f("dout"), r.act, 0.1f, b.f("dx"),
                                     b.f("dw"), r.bias ? b.f("dbias") : nullptr, scratch);
                   // Again with only the input gradient (a frozen layer): dw and dbias stay.
                   k.conv2d_backward(spec, r.n, b.f("x"), b.f("w"), b.f("y"), b.f("dout"), r.act, 0.1f, b.f("dx"),
                                     nullptr, nullptr, scratch);
                 }});
  }
  for (bool bias : {true, false})
    t.push_back({std::string("dense_forward") + (bias ? "" : " no bias"), 1e-5,
                 [](OpData& d) {
                   d.f["x"] = uniform(33 * 70, 114);
                   d.f["w"] = uniform(45 * 70, 115);
                   d.f["b"] = uniform(45, 116);
                   d.f["y"] = uniform(33 * 45, 117);
                 },
                 [=](KernelBackend& k, DeviceData& b) {
                   LayerScratch scratch;
                   k.dense_forward(33, 70, 45, b.f("x"), b.f("w"), bias ? b.f("b") : nullptr, Activation::relu, 0.0f,
                                   b.f("y"), scratch);
                 }});
  return t;
}

OpData run_case(const OpCase& c, Device device) {
  OpData host;
  c.make(host);
  DeviceData data(host, device);
  c.run(kernels(device), data);
  return data.download(host);
}

// Worst |got - want| / max(1, |want|) over the float and double buffers and the results; integer
// buffers must be equal (a mismatch counts as infinity). `where` names the worst place.
double worst_difference(const OpData& got, const OpData& want, std::string& where) {
  double worst = 0.0;
  auto consider = [&](double a, double b, const std::string& name, size_t i) {
    double diff = a == b ? 0.0 : std::fabs(a - b) / std::max(1.0, std::fabs(b));
    if (std::isnan(diff) || (std::isnan(a) != std::isnan(b))) diff = INFINITY;
    if (diff > worst) {
      worst = diff;
      where = name + "[" + std::to_string(i) + "]: got " + std::to_string(a) + ", want " + std::to_string(b);
    }
  };
  for (auto& [k, v] : want.f)
    for (size_t i = 0; i < v.size(); ++i) consider(got.f.at(k)[i], v[i], k, i);
  for (auto& [k, v] : want.d)
    for (size_t i = 0; i < v.size(); ++i) consider(got.d.at(k)[i], v[i], k, i);
  for (auto& [k, v] : want.i)
    for (size_t i = 0; i < v.size(); ++i)
      if (got.i.at(k)[i] != v[i]) consider(INFINITY, 0.0, k + " (integers)", i);
  REQUIRE(got.results.size() == want.results.size());
  for (size_t i = 0; i < want.results.size(); ++i) consider(got.results[i], want.results[i], "result", i);
  return worst;
}

// Bitwise equality of every buffer (for tolerance 0).
bool same_bits(const OpData& a, const OpData& b) {
  for (auto& [k, v] : a.f)
    if (std::memcmp(v.data(), b.f.at(k).data(), v.size() * sizeof(float)) != 0) return false;
  for (auto& [k, v] : a.d)
    if (std::memcmp(v.data(), b.d.at(k).data(), v.size() * sizeof(double)) != 0) return false;
  for (auto& [k, v] : a.i)
    if (v != b.i.at(k)) return false;
  return a.results == b.results;
}

}  // namespace

TEST_CASE("every backend operation matches the CPU backend on CUDA", "[cuda][models]") {
  if (!cuda_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  for (const OpCase& c : op_cases()) {
    DYNAMIC_SECTION(c.name) {
      const OpData want = run_case(c, Device::cpu);
      const OpData got = run_case(c, Device::cuda);
      std::string where;
      const double worst = worst_difference(got, want, where);
      INFO(c.name << ": worst relative difference " << worst << " at " << where << " (tolerance " << c.tol << ")");
      if (c.tol == 0)
        CHECK(same_bits(got, want));
      else
        CHECK(worst <= c.tol);
      // The CUDA backend is deterministic too: a second run gives the same bits.
      CHECK(same_bits(run_case(c, Device::cuda), got));
      if (c.reference) {
        OpData in;
        c.make(in);
        c.reference(in, got);
      }
    }
  }
}

TEST_CASE("bad labels and ids found on the GPU are reported as bad input at the next synchronization",
          "[cuda][models]") {
  if (!cuda_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  OpData host;
  host.f["z"] = uniform(4 * 10, 1);
  host.f["stats"] = std::vector<float>(num_loss_stats, 0.0f);
  host.i["labels"] = {1, 12, 3, 0};
  DeviceData data(host, Device::cuda);
  KernelBackend& k = kernels(Device::cuda);
  k.softmax_cross_entropy(4, 10, data.f("z"), data.i("labels"), nullptr, 1.0f, nullptr, data.f("stats"));
  try {
    k.synchronize();
    FAIL("no error reported");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::bad_input);
    CHECK(std::string(e.what()) == "label 12 out of range for 10 outputs");
  }
  k.synchronize();  // reported once; the backend goes on working
  host.f["ids"] = {0.0f, 3.0f, 9.0f};
  host.f["w"] = uniform(4 * 2, 2);
  host.f["y"] = uniform(3 * 2, 3);
  DeviceData emb(host, Device::cuda);
  k.embedding(3, 2, 4, emb.f("ids"), emb.f("w"), emb.f("y"));
  CHECK_THROWS_WITH(k.synchronize(), "embedding: id 9 is outside [0, 4)");
}

TEST_CASE("every backend operation runs on the CPU and repeats bit for bit", "[models]") {
  // The table itself on the reference backend: every row runs (buffers large enough, names
  // right), every output is written deterministically, and the comparison sees a change of one ulp.
  for (const OpCase& c : op_cases()) {
    DYNAMIC_SECTION(c.name) {
      const OpData a = run_case(c, Device::cpu), b = run_case(c, Device::cpu);
      CHECK(same_bits(a, b));
      std::string where;
      CHECK(worst_difference(a, b, where) == 0.0);
      OpData nudged = a;
      bool changed = false;
      for (auto& [k, v] : nudged.f)
        if (!v.empty() && !changed) {
          v[v.size() / 2] = std::nextafter(v[v.size() / 2], INFINITY);
          changed = true;
        }
      if (changed) {
        CHECK_FALSE(same_bits(nudged, a));
        CHECK(worst_difference(nudged, a, where) > 0.0);
      }
      if (c.reference) {  // the CPU's results against the row's plain reference
        OpData in;
        c.make(in);
        c.reference(in, a);
      }
    }
  }
}

namespace {

// The CPU, and CUDA where this machine has it.
std::vector<Device> test_devices() {
  std::vector<Device> v{Device::cpu};
  if (cuda_available()) v.push_back(Device::cuda);
  return v;
}

}  // namespace

TEST_CASE("top-5 counts rows with fewer than 5 logits above the label's, ties in its favour", "[models]") {
  // 7 classes: the label ranks first (and is right), 6th, 5th, tied with all, behind 5 ties; padding.
  const std::vector<float> z = {0, 1, 2, 3, 4, 5, 6,  //
                                0, 1, 2, 3, 4, 5, 6,  //
                                0, 1, 2, 3, 4, 5, 6,  //
                                1, 1, 1, 1, 1, 1, 1,  //
                                5, 5, 5, 5, 5, 0, 0,  //
                                0, 1, 2, 3, 4, 5, 6};
  const std::vector<int32_t> labels = {6, 1, 2, 3, 5, -1};
  std::vector<float> soft(z.size(), 0.02f);  // targets whose argmax is the label
  for (size_t r = 0; r < 5; ++r) soft[r * 7 + static_cast<size_t>(labels[r])] = 0.88f;
  for (Device device : test_devices()) {
    INFO(device_name(device));
    OpData host;
    host.f["z"] = z;
    host.f["teacher"] = uniform(static_cast<int64_t>(z.size()), 180);
    host.f["soft"] = soft;
    host.i["labels"] = labels;
    for (const char* s : {"ce", "ce_soft", "distill", "few", "others"}) host.f[s] = {0.5f, 0.5f, 0.5f, 0.5f, 7.0f};
    host.f["z5"] = {4, 3, 2, 1, 0, 4, 3, 2, 1, 0};  // 5 classes: the last one still counts
    host.i["labels5"] = {4, 0};
    DeviceData b(host, device);
    KernelBackend& k = kernels(device);
    k.softmax_cross_entropy(6, 7, b.f("z"), b.i("labels"), nullptr, 1.0f, nullptr, b.f("ce"));
    k.softmax_cross_entropy(5, 7, b.f("z"), nullptr, b.f("soft"), 1.0f, nullptr, b.f("ce_soft"));
    k.distillation_loss(6, 7, 2.0f, 0.5f, b.f("z"), b.f("teacher"), b.i("labels"), 1.0f, nullptr, b.f("distill"));
    k.softmax_cross_entropy(2, 5, b.f("z5"), b.i("labels5"), nullptr, 1.0f, nullptr, b.f("few"));
    // The other losses leave stat_top5 alone.
    float* o = b.f("others");
    k.sigmoid_cross_entropy(5, 7, b.f("z"), nullptr, b.f("soft"), 1.0f, nullptr, o);
    k.mean_squared_error(5, 7, b.f("z"), b.f("soft"), 1.0f, nullptr, o);
    k.multiclass_hinge(5, 7, b.f("z"), b.i("labels"), 1.0f, 1.0f, nullptr, o);
    k.prediction_entropy(5, 7, b.f("z"), 1.0f, nullptr, o);
    k.gan_loss(KernelBackend::GanTerm{}, 5, b.f("z"), 1.0f, nullptr, o);
    const OpData out = b.download(host);
    for (const char* s : {"ce", "ce_soft", "distill"}) {
      INFO(s);
      CHECK(out.f.at(s)[stat_top5] == 7.0f + 3.0f);  // rows 0, 2 and 3
      CHECK(out.f.at(s)[stat_correct] == 0.5f + 1.0f);
      CHECK(out.f.at(s)[stat_count] == 0.5f + 5.0f);
    }
    CHECK(out.f.at("few")[stat_top5] == 7.0f + 2.0f);
    CHECK(out.f.at("others")[stat_top5] == 7.0f);
  }
}

TEST_CASE("distillation with alpha 1 is softmax cross-entropy, and with alpha 0 against itself 0", "[models]") {
  const int64_t rows = 29, cols = 12;
  for (Device device : test_devices()) {
    INFO(device_name(device));
    OpData host;
    host.f["z"] = uniform(rows * cols, 181, -5.0f, 5.0f);
    host.f["teacher"] = uniform(rows * cols, 182, -5.0f, 5.0f);
    auto labels = integers(rows, 183, 0, static_cast<int32_t>(cols));
    labels[3] = labels[17] = -1;
    host.i["labels"] = labels;
    for (const char* s : {"d_ce", "d_kd", "d_self"}) host.f[s] = uniform(rows * cols, 184);
    for (const char* s : {"ce", "kd", "self"}) host.f[s] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    DeviceData b(host, device);
    KernelBackend& k = kernels(device);
    k.softmax_cross_entropy(rows, cols, b.f("z"), b.i("labels"), nullptr, 0.5f, b.f("d_ce"), b.f("ce"));
    k.distillation_loss(rows, cols, 3.0f, 1.0f, b.f("z"), b.f("teacher"), b.i("labels"), 0.5f, b.f("d_kd"), b.f("kd"));
    k.distillation_loss(rows, cols, 3.0f, 0.0f, b.f("z"), b.f("z"), b.i("labels"), 0.5f, b.f("d_self"), b.f("self"));
    const OpData out = b.download(host);
    for (int i = 0; i < num_loss_stats; ++i) CHECK(out.f.at("kd")[i] == Approx(out.f.at("ce")[i]).epsilon(1e-6));
    check_near("d", out.f.at("d_kd"), doubles(out.f.at("d_ce")), 1e-6);
    CHECK(out.f.at("self")[stat_loss] == Approx(0.0).margin(1e-5));
    check_near("d against itself", out.f.at("d_self"), std::vector<double>(rows * cols, 0.0), 1e-6);
    CHECK(out.f.at("self")[stat_count] == rows - 2);
  }
}

TEST_CASE("distillation's soft term scales with T^2, its gradient with T", "[models]") {
  // With alpha 0, loss(T; s, t) = T^2 loss(1; s / T, t / T) and d(T; s, t) = T d(1; s / T, t / T);
  // T a power of 2 keeps s / T exact.
  const int64_t rows = 13, cols = 9;
  for (Device device : test_devices())
    for (float temperature : {2.0f, 4.0f}) {
      INFO(device_name(device) << " T " << temperature);
      OpData host;
      host.f["z"] = uniform(rows * cols, 185, -6.0f, 6.0f);
      host.f["teacher"] = uniform(rows * cols, 186, -6.0f, 6.0f);
      host.f["z1"] = host.f["z"];
      host.f["teacher1"] = host.f["teacher"];
      for (auto* v : {&host.f["z1"], &host.f["teacher1"]})
        for (auto& x : *v) x /= temperature;
      host.i["labels"] = integers(rows, 187, 0, static_cast<int32_t>(cols));
      host.f["d"] = host.f["d1"] = uniform(rows * cols, 188);
      host.f["stats"] = host.f["stats1"] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
      DeviceData b(host, device);
      KernelBackend& k = kernels(device);
      k.distillation_loss(rows, cols, temperature, 0.0f, b.f("z"), b.f("teacher"), b.i("labels"), 1.0f, b.f("d"),
                          b.f("stats"));
      k.distillation_loss(rows, cols, 1.0f, 0.0f, b.f("z1"), b.f("teacher1"), b.i("labels"), 1.0f, b.f("d1"),
                          b.f("stats1"));
      const OpData out = b.download(host);
      const double loss = out.f.at("stats")[stat_loss], loss1 = out.f.at("stats1")[stat_loss];
      CHECK(loss1 > 0.1);
      CHECK(loss == Approx(temperature * temperature * loss1).epsilon(1e-5));
      std::vector<double> want = doubles(out.f.at("d1"));
      for (auto& v : want) v *= temperature;
      check_near("d", out.f.at("d"), want, 1e-6);
    }
}

TEST_CASE("adversarial rows: the selected share, the epsilon box and noise independent of the split", "[models]") {
  const SampleKeys keys{RandomKey::make(3, RandomPurpose::adversarial, 0), 12, 0};
  // The selection draw: about `fraction` of many rows, none at 0 and all at 1.
  const int64_t many = 100000;
  for (float fraction : {0.0f, 0.3f, 1.0f}) {
    int64_t chosen = 0;
    for (int64_t g = 0; g < many; ++g) chosen += adversarial_row_selected(keys, g, fraction);
    const double mean = fraction * many, sd = std::sqrt(many * fraction * (1.0 - fraction));
    CHECK(std::fabs(static_cast<double>(chosen) - mean) <= 5.0 * sd);
  }
  const int64_t rows = 2000, row_size = 5;
  const float eps = 0.05f;
  for (Device device : test_devices()) {
    INFO(device_name(device));
    KernelBackend& k = kernels(device);
    OpData host;
    host.f["x0"] = uniform(rows * row_size, 190);
    host.f["x"] = uniform(rows * row_size, 191);
    for (int step = 0; step < 6; ++step) {
      auto g = uniform(rows * row_size, 192 + static_cast<uint32_t>(step));
      for (size_t i = static_cast<size_t>(step); i < g.size(); i += 5) g[i] = 0.0f;
      host.f["g" + std::to_string(step)] = g;
    }
    DeviceData b(host, device);
    // The rows the kernel moves are the ones adversarial_row_selected picks, about a quarter.
    k.adversarial_start(rows, row_size, eps, 0.25f, true, keys, b.f("x0"), b.f("x"));
    OpData out = b.download(host);
    const auto& x0 = host.f.at("x0");
    const auto selected = selected_rows(keys, rows, 0.25f);
    int64_t moved = 0;
    bool agree = true;
    for (int64_t r = 0; r < rows; ++r) {
      bool changed = false;
      for (int64_t e = 0; e < row_size; ++e) {
        const size_t i = static_cast<size_t>(r * row_size + e);
        changed = changed || out.f.at("x")[i] != x0[i];
      }
      moved += changed;
      agree = agree && changed == selected[static_cast<size_t>(r)];
    }
    CHECK(agree);
    CHECK(std::fabs(moved - 0.25 * rows) <= 5.0 * std::sqrt(rows * 0.25 * 0.75));
    // PGD steps keep every element within [x0 - eps, x0 + eps] and leave the other rows at x0; six
    // steps of 0.4 eps in one direction (the gradient x0) end on the box's edge exactly.
    for (int step = 0; step < 12; ++step) {
      const std::string g = step < 6 ? "g" + std::to_string(step) : "x0";
      k.adversarial_step(rows, row_size, 0.4f * eps, eps, 0.25f, keys, b.f("x0"), b.f(g), b.f("x"));
      out = b.download(host);
      bool inside = true, others_kept = true;
      for (size_t i = 0; i < x0.size(); ++i) {
        const float v = out.f.at("x")[i];
        inside = inside && v >= x0[i] - eps && v <= x0[i] + eps;
        others_kept = others_kept && (selected[i / row_size] || v == x0[i]);
      }
      CHECK(inside);
      CHECK(others_kept);
    }
    bool at_edge = true;
    for (size_t i = 0; i < x0.size(); ++i)
      if (selected[i / row_size] && x0[i] != 0.0f)
        at_edge = at_edge && out.f.at("x")[i] == (x0[i] > 0.0f ? x0[i] + eps : x0[i] - eps);
    CHECK(at_edge);
  }
}

TEST_CASE("adversarial start noise and steps do not depend on how the rows are split", "[models]") {
  // Rows 0..7 in one call give the bits of rows 0..3 and then rows 4..7 with row0 = 4.
  const int64_t row_size = 37;
  const SampleKeys whole{RandomKey::make(5, RandomPurpose::adversarial, 0), 77, 0};
  SampleKeys second = whole;
  second.row0 = 4;
  for (Device device : test_devices()) {
    INFO(device_name(device));
    KernelBackend& k = kernels(device);
    OpData host;
    host.f["x0"] = uniform(8 * row_size, 200);
    host.f["g"] = uniform(8 * row_size, 201);
    host.f["a"] = host.f["b"] = uniform(8 * row_size, 202);
    DeviceData d(host, device);
    const int64_t half = 4 * row_size;
    k.adversarial_start(8, row_size, 0.1f, 0.6f, true, whole, d.f("x0"), d.f("a"));
    k.adversarial_start(4, row_size, 0.1f, 0.6f, true, whole, d.f("x0"), d.f("b"));
    k.adversarial_start(4, row_size, 0.1f, 0.6f, true, second, d.f("x0") + half, d.f("b") + half);
    OpData out = d.download(host);
    CHECK(out.f.at("a") == out.f.at("b"));
    CHECK(out.f.at("a") != host.f.at("x0"));  // some rows got noise
    k.adversarial_step(8, row_size, 0.03f, 0.1f, 0.6f, whole, d.f("x0"), d.f("g"), d.f("a"));
    k.adversarial_step(4, row_size, 0.03f, 0.1f, 0.6f, whole, d.f("x0"), d.f("g"), d.f("b"));
    k.adversarial_step(4, row_size, 0.03f, 0.1f, 0.6f, second, d.f("x0") + half, d.f("g") + half, d.f("b") + half);
    out = d.download(host);
    CHECK(out.f.at("a") == out.f.at("b"));
  }
}
