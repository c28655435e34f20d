// Fully connected layer y = act(x W^T + b), weight [out, in] as in PyTorch so exported parameters
// line up with torch.nn.Linear. The activation is fused into the bias pass (one sweep over y),
// and the forward is one backend call so the backend can choose the GEMM formulation; inputs of
// any sample shape are taken as flat vectors.
#pragma once

#include "models/kernels/KernelBackend.h"
#include "models/layers/Layer.h"

namespace dptrain {

class Dense final : public Layer {
 public:
  Dense(int64_t out_features, bool bias = true, Activation act = Activation::identity, float slope = 0.01f);
  std::string kind() const override { return "dense"; }
  std::string describe() const override;
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
  // What it computes, for exporters (storage/export): in_features is known after setup.
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  bool has_bias() const { return has_bias_; }
  Activation activation() const { return act_; }
  float slope() const { return slope_; }

 private:
  int64_t in_ = 0, out_;
  bool has_bias_;
  Activation act_;
  float slope_;
  Tensor weight_, dweight_, bias_, dbias_;
  Tensor dz_;             // dout through the activation
  LayerScratch scratch_;  // the backend's forward workspace, kept between steps
};

}  // namespace dptrain
