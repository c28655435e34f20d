// Runs child layers in order. It owns the activations between children (reused across steps) and
// two gradient buffers that backward alternates between, and tells the step's gradient hook after
// each child that the parameter gradients from that child's offset on are final.
#pragma once

#include <memory>
#include <vector>

#include "models/layers/Layer.h"

namespace dptrain {

class Sequential final : public Layer {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::unique_ptr<Layer>> layers) : layers_(std::move(layers)) {}
  void add(std::unique_ptr<Layer> layer) { layers_.push_back(std::move(layer)); }
  std::string kind() const override { return "sequential"; }
  Shape setup(const Shape& in, ParamRegistry& registry) override;
  void forward(const Tensor& in, Tensor& out, const StepContext& ctx) override;
  void backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din, const StepContext& ctx) override;

  size_t size() const { return layers_.size(); }
  Layer& layer(size_t i) { return *layers_[i]; }
  // The sample shape child i produces (after setup).
  const Shape& output_shape(size_t i) const { return out_shapes_[i]; }
  // One line per layer: path, description, output shape.
  std::vector<std::string> summary() const;

 private:
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Shape> out_shapes_;
  size_t first_param_layer_ = 0;  // layers before it need no backward when din is not wanted (trainable ones)
  std::vector<Tensor> acts_;      // output of child i for i < n - 1
  Tensor grads_[2];
};

// "03_dense": the scope name of child i of kind k.
std::string child_scope(size_t index, const std::string& kind);

}  // namespace dptrain
