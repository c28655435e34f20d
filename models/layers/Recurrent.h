// Recurrent layers over sequences [T, features] per sample: a simple (Elman) RNN,
// h_t = tanh(W_ih x_t + W_hh h_(t-1) + b), an LSTM (gates i, f, g, o as PyTorch orders them) and a
// GRU (gates r, z, n; two biases, as PyTorch, because r gates only the recurrent part of n).
// One class with a cell kind, as Pool2d: the three share the time loop, the layout and
// backpropagation through time over the whole sequence, and differ only in the cell kernels.
// Output: the last hidden state [hidden] (sequence classification), or with return_sequences
// every step's [T, hidden] (sequence-to-sequence of equal length).
// States are kept time-major ([T, n, ...]) so each step's GEMM reads and writes contiguous rows;
// the input and output stay sample-major and are addressed with a leading dimension.
#pragma once

#include "models/kernels/KernelBackend.h"
#include "models/layers/Layer.h"

namespace dptrain {

class Recurrent final : public Layer {
 public:
  enum class Cell { rnn, lstm, gru };
  Recurrent(Cell cell, int64_t hidden, bool return_sequences = false);
  std::string kind() const override;
  std::string describe() const override;
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
  Cell cell() const { return cell_; }
  int64_t hidden() const { return hidden_; }
  bool return_sequences() const { return return_sequences_; }

 private:
  int64_t gates() const { return cell_ == Cell::lstm ? 4 * hidden_ : cell_ == Cell::gru ? 3 * hidden_ : hidden_; }
  const float* h_at(int64_t t, int64_t n) const;  // hidden state of step t, [n, hidden]
  void gru_step_backward(KernelBackend& k, const Tensor& in, int64_t t, int64_t n, Tensor* din, const StepContext& ctx);

  Cell cell_;
  int64_t hidden_;
  bool return_sequences_;
  int64_t steps_ = 0, features_ = 0;
  Tensor w_ih_, dw_ih_, w_hh_, dw_hh_, bias_, dbias_;
  Tensor bias_hh_, dbias_hh_;  // GRU only
  Tensor gates_;               // [T, n, gates]: activations (for the RNN these are the hidden states)
  Tensor h_, c_;               // LSTM: [T, n, hidden] (GRU: h_ only)
  Tensor gh_;                  // GRU: [T, n, gates], h_(t-1) W_hh^T + b_hh
  Tensor dh_, dh_next_, dc_, dgates_, dgh_;
};

}  // namespace dptrain
