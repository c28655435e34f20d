// Builds a GAN's two networks from [gan.generator] and [gan.discriminator], each any model-zoo
// kind or an explicit layer list: the generator maps a latent vector to one sample of the data's
// shape (a final reshape is added when only the layout differs, and `output_activation` is applied
// last), the discriminator maps a sample to one score. Shared by the trainer and `dptrain sample`.
#pragma once

#include <memory>
#include <string>

#include "models/Model.h"
#include "models/core/ConfigNode.h"
#include "trainer/tasks/GanConfig.h"

namespace dptrain {

struct GanNetworks {
  std::unique_ptr<Model> generator, discriminator;
  std::string generator_kind, discriminator_kind;
};

// The generated samples' shape: [gan.generator] output_shape when given (it must then match
// `data_shape` unless that is empty), else `data_shape`; fails naming the key when neither is known.
Shape gan_sample_shape(const ConfigNode& root, const Shape& data_shape);

// `sample_shape` with its first dimension times `pack`: one discriminator input of `pack` samples
// concatenated along channels (images) or features (vectors).
Shape packed_shape(const Shape& sample_shape, int64_t pack);

// Builds both networks (parameters not yet initialized) for samples of `sample_shape`; the
// discriminator takes gan.pack of them at once (packed_shape).
GanNetworks build_gan_networks(const ConfigNode& root, const GanConfig& gan, const Shape& sample_shape, Device device);

// Builds the generator alone (for sampling).
std::unique_ptr<Model> build_gan_generator(const ConfigNode& root, const GanConfig& gan, const Shape& sample_shape,
                                           Device device, std::string* kind = nullptr);

}  // namespace dptrain
