// A model: a root layer, its parameters and gradients in one flat buffer each (docs/design.md rule 1),
// and the names of every parameter by layer path. Optimizer states, gradient buckets and
// checkpoint slices all use the same layout: a float offset into these buffers.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/layers/Layer.h"

namespace dptrain {

struct ParamInfo {
  std::string path;  // "02_conv2d/weight"
  Shape shape;
  int64_t offset;       // in floats into the flat buffers
  bool frozen = false;  // fine-tuning: no gradient, no optimizer state, not all-reduced
};

// "03_residual/body/00_conv2d, 04_dense": the layers of `params` (those `keep` accepts), each
// once, in order.
std::string layer_list(const std::vector<ParamInfo>& params, bool (*keep)(const ParamInfo&) = nullptr);

// A range of floats [begin, end) of the flat buffers.
struct FlatRange {
  int64_t begin, end;
};

class Model {
 public:
  // Sets the root up for samples of `input_shape` and allocates the flat buffers on `device`.
  // `freeze`: layer paths ("00_conv2d", "03_residual/body/01_dense") whose parameters stay as
  // they are (model.freeze); a path that names no layer is an error listing the model's layers.
  Model(std::unique_ptr<Layer> root, const Shape& input_shape, Device device,
        const std::vector<std::string>& freeze = {});

  const Shape& input_shape() const { return input_shape_; }
  const Shape& output_shape() const { return output_shape_; }
  Device device() const { return device_; }
  Layer& root() { return *root_; }

  // Draws every parameter from the counter-based generator keyed by (seed, parameter index) and
  // resets every buffer to its initial value.
  void initialize(uint64_t seed);
  // Runs forward on a batch x [n, ...input_shape]; the result lives until the next forward.
  const Tensor& forward(const Tensor& x, const StepContext& ctx);
  // Backward from d(loss)/d(output) of the last forward; din (optional) receives d/dx.
  void backward(const Tensor& dout, const StepContext& ctx, Tensor* din = nullptr);
  void zero_grad();

  Tensor& params() { return params_; }
  Tensor& grads() { return grads_; }
  const Tensor& params() const { return params_; }
  int64_t flat_size() const { return params_.numel(); }
  const std::vector<ParamInfo>& param_infos() const { return infos_; }
  // Non-trainable state (batch-norm running statistics) in its own flat buffer, named like
  // parameters; saved under /buffers by model files and checkpoints, never touched by optimizers.
  Tensor& buffers() { return buffers_; }
  const Tensor& buffers() const { return buffers_; }
  const std::vector<ParamInfo>& buffer_infos() const { return buffer_infos_; }
  // Number of real parameters (flat size without alignment padding).
  int64_t parameter_count() const;
  // Those of frozen layers.
  int64_t frozen_parameter_count() const;
  // The trainable parameters' ranges, one per parameter (its alignment padding included), in
  // flat-buffer order: what the optimizer updates and the all-reduce sums. [0, flat_size) when
  // nothing is frozen.
  std::vector<FlatRange> trainable_ranges() const;
  // The trainable parameters as laid out in an optimizer state (their ranges one after another),
  // and that state's length: the param_infos() and flat_size() when nothing is frozen.
  std::vector<ParamInfo> trainable_layout() const;
  int64_t trainable_size() const;
  // Hash of the layout (paths, shapes, offsets) that ranks compare at start-up.
  uint64_t layout_hash() const;
  // A view of one parameter by path; throws naming the path when there is none.
  Tensor param(const std::string& path);

 private:
  void initialize_buffers();
  // Where parameter i's range ends: the next one's offset (its alignment padding included).
  int64_t param_end(size_t i) const;

  std::unique_ptr<Layer> root_;
  Shape input_shape_, output_shape_;
  Device device_;
  std::vector<ParamInfo> infos_;
  std::vector<ParamInit> inits_;
  Tensor params_, grads_;
  std::vector<ParamInfo> buffer_infos_;
  std::vector<ParamInit> buffer_inits_;
  Tensor buffers_;
  const Tensor* last_input_ = nullptr;
  Tensor output_;
};

}  // namespace dptrain
