// Adds a position's vector to each step of a sequence [T, dim]: the fixed sinusoids of Vaswani et
// al. (2017), PE[t, 2i] = sin(t / 10000^(2i / dim)), PE[t, 2i + 1] = cos(the same), or a learned
// table [T, dim] (GPT's). The sinusoids are computed once on the host and copied to the device on
// the first forward; the add is the backend's row-bias pass over [n, T dim].
#pragma once

#include <vector>

#include "models/layers/Layer.h"

namespace dptrain {

class PositionalEncoding final : public Layer {
 public:
  enum class Kind { sinusoidal, learned };
  explicit PositionalEncoding(Kind kind) : kind_(kind) {}
  std::string kind() const override { return "positional"; }
  std::string describe() const override;
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
  Kind encoding() const { return kind_; }
  // Sinusoidal: the fixed table [T, dim] (after setup); empty for a learned one.
  const std::vector<float>& sinusoids() const { return sinusoids_; }

 private:
  Kind kind_;
  int64_t steps_ = 0, dim_ = 0;
  Tensor table_, dtable_;  // learned: a parameter; sinusoidal: table_ holds the fixed values
  std::vector<float> sinusoids_;
};

}  // namespace dptrain
