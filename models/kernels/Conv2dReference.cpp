// The reference whole-batch convolution every backend inherits: im2col + gemm per sample (a 1x1,
// stride-1, unpadded convolution skips im2col), through the backend's own operations, so a new
// backend gets convolutions from its gemm and im2col alone. Faster paths are tested against it.
#include "models/core/Tensor.h"
#include "models/kernels/KernelBackend.h"

namespace dptrain {

namespace {

struct ReferenceConvState {
  Workspace<float> col, dcol, dz;
};
const char reference_tag = 0;

bool is_direct(const Conv2dGeometry& g) {
  return g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
}

}  // namespace

void KernelBackend::conv2d_forward(const Conv2dSpec& c, int64_t n, const float* x, const float* w, const float* bias,
                                   Activation act, float slope, float* y, LayerScratch& scratch) {
  const Conv2dGeometry& g = c.geometry;
  const int64_t groups = c.groups, oc_g = c.out_channels / groups, out_hw = g.out_h() * g.out_w();
  const int64_t col_rows = g.channels / groups * g.kernel_h * g.kernel_w;
  const int64_t in_size = g.channels * g.height * g.width, out_size = c.out_channels * out_hw;
  const bool direct = is_direct(g);
  auto& st = scratch.get<ReferenceConvState>(&reference_tag);
  float* col_buf = direct ? nullptr : st.col.reserve(col_rows * groups * out_hw, device());
  for (int64_t s = 0; s < n; ++s) {
    const float* col = x + s * in_size;
    if (!direct) {
      im2col(g, col, col_buf);
      col = col_buf;
    }
    float* ys = y + s * out_size;
    for (int64_t gi = 0; gi < groups; ++gi)
      gemm(false, false, oc_g, out_hw, col_rows, 1.0f, w + gi * oc_g * col_rows, col_rows, col + gi * col_rows * out_hw,
           out_hw, 0.0f, ys + gi * oc_g * out_hw, out_hw);
  }
  bias_activation(act, slope, n, c.out_channels, out_hw, bias, y);
}

void KernelBackend::conv2d_backward(const Conv2dSpec& c, int64_t n, const float* x, const float* w, const float* y,
                                    const float* dout, Activation act, float slope, float* dx, float* dw, float* dbias,
                                    LayerScratch& scratch) {
  const Conv2dGeometry& g = c.geometry;
  const int64_t groups = c.groups, oc_g = c.out_channels / groups, out_hw = g.out_h() * g.out_w();
  const int64_t col_rows = g.channels / groups * g.kernel_h * g.kernel_w;
  const int64_t in_size = g.channels * g.height * g.width, out_size = c.out_channels * out_hw;
  const bool direct = is_direct(g);
  auto& st = scratch.get<ReferenceConvState>(&reference_tag);
  float* col_buf = direct || !dw ? nullptr : st.col.reserve(col_rows * groups * out_hw, device());
  float* dcol_buf = direct || !dx ? nullptr : st.dcol.reserve(col_rows * groups * out_hw, device());
  const float* dz = dout;  // dL/d(output before the activation)
  if (act != Activation::identity) {
    float* buf = st.dz.reserve(n * out_size, device());
    activation_backward(act, slope, n * out_size, y, dout, buf);
    dz = buf;
  }
  if (dbias) channel_bias_grad(n, c.out_channels, out_hw, dz, dbias);
  for (int64_t s = 0; s < n; ++s) {
    const float* dzs = dz + s * out_size;
    if (dw) {
      const float* col = x + s * in_size;
      if (!direct) {
        im2col(g, col, col_buf);
        col = col_buf;
      }
      for (int64_t gi = 0; gi < groups; ++gi)
        gemm(false, true, oc_g, col_rows, out_hw, 1.0f, dzs + gi * oc_g * out_hw, out_hw, col + gi * col_rows * out_hw,
             out_hw, 1.0f, dw + gi * oc_g * col_rows, col_rows);
    }
    if (dx) {
      float* dxs = dx + s * in_size;
      float* dcol = direct ? dxs : dcol_buf;
      for (int64_t gi = 0; gi < groups; ++gi)
        gemm(true, false, col_rows, out_hw, oc_g, 1.0f, w + gi * oc_g * col_rows, col_rows, dzs + gi * oc_g * out_hw,
             out_hw, 0.0f, dcol + gi * col_rows * out_hw, out_hw);
      if (!direct) {
        fill(in_size, 0.0f, dxs);
        col2im(g, dcol, dxs);
      }
    }
  }
}

}  // namespace dptrain
