// A residual block (He et al., 2016): out = act(body(x) + shortcut(x)). The shortcut is the
// identity when the body keeps the shape, else a given layer or, by default, a projection: a 1x1
// strided convolution for images, a bias-free dense layer for flat features. Parameters are laid
// out body first, shortcut second, and backward runs the shortcut first, so the offsets the body
// reports to the gradient hook stay correct ("everything from here on is final").
#pragma once

#include <memory>

#include "models/kernels/KernelBackend.h"
#include "models/layers/Layer.h"

namespace dptrain {

class Residual final : public Layer {
 public:
  // shortcut null: identity, or a projection when the body changes the shape.
  Residual(std::unique_ptr<Layer> body, std::unique_ptr<Layer> shortcut, Activation act = Activation::relu,
           float slope = 0.01f);
  std::string kind() const override { return "residual"; }
  std::string describe() const override;
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;

  Layer& body() { return *body_; }
  Layer* shortcut() { return shortcut_.get(); }
  Activation activation() const { return act_; }
  float slope() const { return slope_; }

 private:
  std::unique_ptr<Layer> body_, shortcut_;
  Activation act_;
  float slope_;
  Tensor body_out_, short_out_, dz_, dbody_, dshort_;
};

}  // namespace dptrain
