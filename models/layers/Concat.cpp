#include "models/layers/Concat.h"

#include "models/core/Error.h"
#include "models/kernels/KernelBackend.h"

namespace dptrain {

Concat::Concat(std::vector<std::unique_ptr<Layer>> branches) : branches_(std::move(branches)) {
  if (branches_.size() < 2) fail_input("concat: needs at least two branches");
}

std::string Concat::describe() const {
  std::string s = "concat of " + std::to_string(branches_.size()) + " branches [";
  for (size_t i = 0; i < shapes_.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shapes_[i].rank() ? shapes_[i][0] : 0);
  return s + "]";
}

Shape Concat::setup(const Shape& in, ParamRegistry& registry) {
  shapes_.clear();
  offsets_.clear();
  row_ = 0;
  Shape out;
  for (size_t i = 0; i < branches_.size(); ++i) {
    branches_[i]->set_param_offset(registry.size());
    registry.push_scope("branch" + std::to_string(i));
    Shape s = branches_[i]->setup(in, registry);
    registry.pop_scope();
    if (i == 0) {
      out = s;
    } else {
      Shape a = s, b = out;
      a[0] = b[0] = 0;
      if (a != b)
        fail_input("concat: branch " + std::to_string(i) + " gives " + s.str() + ", branch 0 gives " +
                   shapes_[0].str() + "; only the first dimension may differ");
      out[0] += s[0];
    }
    shapes_.push_back(s);
    offsets_.push_back(row_);
    row_ += s.numel();
  }
  outs_.resize(branches_.size());
  douts_.resize(branches_.size());
  set_param_offset(branches_.front()->param_offset());
  return out;
}

void Concat::forward(const Tensor& in, Tensor& out, const StepContext& ctx) {
  KernelBackend& k = kernels(in.device());
  const int64_t n = in.rows();
  Shape s = shapes_[0];
  s[0] = 0;
  for (const Shape& b : shapes_) s[0] += b[0];
  out.resize(s.with_batch(n), in.device());
  for (size_t i = 0; i < branches_.size(); ++i) {
    branches_[i]->forward(in, outs_[i], ctx);
    const int64_t size = shapes_[i].numel();
    k.copy_2d(n, size, outs_[i].data(), size, out.data() + offsets_[i], row_);
  }
}

void Concat::backward(const Tensor& in, const Tensor&, const Tensor& dout, Tensor* din, const StepContext& ctx) {
  KernelBackend& k = kernels(in.device());
  const int64_t n = in.rows();
  bool first = true;
  for (size_t i = branches_.size(); i-- > 0;) {
    const int64_t size = shapes_[i].numel();
    douts_[i].resize(shapes_[i].with_batch(n), in.device());
    k.copy_2d(n, size, dout.data() + offsets_[i], row_, douts_[i].data(), size);
    branches_[i]->backward(in, outs_[i], douts_[i], din ? (first ? din : &dx_) : nullptr, ctx);
    if (din && !first) k.axpy(din->numel(), 1.0f, dx_.data(), din->data());
    first = false;
  }
}

}  // namespace dptrain
