// im2col and col2im for the CPU backend, walking only the rectangle of each kernel tap that lies
// inside the input, so inner loops are plain row copies and adds (masked vectors for short rows);
// col2im gathers each input row's taps in registers, and padding zeroed once can be skipped after.
#include <algorithm>

#include "models/kernels/cpu/CpuInternal.h"
#include "models/kernels/cpu/RowOps.h"

namespace dptrain {

namespace {

// Indices i in [0, count) whose input position start + i * stride lies in [0, size): [lo, hi).
inline void valid_range(int64_t start, int64_t stride, int64_t count, int64_t size, int64_t& lo, int64_t& hi) {
  lo = std::min(count, start >= 0 ? 0 : (-start + stride - 1) / stride);
  hi = start >= size ? lo : std::max(lo, std::min(count, (size - start + stride - 1) / stride));
}

}  // namespace

void cpu_im2col(const Conv2dGeometry& g, const float* x, float* col, bool padding_zeroed) {
  const int64_t oh = g.out_h(), ow = g.out_w(), sw = g.stride_w;
  for (int64_t c = 0; c < g.channels; ++c) {
    const float* plane = x + c * g.height * g.width;
    for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
      const int64_t y0 = -g.pad_h + ki * g.dilation_h;
      int64_t y_lo, y_hi;
      valid_range(y0, g.stride_h, oh, g.height, y_lo, y_hi);
      for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
        float* out = col + ((c * g.kernel_h + ki) * g.kernel_w + kj) * oh * ow;
        const int64_t x0 = -g.pad_w + kj * g.dilation_w;
        int64_t x_lo, x_hi;
        valid_range(x0, sw, ow, g.width, x_lo, x_hi);
        const float* first = plane + (y0 + y_lo * g.stride_h) * g.width;  // input row of output row y_lo
        const int64_t in_step = g.stride_h * g.width, rows = y_hi - y_lo;
        if (!padding_zeroed) {
          row_ops::zero_rows(out, 0, 1, y_lo * ow);
          row_ops::zero_rows(out + y_hi * ow, 0, 1, (oh - y_hi) * ow);
          row_ops::zero_rows(out + y_lo * ow, ow, rows, x_lo);
          row_ops::zero_rows(out + y_lo * ow + x_hi, ow, rows, ow - x_hi);
        }
        if (sw == 1) {
          row_ops::copy_rows(out + y_lo * ow + x_lo, ow, first + x0 + x_lo, in_step, rows, x_hi - x_lo);
        } else {
          for (int64_t r = 0; r < rows; ++r) {
            float* orow = out + (y_lo + r) * ow;
            const float* irow = first + r * in_step;
            for (int64_t ox = x_lo; ox < x_hi; ++ox) orow[ox] = irow[x0 + ox * sw];
          }
        }
      }
    }
  }
}

#if defined(__AVX512F__)
// col2im for stride 1 and rows of at most 16 floats, gathered: each row of dx is the sum of its
// kh * kw shifted column rows, added in registers and stored once (dx is overwritten). The
// scatter form (one read-modify-write per tap and row) stalls on its own overlapping stores.
bool col2im_gather(const Conv2dGeometry& g, const float* col, float* dx) {
  const int64_t oh = g.out_h(), ow = g.out_w(), taps = g.kernel_h * g.kernel_w;
  if (g.stride_h != 1 || g.stride_w != 1 || g.width > 16 || ow > 16 || taps > 64) return false;
  // Per tap: lanes of a dx row it reaches (a mask), and where lane 0 sits in a column row.
  __mmask16 masks[64];
  int64_t shift[64];
  for (int64_t ki = 0; ki < g.kernel_h; ++ki)
    for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
      const int64_t t = ki * g.kernel_w + kj, x0 = -g.pad_w + kj * g.dilation_w;
      int64_t lo, hi;
      valid_range(x0, 1, ow, g.width, lo, hi);  // column-row indices ox; dx lanes are x0 + ox
      masks[t] = hi > lo ? static_cast<__mmask16>(((1u << (hi - lo)) - 1u) << (x0 + lo)) : 0;
      shift[t] = -x0;  // column-row index of dx lane j is j - x0
    }
  for (int64_t c = 0; c < g.channels; ++c) {
    float* plane = dx + c * g.height * g.width;
    const float* cc = col + c * taps * oh * ow;
    for (int64_t iy = 0; iy < g.height; ++iy) {
      __m512 acc = _mm512_setzero_ps();
      for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
        const int64_t oy = iy + g.pad_h - ki * g.dilation_h;  // output row reading input row iy
        if (oy < 0 || oy >= oh) continue;
        for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
          const int64_t t = ki * g.kernel_w + kj;
          // Lane j reads column-row element j + shift; masked-off lanes are not accessed.
          const float* crow = cc + t * oh * ow + oy * ow;
          acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(masks[t], crow + shift[t]));
        }
      }
      _mm512_mask_storeu_ps(plane + iy * g.width, static_cast<__mmask16>((1u << g.width) - 1u), acc);
    }
  }
  return true;
}
#else
bool col2im_gather(const Conv2dGeometry&, const float*, float*) { return false; }
#endif

void cpu_col2im(const Conv2dGeometry& g, const float* col, float* dx, bool overwrite) {
  if (overwrite && col2im_gather(g, col, dx)) return;
  if (overwrite) row_ops::zero_rows(dx, 0, 1, g.channels * g.height * g.width);
  const int64_t oh = g.out_h(), ow = g.out_w(), sw = g.stride_w;
  for (int64_t c = 0; c < g.channels; ++c) {
    float* plane = dx + c * g.height * g.width;
    for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
      const int64_t y0 = -g.pad_h + ki * g.dilation_h;
      int64_t y_lo, y_hi;
      valid_range(y0, g.stride_h, oh, g.height, y_lo, y_hi);
      for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
        const float* in = col + ((c * g.kernel_h + ki) * g.kernel_w + kj) * oh * ow;
        const int64_t x0 = -g.pad_w + kj * g.dilation_w;
        int64_t x_lo, x_hi;
        valid_range(x0, sw, ow, g.width, x_lo, x_hi);
        float* first = plane + (y0 + y_lo * g.stride_h) * g.width;  // input row of output row y_lo
        const int64_t in_step = g.stride_h * g.width, rows = y_hi - y_lo;
        if (sw == 1) {
          row_ops::add_rows(first + x0 + x_lo, in_step, in + y_lo * ow + x_lo, ow, rows, x_hi - x_lo);
        } else {
          for (int64_t r = 0; r < rows; ++r) {
            float* drow = first + r * in_step;
            const float* crow = in + (y_lo + r) * ow;
            for (int64_t ox = x_lo; ox < x_hi; ++ox) drow[x0 + ox * sw] += crow[ox];
          }
        }
      }
    }
  }
}

void CpuKernels::im2col(const Conv2dGeometry& g, const float* x, float* col) { cpu_im2col(g, x, col); }

void CpuKernels::col2im(const Conv2dGeometry& g, const float* col, float* dx) { cpu_col2im(g, col, dx); }

}  // namespace dptrain
