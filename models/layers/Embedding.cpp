#include "models/layers/Embedding.h"

#include "models/core/Error.h"
#include "models/kernels/KernelBackend.h"

namespace dptrain {

Embedding::Embedding(int64_t vocab, int64_t dim, float init_std) : vocab_(vocab), dim_(dim), init_std_(init_std) {
  if (vocab <= 0 || dim <= 0) fail_input("embedding: vocab and dim must be positive");
  if (!(init_std > 0.0f)) fail_input("embedding: init_std must be positive");
}

Embedding::Embedding(int64_t vocab, int64_t dim, float init_std, int64_t pad_id, std::shared_ptr<SequenceMask> mask)
    : Embedding(vocab, dim, init_std) {
  if (pad_id >= vocab)
    fail_input("embedding: pad_id " + std::to_string(pad_id) + " is outside [0, " + std::to_string(vocab) + ")");
  pad_id_ = pad_id;
  mask_ = std::move(mask);
}

std::string Embedding::describe() const {
  return "embedding " + std::to_string(vocab_) + " ids -> " + std::to_string(dim_) +
         (pad_id_ >= 0 ? " (padding id " + std::to_string(pad_id_) + ")" : "");
}

Shape Embedding::setup(const Shape& in, ParamRegistry& registry) {
  if (!(in.rank() == 1 || (in.rank() == 2 && in[1] == 1)))
    fail_input("embedding: input must be a sequence of ids [T] or [T, 1], got " + in.str());
  steps_ = in[0];
  registry.declare("weight", {vocab_, dim_}, {ParamInit::normal, init_std_}, &weight_, &dweight_);
  return {steps_, dim_};
}

void Embedding::forward(const Tensor& in, Tensor& out, const StepContext&) {
  out.resize({in.rows(), steps_, dim_}, in.device());
  kernels(in.device()).embedding(in.numel(), dim_, vocab_, in.data(), weight_.data(), out.data());
  if (pad_id_ >= 0 && mask_) {
    mask_->mask.resize({in.rows(), steps_}, in.device());
    kernels(in.device()).token_mask(in.numel(), in.data(), static_cast<float>(pad_id_), mask_->mask.data());
  }
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
