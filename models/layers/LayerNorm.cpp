#include "models/layers/LayerNorm.h"

#include "models/core/Error.h"
#include "models/kernels/KernelBackend.h"

namespace dptrain {

LayerNorm::LayerNorm(float eps) : eps_(eps) {
  if (!(eps > 0.0f)) fail_input("layernorm: eps must be positive");
}

Shape LayerNorm::setup(const Shape& in, ParamRegistry& registry) {
  if (in.rank() < 1) fail_input("layernorm: needs a sample shape");
  features_ = in[in.rank() - 1];
  registry.declare("weight", {features_}, {ParamInit::ones}, &gamma_, &dgamma_);
  registry.declare("bias", {features_}, {ParamInit::zeros}, &beta_, &dbeta_);
  return in;
}

void LayerNorm::forward(const Tensor& in, Tensor& out, const StepContext&) {
  const int64_t rows = in.numel() / features_;
  out.resize(in.shape(), in.device());
  mean_.resize({rows}, in.device());
  inv_std_.resize({rows}, in.device());
  kernels(in.device())
      .layer_norm_forward(rows, features_, eps_, in.data(), gamma_.data(), beta_.data(), out.data(), mean_.data(),
                          inv_std_.data());
}

void LayerNorm::backward(const Tensor& in, const Tensor&, const Tensor& dout, Tensor* din, const StepContext& ctx) {
  const int64_t rows = in.numel() / features_;
  float* dx;
  if (din) {
    din->resize(in.shape(), in.device());
    dx = din->data();
  } else {
    dx_.resize(in.shape(), in.device());  // the kernel computes both; this one is discarded
    dx = dx_.data();
  }
  const bool params = ctx.parameter_gradients;
  kernels(in.device())
      .layer_norm_backward(rows, features_, in.data(), dout.data(), gamma_.data(), mean_.data(), inv_std_.data(), dx,
                           params ? dgamma_.data() : nullptr, params ? dbeta_.data() : nullptr);
}

}  // namespace dptrain
