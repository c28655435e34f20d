#include "models/layers/MaxUnpool2d.h"

#include "models/core/Error.h"
#include "models/kernels/KernelBackend.h"

namespace dptrain {

MaxUnpool2d::MaxUnpool2d(const Pool2d* pool) : pool_(pool) {
  if (!pool || pool->kind() != "maxpool2d") fail_input("maxunpool2d: needs a preceding maxpool2d to pair with");
}

Shape MaxUnpool2d::setup(const Shape& in, ParamRegistry&) {
  const Conv2dGeometry& g = pool_->geometry();
  Shape pooled{g.channels, g.out_h(), g.out_w()};
  if (in != pooled)
    fail_input("maxunpool2d: input " + in.str() + " does not match the output " + pooled.str() +
               " of the maxpool2d it is paired with");
  planes_ = g.channels;
  pooled_ = g.out_h() * g.out_w();
  hw_ = g.height * g.width;
  out_ = Shape{g.channels, g.height, g.width};
  return out_;
}

void MaxUnpool2d::forward(const Tensor& in, Tensor& out, const StepContext&) {
  out.resize(out_.with_batch(in.rows()), in.device());
  kernels(in.device()).max_unpool(in.rows() * planes_, pooled_, hw_, in.data(), pool_->argmax(), out.data());
}

void MaxUnpool2d::backward(const Tensor& in, const Tensor&, const Tensor& dout, Tensor* din, const StepContext&) {
  if (!din) return;
  din->resize(in.shape(), in.device());
  kernels(in.device())
      .max_unpool_backward(in.rows() * planes_, pooled_, hw_, dout.data(), pool_->argmax(), din->data());
}

}  // namespace dptrain
