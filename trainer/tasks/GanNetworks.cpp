#include "trainer/tasks/GanNetworks.h"

#include "models/core/Error.h"
#include "models/layers/ActivationLayer.h"
#include "models/layers/ActivationNames.h"
#include "models/layers/Reshape.h"
#include "models/layers/Sequential.h"
#include "models/zoo/ModelZoo.h"

namespace dptrain {

namespace {

Sequential& as_sequential(ZooModel& z) {
  auto* seq = dynamic_cast<Sequential*>(z.root.get());
  DPT_ASSERT(seq != nullptr, "the model zoo returns a Sequential");
  return *seq;
}

void refuse_reconstruction(const ConfigNode& table, const ZooModel& z) {
  if (z.reconstruct) table.fail("kind", "a GAN network cannot be an autoencoder or a VAE");
  // Fine-tuning keys are the supervised tasks' (docs/training-methods.md); GAN networks train whole.
  if (!z.freeze.empty()) table.fail("freeze", "GAN networks train every layer (fine-tuning is for supervised tasks)");
  if (!z.init_from.empty())
    table.fail("init_from", "GAN networks start from the seed (fine-tuning is for supervised tasks)");
}

void refuse_frozen(const ConfigNode& table, const Model& m) {
  if (m.frozen_parameter_count() > 0)
    table.fail("layers", "a layer has trainable = false: GAN networks train every layer");
}

}  // namespace

Shape gan_sample_shape(const ConfigNode& root, const Shape& data_shape) {
  ConfigNode g = root.child("gan").child("generator");
  if (!g.has("output_shape")) {
    if (data_shape.rank() == 0)
      g.fail("output_shape", "is needed here: the training data that would give the sample shape is not at hand");
    return data_shape;
  }
  std::vector<int64_t> dims = g.get_int_list("output_shape", {});
  if (dims.empty() || dims.size() > static_cast<size_t>(Shape::max_rank))
    g.fail("output_shape", "must be a sample shape such as [2] or [1, 28, 28]");
  for (int64_t d : dims)
    if (d <= 0) g.fail("output_shape", "dimensions must be positive");
  Shape s(dims);
  if (data_shape.rank() > 0 && s != data_shape)
    g.fail("output_shape", "is " + s.str() + " but the training data's samples are " + data_shape.str());
  return s;
}

std::unique_ptr<Model> build_gan_generator(const ConfigNode& root, const GanConfig& gan, const Shape& sample_shape,
                                           Device device, std::string* kind) {
  ConfigNode table = root.child("gan").child("generator");
  table.mark_used("output_shape");
  Activation out_act;
  const std::string act_name = table.get_string("output_activation", "identity");
  if (!parse_activation(act_name, out_act))
    table.fail("output_activation", "unknown activation '" + act_name + "'; valid: identity, sigmoid, tanh, relu");
  // The zoo sizes a regression output layer to `target_dim` values: one per sample value.
  TaskInfo task{false, 2, sample_shape.numel()};
  auto build = [&](bool reshape) {
    ZooModel z = build_model(table, task, Shape{gan.latent});
    refuse_reconstruction(table, z);
    if (kind) *kind = z.kind;
    Sequential& seq = as_sequential(z);
    if (out_act != Activation::identity) seq.add(std::make_unique<ActivationLayer>(out_act));
    if (reshape) seq.add(std::make_unique<Reshape>(sample_shape));
    auto m = std::make_unique<Model>(std::move(z.root), Shape{gan.latent}, device);
    refuse_frozen(table, *m);
    return m;
  };
  std::unique_ptr<Model> g = build(false);
  if (g->output_shape() == sample_shape) return g;
  if (g->output_shape().numel() != sample_shape.numel())
    table.fail("kind", "the generator's output per sample is " + g->output_shape().str() + ", the samples are " +
                           sample_shape.str());
  return build(true);  // same values, laid out as the data's samples
}

Shape packed_shape(const Shape& sample_shape, int64_t pack) {
  Shape s = sample_shape;
  s[0] *= pack;
  return s;
}

GanNetworks build_gan_networks(const ConfigNode& root, const GanConfig& gan, const Shape& sample_shape, Device device) {
  GanNetworks n;
  n.generator = build_gan_generator(root, gan, sample_shape, device, &n.generator_kind);
  ConfigNode table = root.child("gan").child("discriminator");
  const Shape d_input = packed_shape(sample_shape, gan.pack);
  ZooModel z = build_model(table, TaskInfo{false, 2, 1}, d_input);
  refuse_reconstruction(table, z);
  n.discriminator_kind = z.kind;
  n.discriminator = std::make_unique<Model>(std::move(z.root), d_input, device);
  refuse_frozen(table, *n.discriminator);
  if (n.discriminator->output_shape().numel() != 1)
    table.fail(table.has("layers") ? "layers" : "kind", std::string("the discriminator must output one score per ") +
                                                            (gan.pack > 1 ? "pack" : "sample") + ", it outputs " +
                                                            n.discriminator->output_shape().str());
  return n;
}

}  // namespace dptrain
