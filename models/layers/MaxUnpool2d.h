// Max-unpooling (Zeiler & Fergus; SegNet decoders): puts each value back at the position its
// paired max pooling took the maximum from, zeros elsewhere. It reads the pooling layer's argmax
// of the same forward pass, so the pool must run before it in the same model (the zoo pairs each
// maxunpool2d with the nearest preceding unpaired maxpool2d).
#pragma once

#include "models/layers/Layer.h"
#include "models/layers/Pool2d.h"

namespace dptrain {

class MaxUnpool2d final : public Layer {
 public:
  explicit MaxUnpool2d(const Pool2d* pool);
  std::string kind() const override { return "maxunpool2d"; }
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;

 private:
  const Pool2d* pool_;
  int64_t planes_ = 0, pooled_ = 0, hw_ = 0;  // per sample: channels, values per pooled and full plane
  Shape out_;
};

}  // namespace dptrain
