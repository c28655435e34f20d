// Nearest-neighbour upsampling of NCHW samples by integer factors: the cheap decoder step (and,
// followed by a convolution, the usual alternative to a transposed convolution's checkerboards).
#pragma once

#include "models/layers/Layer.h"

namespace dptrain {

class Upsample2d final : public Layer {
 public:
  Upsample2d(int64_t scale_h, int64_t scale_w);
  std::string kind() const override { return "upsample2d"; }
  std::string describe() const override;
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
  int64_t scale_h() const { return sh_; }
  int64_t scale_w() const { return sw_; }

 private:
  int64_t sh_, sw_;
  int64_t c_ = 0, h_ = 0, w_ = 0;
};

}  // namespace dptrain
