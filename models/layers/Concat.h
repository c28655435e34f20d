// Runs several branches on the same input and concatenates their outputs along the first sample
// dimension (channels for images, features for flat data), as in Inception blocks. Branches are
// laid out in order and run backward last first, so gradient-ready offsets stay correct.
#pragma once

#include <memory>
#include <vector>

#include "models/layers/Layer.h"

namespace dptrain {

class Concat final : public Layer {
 public:
  explicit Concat(std::vector<std::unique_ptr<Layer>> branches);
  std::string kind() const override { return "concat"; }
  std::string describe() const override;
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
  size_t branch_count() const { return branches_.size(); }
  Layer& branch(size_t i) { return *branches_[i]; }
  // Branch i's output sample shape (after setup).
  const Shape& branch_shape(size_t i) const { return shapes_[i]; }

 private:
  std::vector<std::unique_ptr<Layer>> branches_;
  std::vector<Shape> shapes_;     // per branch output sample
  std::vector<int64_t> offsets_;  // per branch: first float within an output sample
  int64_t row_ = 0;               // floats per output sample
  std::vector<Tensor> outs_, douts_;
  Tensor dx_;
};

}  // namespace dptrain
