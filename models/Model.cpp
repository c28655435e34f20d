#include "models/Model.h"

#include <cmath>

#include "models/core/Error.h"
#include "models/core/Hash.h"
#include "models/kernels/KernelBackend.h"

namespace dptrain {

std::string layer_list(const std::vector<ParamInfo>& params, bool (*keep)(const ParamInfo&)) {
  std::string list, last;
  for (const ParamInfo& p : params) {
    const std::string layer = p.path.substr(0, p.path.rfind('/'));
    if ((keep && !keep(p)) || layer == last) continue;
    list += (list.empty() ? "" : ", ") + layer;
    last = layer;
  }
  return list;
}

Model::Model(std::unique_ptr<Layer> root, const Shape& input_shape, Device device,
             const std::vector<std::string>& freeze)
    : root_(std::move(root)), input_shape_(input_shape), device_(device) {
  ParamRegistry registry;
  registry.set_freeze_paths(freeze);
  output_shape_ = root_->setup(input_shape, registry);
  if (auto missing = registry.unmatched_freeze_paths(); !missing.empty()) {
    std::vector<ParamInfo> params;
    for (const auto& e : registry.entries()) params.push_back({e.path, e.shape, e.offset});
    const std::string list = layer_list(params);
    fail_input("model.freeze: no layer has the path '" + missing.front() + "'; the layers with parameters are " +
               (list.empty() ? "none" : list));
  }
  int64_t n = registry.size();
  params_ = Tensor::zeros({n}, device);
  grads_ = Tensor::zeros({n}, device);
  registry.bind(params_.data(), grads_.data(), device);
  for (const auto& e : registry.entries()) {
    infos_.push_back({e.path, e.shape, e.offset, e.frozen});
    inits_.push_back(e.init);
  }
  buffers_ = Tensor::zeros({registry.buffer_size()}, device);
  registry.bind_buffers(buffers_.data(), device);
  for (const auto& e : registry.buffer_entries()) {
    buffer_infos_.push_back({e.path, e.shape, e.offset});
    buffer_inits_.push_back(e.init);
  }
  initialize_buffers();
}

void Model::initialize_buffers() {
  std::vector<float> host(static_cast<size_t>(buffers_.numel()), 0.0f);
  for (size_t i = 0; i < buffer_infos_.size(); ++i) {
    DPT_ASSERT(buffer_inits_[i].kind == ParamInit::zeros || buffer_inits_[i].kind == ParamInit::ones ||
                   buffer_inits_[i].kind == ParamInit::constant,
               "buffer " + buffer_infos_[i].path + " must start at a constant");
    float v = buffer_inits_[i].kind == ParamInit::ones       ? 1.0f
              : buffer_inits_[i].kind == ParamInit::constant ? buffer_inits_[i].scale
                                                             : 0.0f;
    float* p = host.data() + buffer_infos_[i].offset;
    std::fill(p, p + buffer_infos_[i].shape.numel(), v);
  }
  if (!host.empty()) buffers_.copy_from(Tensor::view(host.data(), buffers_.shape()));
}

void Model::initialize(uint64_t seed) {
  initialize_buffers();
  std::vector<float> host(static_cast<size_t>(flat_size()), 0.0f);
  for (size_t i = 0; i < infos_.size(); ++i) {
    const ParamInit& init = inits_[i];
    Philox rng(seed, RandomPurpose::init, static_cast<uint32_t>(i));
    float* p = host.data() + infos_[i].offset;
    int64_t n = infos_[i].shape.numel();
    float bound = init.scale;
    switch (init.kind) {
      case ParamInit::zeros:
        break;
      case ParamInit::ones:
        std::fill(p, p + n, 1.0f);
        break;
      case ParamInit::constant:
        std::fill(p, p + n, init.scale);
        break;
      case ParamInit::he_uniform:
        bound = std::sqrt(6.0f / static_cast<float>(init.fan_in));
        [[fallthrough]];
      case ParamInit::uniform:
        for (int64_t j = 0; j < n; ++j) p[j] = (2.0f * rng.uniform() - 1.0f) * bound;
        break;
      case ParamInit::xavier_uniform:
        bound = std::sqrt(6.0f / static_cast<float>(init.fan_in + init.fan_out));
        for (int64_t j = 0; j < n; ++j) p[j] = (2.0f * rng.uniform() - 1.0f) * bound;
        break;
      case ParamInit::normal:
        for (int64_t j = 0; j < n; ++j) p[j] = rng.normal() * init.scale;
        break;
    }
  }
  params_.copy_from(Tensor::view(host.data(), params_.shape()));
}

const Tensor& Model::forward(const Tensor& x, const StepContext& ctx) {
  if (x.shape().drop_first() != input_shape_)
    fail_input("model input per sample is " + input_shape_.str() + ", got a batch of " + x.shape().str());
  last_input_ = &x;
  root_->forward(x, output_, ctx);
  return output_;
}

void Model::backward(const Tensor& dout, const StepContext& ctx, Tensor* din) {
  DPT_ASSERT(last_input_ != nullptr, "backward before forward");
  root_->backward(*last_input_, output_, dout, din, ctx);
}

void Model::zero_grad() { grads_.fill(0.0f); }

int64_t Model::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : infos_) n += p.shape.numel();
  return n;
}

int64_t Model::frozen_parameter_count() const {
  int64_t n = 0;
  for (const auto& p : infos_)
    if (p.frozen) n += p.shape.numel();
  return n;
}

int64_t Model::param_end(size_t i) const { return i + 1 < infos_.size() ? infos_[i + 1].offset : flat_size(); }

std::vector<FlatRange> Model::trainable_ranges() const {
  std::vector<FlatRange> out;
  for (size_t i = 0; i < infos_.size(); ++i)
    if (!infos_[i].frozen) out.push_back({infos_[i].offset, param_end(i)});
  return out;
}

std::vector<ParamInfo> Model::trainable_layout() const {
  std::vector<ParamInfo> out;
  int64_t at = 0;
  for (size_t i = 0; i < infos_.size(); ++i)
    if (!infos_[i].frozen) {
      out.push_back({infos_[i].path, infos_[i].shape, at, false});
      at += param_end(i) - infos_[i].offset;
    }
  return out;
}

int64_t Model::trainable_size() const {
  int64_t n = 0;
  for (const FlatRange& r : trainable_ranges()) n += r.end - r.begin;
  return n;
}

uint64_t Model::layout_hash() const {
  uint64_t h = stable_hash(input_shape_.str());
  for (const auto& p : infos_) {
    if (p.frozen) h = stable_hash(std::string("frozen"), h);  // optimizer states and buckets leave it out
    h = stable_hash(p.path, h);
    h = stable_hash(p.shape.str(), h);
    h = stable_hash(&p.offset, sizeof p.offset, h);
  }
  for (const auto& b : buffer_infos_) {
    h = stable_hash("buffer:" + b.path, h);
    h = stable_hash(b.shape.str(), h);
  }
  return h;
}

Tensor Model::param(const std::string& path) {
  for (const auto& p : infos_)
    if (p.path == path) return Tensor::view(params_.data() + p.offset, p.shape, device_);
  fail_input("the model has no parameter '" + path + "'");
}

}  // namespace dptrain
