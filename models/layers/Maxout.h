// Maxout (Goodfellow et al., 2013): groups of `pieces` consecutive features reduced by max.
// Preceded by a Dense of units * pieces outputs it is a maxout unit; the zoo builds it that way.
#pragma once

#include "models/layers/Layer.h"

namespace dptrain {

class Maxout final : public Layer {
 public:
  explicit Maxout(int64_t pieces);
  std::string kind() const override { return "maxout"; }
  Shape setup(const Shape& in, ParamRegistry&) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
  int64_t pieces() const { return pieces_; }

 private:
  int64_t pieces_, out_features_ = 0;
};

}  // namespace dptrain
