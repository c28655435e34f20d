#include "models/layers/Embedding.h"

#include "models/core/Error.h"
#include "models/kernels/KernelBackend.h"

namespace dptrain {

Embedding::Embedding(int64_t vocab, int64_t dim) : vocab_(vocab), dim_(dim) {
  if (vocab <= 0 || dim <= 0) fail_input("embedding: vocab and dim must be positive");
}

std::string Embedding::describe() const {
  return "embedding " + std::to_string(vocab_) + " ids -> " + std::to_string(dim_);
}

Shape Embedding::setup(const Shape& in, ParamRegistry& registry) {
  if (!(in.rank() == 1 || (in.rank() == 2 && in[1] == 1)))
    fail_input("embedding: input must be a sequence of ids [T] or [T, 1], got " + in.str());
  steps_ = in[0];
  registry.declare("weight", {vocab_, dim_}, {ParamInit::normal, 1.0f}, &weight_, &dweight_);  // as PyTorch
  return {steps_, dim_};
}

void Embedding::forward(const Tensor& in, Tensor& out, const StepContext&) {
  out.resize({in.rows(), steps_, dim_}, in.device());
  kernels(in.device()).embedding(in.numel(), dim_, vocab_, in.data(), weight_.data(), out.data());
}

void Embedding::backward(const Tensor& in, const Tensor&, const Tensor& dout, Tensor* din, const StepContext& ctx) {
  if (ctx.parameter_gradients)
    kernels(in.device()).embedding_backward(in.numel(), dim_, in.data(), dout.data(), dweight_.data());
  if (din) {
    din->resize(in.shape(), in.device());
    din->fill(0.0f);
  }
}

}  // namespace dptrain
