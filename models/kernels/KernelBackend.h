// The table of operations a device must provide, grouped by concern. Layers, losses and optimizers
// call these on raw pointers of their tensors' device; the CPU backend (cpu/) and the CUDA backend
// (cuda/) plug in here and are chosen in one place, kernels(Device). Per-element math both
// backends compute is written once, in KernelMath.h. The table-driven test in
// tests/models/kernel_backends_test.cpp runs every entry on every backend against the CPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

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

// A 2-D convolution over NCHW: the window geometry, output channels and groups.
struct Conv2dSpec {
  Conv2dGeometry geometry;
  int64_t out_channels = 1, groups = 1;
};

// What a layer keeps for its backend's whole-layer operations between steps, so that a step
// after the first allocates nothing: column buffers, per-thread partial sums, transposed outputs.
// `get` makes (on the first call) or returns the state of the implementation named by `tag`.
class LayerScratch {
 public:
  template <typename State>
  State& get(const void* tag) {
    if (owner_ != tag || !state_) {
      state_ = std::make_shared<State>();
      owner_ = tag;
    }
    return *static_cast<State*>(state_.get());
  }

 private:
  const void* owner_ = nullptr;
  std::shared_ptr<void> state_;
};

// Which per-sample random stream a dropout mask comes from (docs/design.md rule 3).
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
// stat_top5 counts rows whose label has fewer than 5 logits strictly above its own.
enum LossStat {
  stat_loss = 0,
  stat_correct = 1,
  stat_count = 2,
  stat_squared_error = 3,
  stat_top5 = 4,
  num_loss_stats = 5
};

class KernelBackend {
 public:
  virtual ~KernelBackend() = default;
  virtual Device device() const = 0;

