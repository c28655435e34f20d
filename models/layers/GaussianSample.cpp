#include "models/layers/GaussianSample.h"

#include "models/core/Error.h"
#include "models/core/Hash.h"
#include "models/kernels/KernelBackend.h"

namespace dptrain {

GaussianSample::GaussianSample(float kl_weight) : kl_weight_(kl_weight) {
  if (!(kl_weight >= 0.0f)) fail_input("gaussian_sample: kl_weight must be >= 0");
}

std::string GaussianSample::describe() const {
  return "gaussian_sample " + std::to_string(2 * k_) + "->" + std::to_string(k_);
}

Shape GaussianSample::setup(const Shape& in, ParamRegistry& registry) {
  if (in.rank() != 1 || in[0] % 2)
    fail_input("gaussian_sample: input must be flat [2 * latent] (mu, then log variance), got " + in.str());
  k_ = in[0] / 2;
  id_ = static_cast<uint32_t>(stable_hash(registry.scope()));
  return {k_};
}

void GaussianSample::forward(const Tensor& in, Tensor& out, const StepContext& ctx) {
  KernelBackend& k = kernels(in.device());
  out.resize({in.rows(), k_}, in.device());
  SampleKeys keys{RandomKey::make(ctx.seed, RandomPurpose::noise, id_), ctx.step, ctx.row0};
  float* kl = nullptr;
  if (ctx.loss_stats && kl_weight_ > 0.0f) {
    kl_.resize({1}, in.device());
    kl_.fill(0.0f);
    kl = kl_.data();
  }
  k.gaussian_sample(in.rows(), k_, ctx.mode == Mode::train, keys, in.data(), out.data(), kl);
  if (kl) k.axpy(1, kl_weight_, kl, ctx.loss_stats + stat_loss);
}

void GaussianSample::backward(const Tensor& in, const Tensor&, const Tensor& dout, Tensor* din,
                              const StepContext& ctx) {
  if (!din) return;  // no parameters: only the input gradient is wanted
  din->resize(in.shape(), in.device());
  SampleKeys keys{RandomKey::make(ctx.seed, RandomPurpose::noise, id_), ctx.step, ctx.row0};
  kernels(in.device())
      .gaussian_sample_backward(in.rows(), k_, ctx.mode == Mode::train, keys, in.data(), dout.data(), kl_weight_,
                                din->data());
}

}  // namespace dptrain
