#include "models/layers/Sequential.h"

#include <cstdio>

#include "models/core/Error.h"

namespace dptrain {

std::string child_scope(size_t index, const std::string& kind) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%02zu_", index);
  return buf + kind;
}

Shape Sequential::setup(const Shape& in, ParamRegistry& registry) {
  if (layers_.empty()) fail_input("a sequential model needs at least one layer");
  Shape s = in;
  out_shapes_.clear();
  bool found = false;
  first_param_layer_ = layers_.size();
  for (size_t i = 0; i < layers_.size(); ++i) {
    int64_t before = registry.size();
    layers_[i]->set_param_offset(before);
    registry.push_scope(child_scope(i, layers_[i]->kind()));
    if (registry.named_frozen(registry.scope()) || registry.inside_frozen()) layers_[i]->set_trainable(false);
    const bool frozen = !layers_[i]->trainable();
    if (frozen) registry.push_frozen();
    try {
      s = layers_[i]->setup(s, registry);
    } catch (const Error& e) {
      throw Error(e.kind(), "layer " + registry.scope() + ": " + e.what());
    }
    if (frozen) registry.pop_frozen();
    registry.pop_scope();
    if (registry.size() > before && !frozen && !found) {
      first_param_layer_ = i;
      found = true;
    }
    out_shapes_.push_back(s);
  }
  set_param_offset(layers_.front()->param_offset());
  acts_.resize(layers_.size() - 1);
  return s;
}

void Sequential::forward(const Tensor& in, Tensor& out, const StepContext& ctx) {
  const Tensor* cur = &in;
  for (size_t i = 0; i < layers_.size(); ++i) {
    Tensor& dst = i + 1 == layers_.size() ? out : acts_[i];
    layers_[i]->forward(*cur, dst, ctx);
    cur = &dst;
  }
}

void Sequential::backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din,
                          const StepContext& ctx) {
  // Without a din to produce, the layers below the first one with trainable parameters need no
  // backward (with every layer frozen, none does).
  const size_t stop = din ? 0 : first_param_layer_;
  const Tensor* g = &dout;
  StepContext frozen = ctx;
  frozen.parameter_gradients = false;
  for (size_t i = layers_.size(); i-- > stop;) {
    const Tensor& x = i == 0 ? in : acts_[i - 1];
    const Tensor& y = i + 1 == layers_.size() ? out : acts_[i];
    Tensor* dx = i == stop ? (i == 0 ? din : nullptr) : &grads_[i % 2];
    layers_[i]->backward(x, y, *g, dx, layers_[i]->trainable() ? ctx : frozen);
    if (ctx.on_gradients_ready) (*ctx.on_gradients_ready)(layers_[i]->param_offset());
    g = dx;
  }
}

std::vector<std::string> Sequential::summary() const {
  std::vector<std::string> lines;
  for (size_t i = 0; i < layers_.size(); ++i)
    lines.push_back(child_scope(i, layers_[i]->kind()) + "  " + layers_[i]->describe() + "  -> " +
                    out_shapes_[i].str());
  return lines;
}

}  // namespace dptrain
