#include "models/layers/Dropout.h"

#include "models/core/Error.h"
#include "models/core/Hash.h"
#include "models/kernels/KernelBackend.h"

namespace dptrain {

Dropout::Dropout(float p) : p_(p) {
  if (!(p >= 0.0f && p < 1.0f)) fail_input("dropout: p must be in [0, 1), got " + std::to_string(p));
}

Shape Dropout::setup(const Shape& in, ParamRegistry& registry) {
  id_ = static_cast<uint32_t>(stable_hash(registry.scope()));
  return in;
}

void Dropout::forward(const Tensor& in, Tensor& out, const StepContext& ctx) {
  if (ctx.mode == Mode::eval || p_ == 0.0f) {
    out = in.alias();  // identity: pass the input's memory through
    return;
  }
  out.resize(in.shape(), in.device());
  SampleKeys keys{RandomKey::make(ctx.seed, RandomPurpose::dropout, id_), ctx.step, ctx.row0};
  kernels(in.device()).dropout(in.rows(), in.row_size(), p_, keys, in.data(), out.data());
}

void Dropout::backward(const Tensor& in, const Tensor&, const Tensor& dout, Tensor* din, const StepContext& ctx) {
  if (!din) return;
  din->resize(in.shape(), in.device());
  if (ctx.mode == Mode::eval || p_ == 0.0f) {
    din->copy_from(dout);
    return;
  }
  SampleKeys keys{RandomKey::make(ctx.seed, RandomPurpose::dropout, id_), ctx.step, ctx.row0};
  kernels(in.device()).dropout_backward(in.rows(), in.row_size(), p_, keys, dout.data(), din->data());
}

}  // namespace dptrain
