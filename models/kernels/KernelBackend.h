// The table of operations a device must provide. Layers, losses and optimizers call these on raw
// pointers of their tensors' device; the CPU backend (cpu/) and the CUDA backend (cuda/) plug in
// here and are chosen in one place, kernels(Device). The table-driven test in
// tests/models/kernel_backends_test.cpp runs every entry on every backend against the CPU.
#pragma once

#include <cstddef>
#include <cstdint>

#include "models/core/Device.h"
#include "models/core/Philox.h"

namespace dptrain {

enum class Activation { identity, relu, leaky_relu, sigmoid, tanh };

// Geometry of a 2-D convolution or pooling window over NCHW data.
struct Conv2dGeometry {
  int64_t channels, height, width;  // input
  int64_t kernel_h, kernel_w;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t out_h() const { return (height + 2 * pad_h - dilation_h * (kernel_h - 1) - 1) / stride_h + 1; }
  int64_t out_w() const { return (width + 2 * pad_w - dilation_w * (kernel_w - 1) - 1) / stride_w + 1; }
};

// Which per-sample random stream a dropout mask comes from (DESIGN.md rule 3).
struct SampleKeys {
  RandomKey key;
  uint64_t step;
  int64_t row0;  // global sample index of local row 0
};

enum class OptimizerKind { sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw };

// Everything one fused optimizer pass needs; `grad_scale` carries gradient-norm clipping.
struct OptimizerStep {
  OptimizerKind kind = OptimizerKind::sgd;
  float lr = 0.01f;
  float momentum = 0.9f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float rho = 0.99f;  // RMSProp decay
  float l1 = 0.0f, l2 = 0.0f;
  float weight_decay = 0.0f;  // decoupled (AdamW style): w -= lr * wd * w
  float grad_scale = 1.0f;
  float bias_correction1 = 1.0f, bias_correction2 = 1.0f;  // 1 - beta^t
};

// Running sums a loss adds to, kept on the loss's device so a step never waits to read them.
enum LossStat { stat_loss = 0, stat_correct = 1, stat_count = 2, stat_squared_error = 3, num_loss_stats = 4 };

class KernelBackend {
 public:
  virtual ~KernelBackend() = default;
  virtual Device device() const = 0;

  // ---- memory
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* p) = 0;
  // Waits until every operation queued on this device has finished.
  virtual void synchronize() = 0;

  // ---- vector operations over n floats
  virtual void fill(int64_t n, float value, float* x) = 0;
  virtual void copy(int64_t n, const float* x, float* y) = 0;                      // y = x
  virtual void axpy(int64_t n, float a, const float* x, float* y) = 0;             // y += a x
  virtual void scale(int64_t n, float a, float* x) = 0;                            // x *= a
  virtual void add(int64_t n, const float* a, const float* b, float* y) = 0;       // y = a + b
  virtual void multiply(int64_t n, const float* a, const float* b, float* y) = 0;  // y = a * b
  virtual double sum_squares(int64_t n, const float* x) = 0;
  virtual double sum(int64_t n, const float* x) = 0;

  // ---- matrices, row-major: C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C
  virtual void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                    int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) = 0;
  // Row bias: y[r, c] += bias[c]; its gradient dbias[c] += sum_r dy[r, c].
  virtual void row_bias_grad(int64_t rows, int64_t cols, const float* dy, float* dbias) = 0;
  // Channel bias over NCHW: dbias[c] += sum over n, h, w of dy.
  virtual void channel_bias_grad(int64_t n, int64_t c, int64_t hw, const float* dy, float* dbias) = 0;

  // ---- activations fused with the bias: y[r, c, i] = act(y[r, c, i] + bias[c]) in place over
  // y viewed as [rows, cols, hw] (hw = 1 for dense rows, H*W for NCHW). bias may be null.
  virtual void bias_activation(Activation act, float slope, int64_t rows, int64_t cols, int64_t hw, const float* bias,
                               float* y) = 0;
  // y = act(x) out of place.
  virtual void activation(Activation act, float slope, int64_t n, const float* x, float* y) = 0;
  // dx = dy * act'(.) computed from the activation's output y (all our activations allow it).
  virtual void activation_backward(Activation act, float slope, int64_t n, const float* y, const float* dy,
                                   float* dx) = 0;

  // ---- maxout: y[r, j] = max_i x[r, j * pieces + i]
  virtual void maxout(int64_t rows, int64_t out_cols, int64_t pieces, const float* x, float* y) = 0;
  virtual void maxout_backward(int64_t rows, int64_t out_cols, int64_t pieces, const float* x, const float* y,
                               const float* dy, float* dx) = 0;

  // ---- inverted dropout with a mask drawn per (key, step, global sample, element): y = x * m / (1 - p)
  virtual void dropout(int64_t rows, int64_t row_size, float p, const SampleKeys& keys, const float* x, float* y) = 0;
  virtual void dropout_backward(int64_t rows, int64_t row_size, float p, const SampleKeys& keys, const float* dy,
                                float* dx) = 0;

  // ---- convolution helpers for one sample: col[C*kh*kw, oh*ow] from x[C, H, W], and back (+=).
  virtual void im2col(const Conv2dGeometry& g, const float* x, float* col) = 0;
  virtual void col2im(const Conv2dGeometry& g, const float* col, float* dx) = 0;

  // ---- pooling over n samples of NCHW; max pooling records the argmax (index within the plane).
  virtual void max_pool(int64_t n, const Conv2dGeometry& g, const float* x, float* y, int32_t* argmax) = 0;
  virtual void max_pool_backward(int64_t n, const Conv2dGeometry& g, const float* dy, const int32_t* argmax,
                                 float* dx) = 0;  // dx is overwritten
  virtual void avg_pool(int64_t n, const Conv2dGeometry& g, const float* x, float* y) = 0;
  virtual void avg_pool_backward(int64_t n, const Conv2dGeometry& g, const float* dy, float* dx) = 0;

  // ---- losses over `rows` predictions of `cols` values. Each adds its per-sample losses (and
  // correct counts where it classifies) to stats[], and writes d = scale * dloss/dpred when d is
  // not null. labels are class ids; targets are float values (regression, soft labels, 0/1).
  virtual void softmax_cross_entropy(int64_t rows, int64_t cols, const float* logits, const int32_t* labels,
                                     const float* targets, float scale, float* dlogits, float* stats) = 0;
  virtual void sigmoid_cross_entropy(int64_t rows, int64_t cols, const float* logits, const int32_t* labels,
                                     const float* targets, float scale, float* dlogits, float* stats) = 0;
  virtual void mean_squared_error(int64_t rows, int64_t cols, const float* pred, const float* targets, float scale,
                                  float* dpred, float* stats) = 0;
  virtual void multiclass_hinge(int64_t rows, int64_t cols, const float* scores, const int32_t* labels, float margin,
                                float scale, float* dscores, float* stats) = 0;
  virtual void prediction_entropy(int64_t rows, int64_t cols, const float* logits, float scale, float* dlogits,
                                  float* stats) = 0;
  // Row-wise softmax probabilities.
  virtual void softmax(int64_t rows, int64_t cols, const float* logits, float* probs) = 0;

  // ---- one fused optimizer pass over n parameters; state1/state2 as the kind needs them.
  virtual void optimizer_update(const OptimizerStep& step, int64_t n, float* w, const float* g, float* state1,
                                float* state2) = 0;
};

// The backend for a device; throws when the device is not available in this build or machine.
KernelBackend& kernels(Device device);
// Whether a CUDA device can be used in this process.
bool cuda_available();
// Copies bytes between any two devices.
void copy_memory(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);

}  // namespace dptrain
