// A language model's output layer that shares the input embedding's table (weight tying, Press &
// Wolf 2017): logits[t] = h[t] E^T (+ a bias of its own), E [vocab, dim]. It declares no weight;
// its gradient adds into the embedding's, which backward finishes last (the embedding is the first
// layer), so the flat-buffer offsets reported to the gradient hook stay true.
#pragma once

#include "models/layers/Embedding.h"
#include "models/layers/Layer.h"

namespace dptrain {

class TiedOutput final : public Layer {
 public:
  TiedOutput(Embedding& embedding, bool bias);
  std::string kind() const override { return "tied_output"; }
  std::string describe() const override;
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
  const Embedding& embedding() const { return embedding_; }
  bool has_bias() const { return has_bias_; }

 private:
  Embedding& embedding_;
  bool has_bias_;
  Shape out_shape_;
  Tensor bias_, dbias_;
};

}  // namespace dptrain
