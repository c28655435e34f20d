// Changes the sample shape without touching data: `flatten` (to one dimension) and `reshape`
// (to a given sample shape, e.g. flat 784 features to [1, 28, 28] for a convolution).
#pragma once

#include "models/layers/Layer.h"

namespace dptrain {

class Reshape final : public Layer {
 public:
  Reshape() = default;  // flatten
  explicit Reshape(const Shape& target) : target_(target), flatten_(false) {}
  std::string kind() const override { return flatten_ ? "flatten" : "reshape"; }
  Shape setup(const Shape& in, ParamRegistry&) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
  // The output sample shape (a flatten's is known after setup).
  const Shape& target() const { return target_; }

 private:
  Shape target_;
  bool flatten_ = true;
};

}  // namespace dptrain
