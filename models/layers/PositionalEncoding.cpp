#include "models/layers/PositionalEncoding.h"

#include <cmath>

#include "models/core/Error.h"
#include "models/kernels/KernelBackend.h"

namespace dptrain {

std::string PositionalEncoding::describe() const {
  return std::string("positional ") + (kind_ == Kind::learned ? "learned" : "sinusoidal") + " [" +
         std::to_string(steps_) + ", " + std::to_string(dim_) + "]";
}

Shape PositionalEncoding::setup(const Shape& in, ParamRegistry& registry) {
  if (in.rank() != 2) fail_input("positional: input must be a sequence [steps, features] per sample, got " + in.str());
  steps_ = in[0];
  dim_ = in[1];
  if (kind_ == Kind::learned) {
    registry.declare("weight", {steps_, dim_}, {ParamInit::normal, 0.02f}, &table_, &dtable_);
  } else {
    sinusoids_.resize(static_cast<size_t>(steps_ * dim_));
    for (int64_t t = 0; t < steps_; ++t)
      for (int64_t i = 0; i < dim_; ++i) {
        const double angle = static_cast<double>(t) / std::pow(10000.0, static_cast<double>(i - i % 2) / dim_);
        sinusoids_[static_cast<size_t>(t * dim_ + i)] = static_cast<float>(i % 2 ? std::cos(angle) : std::sin(angle));
      }
  }
  return in;
}

void PositionalEncoding::forward(const Tensor& in, Tensor& out, const StepContext&) {
  KernelBackend& k = kernels(in.device());
  if (kind_ == Kind::sinusoidal && (table_.empty() || table_.device() != in.device())) {
    table_.resize({steps_, dim_}, in.device());
    copy_memory(table_.data(), in.device(), sinusoids_.data(), Device::cpu, sinusoids_.size() * sizeof(float));
  }
  out.resize(in.shape(), in.device());
  k.copy(in.numel(), in.data(), out.data());
  k.bias_activation(Activation::identity, 0.0f, in.rows(), steps_ * dim_, 1, table_.data(), out.data());
}

void PositionalEncoding::backward(const Tensor& in, const Tensor&, const Tensor& dout, Tensor* din,
                                  const StepContext& ctx) {
  if (kind_ == Kind::learned && ctx.parameter_gradients)
    kernels(in.device()).row_bias_grad(in.rows(), steps_ * dim_, dout.data(), dtable_.data());
  if (din) {
    din->resize(in.shape(), in.device());
    din->copy_from(dout);
  }
}

}  // namespace dptrain
