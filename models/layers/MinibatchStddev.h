// The minibatch standard-deviation feature of ProGAN (Karras et al. 2018) for a GAN's
// discriminator: within each group of `group` consecutive samples of the batch, the standard
// deviation of every feature over the group, averaged to one number, is appended to each sample
// of the group as one more constant channel ([C, H, W] -> [C + 1, H, W]) or feature ([F] ->
// [F + 1]). A generator that repeats itself gives small values, so D can tell its batches apart.
#pragma once

#include "models/layers/Layer.h"

namespace dptrain {

class MinibatchStddev final : public Layer {
 public:
  // Groups of `group` consecutive rows of the batch; a batch that is not a multiple of it ends in
  // a shorter group. (Groups span the rows one process holds: a trainer that splits the batch
  // over ranks must cut it at multiples of the group; the GAN trainer checks that at start-up.)
  explicit MinibatchStddev(int64_t group = 4);
  std::string kind() const override { return "minibatch_stddev"; }
  std::string describe() const override;
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;
  int64_t group() const { return group_; }

 private:
  int64_t group_;
  int64_t features_ = 0, extra_ = 0;  // values per sample; copies of the statistic appended to each
  Shape out_;
};

// The least common multiple of the groups of the minibatch_stddev layers in `layer` and the
// Sequentials it nests (1 when there are none): the unit a batch split over ranks must be cut at.
int64_t minibatch_stddev_group(Layer& layer);

}  // namespace dptrain
