#include "models/layers/Residual.h"

#include "models/core/Error.h"
#include "models/layers/ActivationNames.h"
#include "models/layers/Conv2d.h"
#include "models/layers/Dense.h"
#include "models/layers/Sequential.h"

namespace dptrain {

Residual::Residual(std::unique_ptr<Layer> body, std::unique_ptr<Layer> shortcut, Activation act, float slope)
    : body_(std::move(body)), shortcut_(std::move(shortcut)), act_(act), slope_(slope) {
  if (!body_) fail_input("residual: needs a body");
}

namespace {

// "conv2d 8->8 ... | batchnorm ..." for a Sequential, else the layer's own description.
std::string chain_description(Layer& layer) {
  auto* seq = dynamic_cast<Sequential*>(&layer);
  if (!seq) return layer.describe();
  std::string s;
  for (size_t i = 0; i < seq->size(); ++i) s += (i ? " | " : "") + seq->layer(i).describe();
  return s;
}

}  // namespace

std::string Residual::describe() const {
  return "residual [" + chain_description(*body_) + "] + " +
         (shortcut_ ? "[" + chain_description(*shortcut_) + "]" : "identity") +
         (act_ == Activation::identity ? "" : ", " + activation_name(act_));
}

Shape Residual::setup(const Shape& in, ParamRegistry& registry) {
  body_->set_param_offset(registry.size());
  registry.push_scope("body");
  Shape out = body_->setup(in, registry);
  registry.pop_scope();
  if (!shortcut_ && out != in) {
    if (in.rank() == 3 && out.rank() == 3 && in[1] % out[1] == 0 && in[2] % out[2] == 0 &&
        in[1] / out[1] == in[2] / out[2]) {
      Conv2dOptions o;
      o.out_channels = out[0];
      o.kernel_h = o.kernel_w = 1;
      o.stride = in[1] / out[1];
      o.bias = false;
      shortcut_ = std::make_unique<Conv2d>(o);
    } else if (out.rank() == 1) {
      shortcut_ = std::make_unique<Dense>(out[0], false);
    } else {
      fail_input("residual: the body maps " + in.str() + " to " + out.str() +
                 ", which no 1x1 projection matches; give a shortcut");
    }
  }
  if (shortcut_) {
    shortcut_->set_param_offset(registry.size());
    registry.push_scope("shortcut");
    Shape s = shortcut_->setup(in, registry);
    registry.pop_scope();
    if (s != out) fail_input("residual: the shortcut gives " + s.str() + " but the body gives " + out.str());
  }
  set_param_offset(body_->param_offset());
  return out;
}

void Residual::forward(const Tensor& in, Tensor& out, const StepContext& ctx) {
  KernelBackend& k = kernels(in.device());
  body_->forward(in, body_out_, ctx);
  const Tensor* skip = &in;
  if (shortcut_) {
    shortcut_->forward(in, short_out_, ctx);
    skip = &short_out_;
  }
  out.resize(body_out_.shape(), in.device());
  k.add(out.numel(), body_out_.data(), skip->data(), out.data());
  if (act_ != Activation::identity) k.activation(act_, slope_, out.numel(), out.data(), out.data());
}

void Residual::backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) {
  KernelBackend& k = kernels(in.device());
  const Tensor* dz = &dout;
  if (act_ != Activation::identity) {
    dz_.resize(dout.shape(), dout.device());
    k.activation_backward(act_, slope_, dout.numel(), out.data(), dout.data(), dz_.data());
    dz = &dz_;
  }
  if (shortcut_) shortcut_->backward(in, short_out_, *dz, din ? &dshort_ : nullptr, ctx);
  body_->backward(in, body_out_, *dz, din ? &dbody_ : nullptr, ctx);
  if (!din) return;
  din->resize(in.shape(), in.device());
  k.add(din->numel(), dbody_.data(), shortcut_ ? dshort_.data() : dz->data(), din->data());
}

}  // namespace dptrain
