#include "models/layers/MinibatchStddev.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "models/core/Error.h"
#include "models/kernels/KernelBackend.h"
#include "models/layers/Sequential.h"

namespace dptrain {

MinibatchStddev::MinibatchStddev(int64_t group) : group_(group) {
  if (group < 2) fail_input("minibatch_stddev: group must be at least 2 (the samples whose spread is measured)");
}

std::string MinibatchStddev::describe() const { return "minibatch_stddev group " + std::to_string(group_); }

Shape MinibatchStddev::setup(const Shape& in, ParamRegistry&) {
  if (in.rank() < 1) fail_input("minibatch_stddev: input must have a shape per sample, got " + in.str());
  features_ = in.numel();
  extra_ = in.rank() == 1 ? 1 : features_ / in[0];  // one feature, or one channel of the same extent
  std::vector<int64_t> dims = in.to_vector();
  dims[0] += 1;
  out_ = Shape(dims);
  return out_;
}

void MinibatchStddev::forward(const Tensor& in, Tensor& out, const StepContext&) {
  out.resize(out_.with_batch(in.rows()), in.device());
  kernels(in.device()).minibatch_stddev(in.rows(), group_, features_, extra_, in.data(), out.data());
}

void MinibatchStddev::backward(const Tensor& in, const Tensor&, const Tensor& dout, Tensor* din, const StepContext&) {
  if (!din) return;
  din->resize(in.shape(), in.device());
  kernels(in.device())
      .minibatch_stddev_backward(in.rows(), group_, features_, extra_, in.data(), dout.data(), din->data());
}

int64_t minibatch_stddev_group(Layer& layer) {
  if (auto* m = dynamic_cast<MinibatchStddev*>(&layer)) return m->group();
  int64_t g = 1;
  if (auto* seq = dynamic_cast<Sequential*>(&layer))
    for (size_t i = 0; i < seq->size(); ++i) g = std::lcm(g, minibatch_stddev_group(seq->layer(i)));
  return g;
}

}  // namespace dptrain