  // ---- memory and synchronization
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* p) = 0;
  // Waits until every operation queued on this device has finished.
  virtual void synchronize() = 0;

  // ---- vector operations over n floats
  virtual void fill(int64_t n, float value, float* x) = 0;
  virtual void copy(int64_t n, const float* x, float* y) = 0;  // y = x
  // 2-D strided copy: `rows` rows of `cols` floats, src row stride src_ld, dst row stride dst_ld.
  virtual void copy_2d(int64_t rows, int64_t cols, const float* src, int64_t src_ld, float* dst, int64_t dst_ld) = 0;
  virtual void axpy(int64_t n, float a, const float* x, float* y) = 0;             // y += a x
  virtual void scale(int64_t n, float a, float* x) = 0;                            // x *= a
  virtual void add(int64_t n, const float* a, const float* b, float* y) = 0;       // y = a + b
  virtual void multiply(int64_t n, const float* a, const float* b, float* y) = 0;  // y = a * b
  virtual double sum_squares(int64_t n, const float* x) = 0;
  virtual double sum(int64_t n, const float* x) = 0;

  // ---- products: GEMM and the dense layer
  // Row-major C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C.
  virtual void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                    int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) = 0;
  // A dense layer's forward, y[rows, out] = act(x[rows, in] w[out, in]^T + bias) (bias may be
  // null). The default is gemm and bias_activation (DenseReference.cpp); a backend may pick
  // another GEMM formulation for the shape.
  virtual void dense_forward(int64_t rows, int64_t in, int64_t out, const float* x, const float* w, const float* bias,
                             Activation act, float slope, float* y, LayerScratch& scratch);
  // A dense layer's input gradient, dx[rows, in] = dz[rows, out] w[out, in] (dx overwritten). The
  // default is gemm; the CPU backend streams w without packing it (CpuUnpackedGemm.cpp).
  virtual void dense_backward_input(int64_t rows, int64_t in, int64_t out, const float* dz, const float* w, float* dx);
  // Row bias: y[r, c] += bias[c]; its gradient dbias[c] += sum_r dy[r, c].
  virtual void row_bias_grad(int64_t rows, int64_t cols, const float* dy, float* dbias) = 0;

  // ---- activations
  // Fused with the bias: y[r, c, i] = act(y[r, c, i] + bias[c]) in place over y viewed as
  // [rows, cols, hw] (hw = 1 for dense rows, H*W for NCHW). bias may be null.
  virtual void bias_activation(Activation act, float slope, int64_t rows, int64_t cols, int64_t hw, const float* bias,
                               float* y) = 0;
  // y = act(x) out of place.
  virtual void activation(Activation act, float slope, int64_t n, const float* x, float* y) = 0;
  // dx = dy * act'(.) computed from the activation's output y (all our activations allow it).
  virtual void activation_backward(Activation act, float slope, int64_t n, const float* y, const float* dy,
                                   float* dx) = 0;
  // Maxout: y[r, j] = max_i x[r, j * pieces + i].
  virtual void maxout(int64_t rows, int64_t out_cols, int64_t pieces, const float* x, float* y) = 0;
  virtual void maxout_backward(int64_t rows, int64_t out_cols, int64_t pieces, const float* x, const float* y,
                               const float* dy, float* dx) = 0;

  // ---- convolution, pooling and resampling over NCHW
  // Convolution helpers for one sample: col[C*kh*kw, oh*ow] from x[C, H, W], and back (+=).
  virtual void im2col(const Conv2dGeometry& g, const float* x, float* col) = 0;
  virtual void col2im(const Conv2dGeometry& g, const float* col, float* dx) = 0;
  // The whole-batch convolution that Conv2d calls. The default is the reference, im2col + gemm per
  // sample through the operations above (Conv2dReference.cpp); a backend overrides it with
  // something faster and is tested against it. y = act(conv(x, w) + bias) for n samples; bias may
  // be null.
  virtual void conv2d_forward(const Conv2dSpec& c, int64_t n, const float* x, const float* w, const float* bias,
                              Activation act, float slope, float* y, LayerScratch& scratch);
  // From dout = dL/dy and the forward's output y (the activation's gradient comes from y; y may be
  // null for identity): dx is overwritten when not null; dw and dbias accumulate (+=) when not
  // null, over the samples in a fixed order.
  virtual void conv2d_backward(const Conv2dSpec& c, int64_t n, const float* x, const float* w, const float* y,
                               const float* dout, Activation act, float slope, float* dx, float* dw, float* dbias,
                               LayerScratch& scratch);
  // Channel bias over NCHW: dbias[c] += sum over n, h, w of dy.
  virtual void channel_bias_grad(int64_t n, int64_t c, int64_t hw, const float* dy, float* dbias) = 0;
  // Pooling over n samples; max pooling records the argmax (index within the plane).
  virtual void max_pool(int64_t n, const Conv2dGeometry& g, const float* x, float* y, int32_t* argmax) = 0;
  virtual void max_pool_backward(int64_t n, const Conv2dGeometry& g, const float* dy, const int32_t* argmax,
                                 float* dx) = 0;  // dx is overwritten
  virtual void avg_pool(int64_t n, const Conv2dGeometry& g, const float* x, float* y) = 0;
  virtual void avg_pool_backward(int64_t n, const Conv2dGeometry& g, const float* dy, float* dx) = 0;
  // Max-unpooling with the argmax a max pooling recorded: each plane of `pooled` values is
  // scattered (+=, windows may overlap) into a zeroed plane of `hw` values at its argmax.
  virtual void max_unpool(int64_t planes, int64_t pooled, int64_t hw, const float* x, const int32_t* argmax,
                          float* y) = 0;
  // dx[o] = dy[argmax[o]] within each plane.
  virtual void max_unpool_backward(int64_t planes, int64_t pooled, int64_t hw, const float* dy, const int32_t* argmax,
                                   float* dx) = 0;
  // Nearest-neighbour upsampling of `planes` planes [h, w] by integer factors to [h sh, w sw].
  virtual void upsample_nearest(int64_t planes, int64_t h, int64_t w, int64_t sh, int64_t sw, const float* x,
                                float* y) = 0;
  // dx (overwritten) = the sum of dy over each input pixel's block.
  virtual void upsample_nearest_backward(int64_t planes, int64_t h, int64_t w, int64_t sh, int64_t sw, const float* dy,
                                         float* dx) = 0;

  // ---- normalization and batch statistics
  // Reductions run in a fixed order (no atomics), so results are bitwise repeatable.
  // Batch norm over x viewed as [n, c, hw]; statistics per channel over n * hw values. The
  // per-channel sums are doubles (summed across ranks in double), so their rounding does not depend
  // on how the batch is split.
  // Per-channel sums of (x - shift) and of its squares (overwritten); a null shift means 0.
  // Shifting by a mean estimate avoids cancellation in the variance.
  virtual void batch_norm_stats(int64_t n, int64_t c, int64_t hw, const float* x, const float* shift, double* sum,
                                double* sumsq) = 0;
  // mean = shift + sum / count and the biased variance sumsq / count - (sum / count)^2 from sums of
  // `count` shifted values (shift may alias running_mean: each channel reads it first); when
  // running_mean is not null also running = (1 - momentum) running + momentum batch, with the
  // unbiased variance (as PyTorch).
  virtual void batch_norm_finalize(int64_t c, double count, float momentum, const float* shift, const double* sum,
                                   const double* sumsq, float* mean, float* var, float* running_mean,
                                   float* running_var) = 0;
  // y = gamma (x - mean) / sqrt(var + eps) + beta.
  virtual void batch_norm_forward(int64_t n, int64_t c, int64_t hw, float eps, const float* x, const float* mean,
                                  const float* var, const float* gamma, const float* beta, float* y) = 0;
  // Per-channel sums of dy and of dy * xhat, xhat = (x - mean) / sqrt(var + eps) (overwritten),
  // also added to dbeta and dgamma (the parameter gradients) when those are not null.
  virtual void batch_norm_backward_reduce(int64_t n, int64_t c, int64_t hw, float eps, const float* dy, const float* x,
                                          const float* mean, const float* var, double* sum_dy, double* sum_dy_xhat,
                                          float* dgamma, float* dbeta) = 0;
  // dx = gamma / sqrt(var + eps) (dy - sum_dy / count - xhat sum_dy_xhat / count), overwritten;
  // null sums mean fixed statistics (eval mode): dx = gamma / sqrt(var + eps) dy.
  virtual void batch_norm_backward(int64_t n, int64_t c, int64_t hw, float eps, double count, const float* dy,
                                   const float* x, const float* mean, const float* var, const float* gamma,
                                   const double* sum_dy, const double* sum_dy_xhat, float* dx) = 0;
  // Layer norm over each row of `cols` values: y = gamma (x - mean) inv_std + beta; the per-row
  // mean and inv_std are saved for backward.
  virtual void layer_norm_forward(int64_t rows, int64_t cols, float eps, const float* x, const float* gamma,
                                  const float* beta, float* y, float* mean, float* inv_std) = 0;
  // dx overwritten; dgamma and dbeta accumulate (+=) when not null.
  virtual void layer_norm_backward(int64_t rows, int64_t cols, const float* x, const float* dy, const float* gamma,
                                   const float* mean, const float* inv_std, float* dx, float* dgamma, float* dbeta) = 0;
  // Minibatch standard deviation (ProGAN's discriminator feature): `rows` rows of `features`
  // values in groups of `group` consecutive rows (the last group may be shorter). A group's
  // statistic is the mean over the features of sqrt(var + 1e-8), the variance over the group's
  // rows; each output row is its input row followed by `extra` copies of its group's statistic.
  virtual void minibatch_stddev(int64_t rows, int64_t group, int64_t features, int64_t extra, const float* x,
                                float* y) = 0;
  // dx (overwritten) = dy's copy of x plus, through the statistic, the sum of the group's `extra`
  // gradients times d(statistic)/dx = (x - mean) / (features * group rows * sqrt(var + 1e-8)).
  virtual void minibatch_stddev_backward(int64_t rows, int64_t group, int64_t features, int64_t extra, const float* x,
                                         const float* dy, float* dx) = 0;

  // ---- embedding and recurrent cells
  // Embedding lookup of `count` ids stored as floats (rounded): y[i] = weight[id_i] (dim floats).
  // Ids outside [0, vocab) are bad input.
  virtual void embedding(int64_t count, int64_t dim, int64_t vocab, const float* ids, const float* weight,
                         float* y) = 0;
  // dweight[id_i] += dy[i], in index order.
  virtual void embedding_backward(int64_t count, int64_t dim, const float* ids, const float* dy, float* dweight) = 0;
  // One LSTM step for n rows. gates [n, 4 hidden] holds the pre-activations of the input, forget,
  // cell and output gates (i, f, g, o) and is overwritten with sigmoid(i), sigmoid(f), tanh(g),
  // sigmoid(o); c = f c_prev + i g and h = o tanh(c). c_prev null means zeros.
  virtual void lstm_cell(int64_t n, int64_t hidden, float* gates, const float* c_prev, float* c, float* h) = 0;
  // Backward of one step: dgates (pre-activation gradients) from dh and dc, the gradient reaching
  // c from above; dc is overwritten with the gradient for c_prev.
  virtual void lstm_cell_backward(int64_t n, int64_t hidden, const float* gates, const float* c_prev, const float* c,
                                  const float* dh, float* dc, float* dgates) = 0;

  // One GRU step for n rows (gates r, z, n as PyTorch orders them). gx [n, 3 hidden] holds
  // x W_ih^T + b_ih and gh [n, 3 hidden] holds h_prev W_hh^T + b_hh; r = sigmoid(gx_r + gh_r),
  // z = sigmoid(gx_z + gh_z), c = tanh(gx_n + r gh_n), h = (1 - z) c + z h_prev. gx is
  // overwritten with r, z, c (gh is kept: backward needs gh_n). h_prev null means zeros.
  virtual void gru_cell(int64_t n, int64_t hidden, float* gx, const float* gh, const float* h_prev, float* h) = 0;
  // Backward of one step from dh: the pre-activation gradients of both products, dgx and dgh
  // [n, 3 hidden] (they differ only in the n gate: dgh_n = r dgx_n), and dh_prev = z dh (the part
  // that bypasses W_hh; overwritten, written only when h_prev is not null).
  virtual void gru_cell_backward(int64_t n, int64_t hidden, const float* gx, const float* gh, const float* h_prev,
                                 const float* dh, float* dgx, float* dgh, float* dh_prev) = 0;

  // ---- sequences and attention
  // GELU in its exact form, x Phi(x) = x (1 + erf(x / sqrt 2)) / 2 (PyTorch's default), out of place.
  virtual void gelu(int64_t n, const float* x, float* y) = 0;
  // dx = dy gelu'(x), from the input (GELU's derivative is no function of its output).
  virtual void gelu_backward(int64_t n, const float* x, const float* dy, float* dx) = 0;
  // `batch` GEMMs C_b = alpha op(A_b) op(B_b) + beta C_b, the b-th operands `stride_*` floats after
  // the (b-1)-th (attention's heads). The default loops over gemm (DenseReference.cpp).
  virtual void gemm_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                            int64_t lda, int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float beta,
                            float* c, int64_t ldc, int64_t stride_c, int64_t batch);
  // Attention weights in place: scores [n, heads, T, T] (query i, key j) become
  // softmax_j(scale s[i, j]) with key j masked out where j > i (causal) or key_mask[sample, j] == 0
  // (key_mask [n, T] may be null). A query whose keys are all masked gets all-zero weights.
  virtual void attention_softmax(int64_t n, int64_t heads, int64_t steps, float scale, bool causal,
                                 const float* key_mask, float* scores) = 0;
  // Softmax backward over rows of `cols`: ds = scale p (dp - sum_j p dp), overwritten (masked
  // weights are 0, so their gradient is 0).
  virtual void softmax_backward(int64_t rows, int64_t cols, float scale, const float* p, const float* dp,
                                float* ds) = 0;
  // mask[i] = 1 where ids[i] != pad_id, else 0 (the padding mask of a token sequence).
  virtual void token_mask(int64_t count, const float* ids, float pad_id, float* mask) = 0;
  // Mean over the unmasked steps of each sample: y[s] = sum_t mask[s, t] x[s, t] / sum_t mask[s, t]
  // over x [n, T, dim] (mask null: all steps; a sample with no step left gets zeros).
  virtual void sequence_mean(int64_t n, int64_t steps, int64_t dim, const float* x, const float* mask, float* y) = 0;
  // dx[s, t] = mask[s, t] dy[s] / sum_t mask[s, t], overwritten.
  virtual void sequence_mean_backward(int64_t n, int64_t steps, int64_t dim, const float* dy, const float* mask,
                                      float* dx) = 0;

  // ---- random draws per (key, step, global sample, element) (docs/design.md rule 3)
  // Inverted dropout: y = x * m / (1 - p).
  virtual void dropout(int64_t rows, int64_t row_size, float p, const SampleKeys& keys, const float* x, float* y) = 0;
  virtual void dropout_backward(int64_t rows, int64_t row_size, float p, const SampleKeys& keys, const float* dy,
                                float* dx) = 0;
  // VAE reparameterization over rows of x = [mu (k), logvar (k)]: z = mu + exp(logvar / 2) eps
  // with eps ~ N(0, 1), or z = mu when !sample. Adds the rows' summed KL(N(mu, var) || N(0, 1)) to
  // *kl when kl is not null.
  virtual void gaussian_sample(int64_t rows, int64_t k, bool sample, const SampleKeys& keys, const float* x, float* z,
                               float* kl) = 0;
  // dx (overwritten) from dz, plus kl_scale times the KL gradient.
  virtual void gaussian_sample_backward(int64_t rows, int64_t k, bool sample, const SampleKeys& keys, const float* x,
                                        const float* dz, float kl_scale, float* dx) = 0;
  // Adversarial inputs (FGSM, PGD) for the rows that adversarial_row_selected (KernelMath.h) picks
  // with `fraction`; the other rows keep x = x0. Start: x = x0, plus U(-epsilon, epsilon] per element
  // when random_start (drawn per global sample and element, as dropout).
  virtual void adversarial_start(int64_t rows, int64_t row_size, float epsilon, float fraction, bool random_start,
                                 const SampleKeys& keys, const float* x0, float* x) = 0;
  // One step on the selected rows: x = clamp(x + step_size sign(grad), x0 - epsilon, x0 + epsilon),
  // sign(0) = 0; the other rows are left as they are.
  virtual void adversarial_step(int64_t rows, int64_t row_size, float step_size, float epsilon, float fraction,
                                const SampleKeys& keys, const float* x0, const float* grad, float* x) = 0;

  // ---- losses over `rows` predictions of `cols` values
  // Each adds its per-sample losses (and correct counts where it classifies) to stats[], and writes
  // d = scale * dloss/dpred when d is not null. labels are class ids; targets are float values
  // (regression, soft labels, 0/1). softmax_cross_entropy skips rows labelled -1 (padding of
  // per-step targets): no loss, no count, a zero gradient. It and distillation_loss also add
  // stats[stat_top5] (a soft target's label is its argmax); the other losses leave it alone.
  virtual void softmax_cross_entropy(int64_t rows, int64_t cols, const float* logits, const int32_t* labels,
                                     const float* targets, float scale, float* dlogits, float* stats) = 0;
  // Knowledge distillation from a teacher's logits t at temperature T: per row
  // alpha CE(softmax(s), y) + (1 - alpha) T^2 KL(softmax(t / T) || softmax(s / T)), and
  // dlogits = scale (alpha (softmax(s) - onehot(y)) + (1 - alpha) T (softmax(s / T) - softmax(t / T))).
  // Rows labelled -1 are skipped as in softmax_cross_entropy.
  virtual void distillation_loss(int64_t rows, int64_t cols, float temperature, float alpha, const float* logits,
                                 const float* teacher_logits, const int32_t* labels, float scale, float* dlogits,
                                 float* stats) = 0;
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
  // Every GAN loss (minimax, non-saturating, Wasserstein, hinge, least squares) is, for the real
  // and for the generated rows, a per-row function of the discriminator's one score s:
  // f(s) = c * g(a * s + b) with g one of these shapes (models/losses/GanLoss.cpp has the table).
  struct GanTerm {
    enum Shape { softplus, linear, relu, half_square } shape = softplus;  // log(1 + e^u), u, max(u, 0), u^2 / 2
    float a = 1.0f, b = 0.0f, c = 1.0f;
  };
  // Over `rows` scores (one per row): adds the sum of f to stats[stat_loss] and rows to
  // stats[stat_count]; writes dscores = scale * df/ds when dscores is not null.
  virtual void gan_loss(const GanTerm& term, int64_t rows, const float* scores, float scale, float* dscores,
                        float* stats) = 0;

  // ---- optimizer
  // One fused optimizer pass over n parameters; state1/state2 as the kind needs them.
  virtual void optimizer_update(const OptimizerStep& step, int64_t n, float* w, const float* g, float* state1,
                                float* state2) = 0;
  // The same update, returning whether all n gradients were finite (train.nonfinite = "stop":
  // the job ends at such a step, so the update need not be held back). The CPU checks in the
  // same pass, at no cost to a memory-bound loop; CUDA reduces the gradients first.
  virtual bool optimizer_update_checked(const OptimizerStep& step, int64_t n, float* w, const float* g, float* state1,
                                        float* state2) = 0;
  // x = min(max(x, lo), hi) over n floats (weight clipping after a step: the Wasserstein critic's).
  virtual void clamp(int64_t n, float lo, float hi, float* x) = 0;
};

// The backend for a device; throws when the device is not available in this build or machine.
KernelBackend& kernels(Device device);
// Whether a CUDA device can be used in this process.
bool cuda_available();
// Copies bytes between any two devices.
void copy_memory(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);

}  // namespace dptrain
