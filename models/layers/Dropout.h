// Inverted dropout. The mask of element i of a sample is a pure function of (seed, step, global
// sample index, layer id, i) from the counter-based generator, so N ranks drop exactly what one
// rank would, backward regenerates the mask instead of storing it, and resume is exact.
#pragma once

#include "models/layers/Layer.h"

namespace dptrain {

class Dropout final : public Layer {
 public:
  explicit Dropout(float p);
  std::string kind() const override { return "dropout"; }
  std::string describe() const override { return "dropout p=" + std::to_string(p_).substr(0, 4); }
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
  float p() const { return p_; }

 private:
  float p_;
  uint32_t id_ = 0;  // distinguishes the masks of several dropout layers
};

}  // namespace dptrain
