// The evidence behind the CPU backend's choice of convolution engine: the reference CNN's two
// convolution layers (batch 128, one thread) through dptrain's backend (im2col + GEMM per sample)
// and through oneDNN's convolution primitives as a layer would have to use them (NCHW tensors in
// and out, so with the reorders to and from oneDNN's blocked layouts), with the CPU time of a
// forward + backward (median of the repetitions) and the heap allocations (operator new) each
// makes per step after the first.
//
//   dptrain_conv_bench [--reps 10]
// Prints one line per layer and engine: layer=<name> engine=<dptrain|onednn> ms=<float> allocs=<n>
#include <dnnl.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <dnnl.hpp>
#include <new>
#include <string>
#include <vector>

#include "bench/BenchTiming.h"
#include "models/kernels/cpu/CpuKernels.h"

namespace {
std::atomic<long> g_allocations{0};
}

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

using namespace dptrain;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

namespace {

struct Layer {
  const char* name;
  int64_t channels, size, out_channels;
};

// Process CPU time: one thread, so the time the step ran, not the time others had the core.
using bench::cpu_seconds;

std::vector<float> filled(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = scale * static_cast<float>(static_cast<int>(i * 2654435761u % 2001) - 1000) / 1000;
  return v;
}

// Runs `step` reps times after one warmup call: median CPU time in ms, and allocations per step.
template <typename F>
std::pair<double, double> measure(int reps, F&& step) {
  step();
  std::vector<double> times;
  times.reserve(static_cast<size_t>(reps));
  long before = g_allocations.load();
  for (int r = 0; r < reps; ++r) {
    const double t0 = cpu_seconds();
    step();
    times.push_back(cpu_seconds() - t0);
  }
  std::sort(times.begin(), times.end());
  const double best = times[times.size() / 2];
  return {1e3 * best, static_cast<double>(g_allocations.load() - before) / reps};
}

void run(const Layer& l, int reps) {
  const int64_t n = 128, k = 5, pad = 2, hw = l.size * l.size;
  const int64_t in_size = n * l.channels * hw, out_size = n * l.out_channels * hw;
  const int64_t w_size = l.out_channels * l.channels * k * k;
  std::vector<float> x = filled(static_cast<size_t>(in_size), 1.0f), w = filled(static_cast<size_t>(w_size), 0.1f),
                     b = filled(static_cast<size_t>(l.out_channels), 0.1f), y(static_cast<size_t>(out_size)),
                     dout = filled(static_cast<size_t>(out_size), 0.01f), dx(static_cast<size_t>(in_size)),
                     dw(static_cast<size_t>(w_size)), db(static_cast<size_t>(l.out_channels));
  const bool first_layer = l.channels == 1;  // no input gradient, as in the model

  // dptrain: the CPU backend's whole-batch convolution, as Conv2d calls it.
  KernelBackend& kb = cpu_kernels();
  Conv2dSpec spec{{l.channels, l.size, l.size, k, k, 1, 1, pad, pad, 1, 1}, l.out_channels, 1};
  LayerScratch scratch;
  auto ours = measure(reps, [&] {
    kb.conv2d_forward(spec, n, x.data(), w.data(), b.data(), Activation::relu, 0.0f, y.data(), scratch);
    kb.conv2d_backward(spec, n, x.data(), w.data(), y.data(), dout.data(), Activation::relu, 0.0f,
                       first_layer ? nullptr : dx.data(), dw.data(), db.data(), scratch);
  });
  std::printf("layer=%s engine=dptrain ms=%.2f allocs=%.1f\n", l.name, ours.first, ours.second);

  // oneDNN: direct convolution in its preferred (blocked) layouts, reorders at the edges, ReLU
  // fused into the forward and applied to the gradient before the backward primitives.
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream st(eng);
  dnnl::memory::dims src{n, l.channels, l.size, l.size}, wei{l.out_channels, l.channels, k, k}, bia{l.out_channels},
      dst{n, l.out_channels, l.size, l.size}, strides{1, 1}, pads{pad, pad};
  dnnl::memory::desc sd(src, dt::f32, tag::any), wd(wei, dt::f32, tag::any), bd(bia, dt::f32, tag::x),
      dd(dst, dt::f32, tag::any);
  dnnl::post_ops po;
  po.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(po);
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::primitive_attr battr;
  battr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  auto fpd = dnnl::convolution_forward::primitive_desc(
      {dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, sd, wd, bd, dd, strides, pads, pads},
      attr, eng);
  auto dpd = dnnl::convolution_backward_data::primitive_desc(
      {dnnl::algorithm::convolution_direct, sd, wd, dd, strides, pads, pads}, battr, eng, fpd);
  auto wpd = dnnl::convolution_backward_weights::primitive_desc(
      {dnnl::algorithm::convolution_direct, sd, wd, bd, dd, strides, pads, pads}, battr, eng, fpd);
  dnnl::memory x_user({src, dt::f32, tag::nchw}, eng, x.data()), w_user({wei, dt::f32, tag::oihw}, eng, w.data()),
      b_user({bia, dt::f32, tag::x}, eng, b.data()), y_user({dst, dt::f32, tag::nchw}, eng, y.data()),
      dz_user({dst, dt::f32, tag::nchw}, eng, dout.data()), dx_user({src, dt::f32, tag::nchw}, eng, dx.data()),
      dw_user({wei, dt::f32, tag::oihw}, eng, dw.data()), db_user({bia, dt::f32, tag::x}, eng, db.data());
  dnnl::memory x_blk(fpd.src_desc(), eng), w_blk(fpd.weights_desc(), eng), y_blk(fpd.dst_desc(), eng),
      dz_blk(dpd.diff_dst_desc(), eng), dx_blk(dpd.diff_src_desc(), eng), dw_blk(wpd.diff_weights_desc(), eng),
      wx_blk(wpd.src_desc(), eng), wdz_blk(wpd.diff_dst_desc(), eng), pad_f(fpd.scratchpad_desc(), eng),
      pad_d(dpd.scratchpad_desc(), eng), pad_w(wpd.scratchpad_desc(), eng);
  dnnl::convolution_forward fwd(fpd);
  dnnl::convolution_backward_data bwd_data(dpd);
  dnnl::convolution_backward_weights bwd_weights(wpd);
  dnnl::reorder r_x(x_user, x_blk), r_w(w_user, w_blk), r_y(y_blk, y_user), r_dz(dz_user, dz_blk),
      r_dx(dx_blk, dx_user), r_dw(dw_blk, dw_user), r_wx(x_user, wx_blk), r_wdz(dz_user, wdz_blk);
  std::vector<float> dz(static_cast<size_t>(out_size));
  dnnl::memory dz_relu({dst, dt::f32, tag::nchw}, eng, dz.data());
  dnnl::reorder r_dz_relu(dz_relu, dz_blk), r_wdz_relu(dz_relu, wdz_blk);
  auto exec = [&](const dnnl::primitive& p, std::initializer_list<dnnl_exec_arg_t> args) {
    // The C call takes a plain array: no std::unordered_map built on our side.
    dnnl_primitive_execute(p.get(), st.get(), static_cast<int>(args.size()), args.begin());
  };
  auto theirs = measure(reps, [&] {
    exec(r_x, {{DNNL_ARG_FROM, x_user.get()}, {DNNL_ARG_TO, x_blk.get()}});
    exec(r_w, {{DNNL_ARG_FROM, w_user.get()}, {DNNL_ARG_TO, w_blk.get()}});
    exec(fwd, {{DNNL_ARG_SRC, x_blk.get()},
               {DNNL_ARG_WEIGHTS, w_blk.get()},
               {DNNL_ARG_BIAS, b_user.get()},
               {DNNL_ARG_DST, y_blk.get()},
               {DNNL_ARG_SCRATCHPAD, pad_f.get()}});
    exec(r_y, {{DNNL_ARG_FROM, y_blk.get()}, {DNNL_ARG_TO, y_user.get()}});
    kb.activation_backward(Activation::relu, 0.0f, out_size, y.data(), dout.data(), dz.data());
    if (!first_layer) {
      exec(r_dz_relu, {{DNNL_ARG_FROM, dz_relu.get()}, {DNNL_ARG_TO, dz_blk.get()}});
      exec(bwd_data, {{DNNL_ARG_DIFF_DST, dz_blk.get()},
                      {DNNL_ARG_WEIGHTS, w_blk.get()},
                      {DNNL_ARG_DIFF_SRC, dx_blk.get()},
                      {DNNL_ARG_SCRATCHPAD, pad_d.get()}});
      exec(r_dx, {{DNNL_ARG_FROM, dx_blk.get()}, {DNNL_ARG_TO, dx_user.get()}});
    }
    exec(r_wx, {{DNNL_ARG_FROM, x_user.get()}, {DNNL_ARG_TO, wx_blk.get()}});
    exec(r_wdz_relu, {{DNNL_ARG_FROM, dz_relu.get()}, {DNNL_ARG_TO, wdz_blk.get()}});
    exec(bwd_weights, {{DNNL_ARG_SRC, wx_blk.get()},
                       {DNNL_ARG_DIFF_DST, wdz_blk.get()},
                       {DNNL_ARG_DIFF_WEIGHTS, dw_blk.get()},
                       {DNNL_ARG_DIFF_BIAS, db_user.get()},
                       {DNNL_ARG_SCRATCHPAD, pad_w.get()}});
    exec(r_dw, {{DNNL_ARG_FROM, dw_blk.get()}, {DNNL_ARG_TO, dw_user.get()}});
    st.wait();
  });
  std::printf("layer=%s engine=onednn ms=%.2f allocs=%.1f impl=%s\n", l.name, theirs.first, theirs.second,
              fpd.impl_info_str());
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 10;
  if (argc == 3 && std::string(argv[1]) == "--reps") reps = std::atoi(argv[2]);
  set_cpu_threads(1);
  for (const Layer& l : {Layer{"conv1 1x28x28->32", 1, 28, 32}, Layer{"conv2 32x14x14->64", 32, 14, 64}}) run(l, reps);
  return 0;
}
