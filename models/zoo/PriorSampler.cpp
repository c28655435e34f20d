#include "models/zoo/PriorSampler.h"

#include "models/core/Error.h"
#include "models/core/Philox.h"
#include "models/kernels/KernelBackend.h"
#include "models/layers/GaussianSample.h"
#include "models/layers/Sequential.h"

namespace dptrain {

PriorSampler::PriorSampler(Model& model, LossKind loss) : model_(model), loss_(loss) {
  auto* seq = dynamic_cast<Sequential*>(&model.root());
  if (!seq) return;
  for (size_t i = 0; i + 1 < seq->size(); ++i)
    if (auto* g = dynamic_cast<GaussianSample*>(&seq->layer(i))) {
      first_ = i + 1;
      latent_ = g->latent();
    }
}

void PriorSampler::sample(int64_t count, uint64_t seed, std::vector<float>& out) {
  DPT_ASSERT(usable(), "the model has no gaussian_sample layer to sample from");
  auto& seq = static_cast<Sequential&>(model_.root());
  const Device device = model_.device();
  std::vector<float> z(static_cast<size_t>(count * latent_));
  Philox rng(seed, RandomPurpose::noise, 0x5A4D);
  for (float& v : z) v = rng.normal();
  Tensor zt = Tensor::zeros({count, latent_}, device);
  zt.copy_from(Tensor::view(z.data(), zt.shape()));
  // One output per layer: a layer may alias its input (reshape), so buffers are never reused.
  std::vector<Tensor> acts(seq.size() - first_);
  StepContext ctx{Mode::eval, seed, 0, 0, nullptr, false};
  const Tensor* cur = &zt;
  for (size_t i = first_; i < seq.size(); ++i) {
    seq.layer(i).forward(*cur, acts[i - first_], ctx);
    cur = &acts[i - first_];
  }
  Tensor result = Tensor::zeros(cur->shape(), device);
  if (loss_ == LossKind::binary_cross_entropy)
    kernels(device).activation(Activation::sigmoid, 0.0f, cur->numel(), cur->data(), result.data());
  else
    result.copy_from(*cur);
  out.resize(static_cast<size_t>(result.numel()));
  copy_memory(out.data(), Device::cpu, result.data(), device, out.size() * sizeof(float));
}

}  // namespace dptrain
