// The [gan] table of a task = "gan" config: the two networks, the latent prior, the objective, the
// alternation (d_steps discriminator updates, then g_steps generator updates), one optimizer per
// network, the adaptive skip rule, and the sample/evaluation settings. docs/config.md lists every
// key; the trainer and `dptrain sample` both read it here.
#pragma once

#include <cstdint>
#include <string>

#include "models/core/ConfigNode.h"
#include "models/losses/GanLoss.h"
#include "trainer/TrainConfig.h"

namespace dptrain {

enum class LatentDistribution { normal, uniform };

struct GanConfig {
  int64_t latent = 16;
  LatentDistribution distribution = LatentDistribution::normal;  // N(0, I) or U(-1, 1)^latent
  GanLossKind loss = GanLossKind::non_saturating;
  int64_t d_steps = 1, g_steps = 1;  // one cycle: d_steps discriminator steps, then g_steps generator steps
  double clip = 0.0;                 // > 0: clamp the discriminator's parameters to [-clip, clip] after each update
  double d_skip_below = 0.0;         // > 0: skip a discriminator update whose all-reduced loss is below it
  // PacGAN (Lin et al. 2018): the discriminator judges `pack` consecutive global samples at once,
  // concatenated along the first sample dimension, which penalises a generator short of variety.
  int64_t pack = 1;
  OptimConfig optim_g, optim_d;
  // > 0: the generator that training writes out (generator.h5, samples) is the exponential moving
  // average of its weights, ema_t = d ema_{t-1} + (1 - d) w_t after each generator update, with
  // d = min(ema, (1 + t) / (10 + t)) so that the first updates do not keep the initial weights
  // (Yazici et al. 2019; ProGAN, StyleGAN, BigGAN). Its batch-norm statistics are measured anew
  // at the end (ema_calibration_batches forward passes in training mode).
  double ema = 0.0;
  int64_t ema_calibration_batches = 100;
  int64_t samples = 64;         // samples written as a PNG at the end (grid for images)
  int64_t eval_samples = 2500;  // 2-D mixtures: samples scored for mode coverage and quality
  bool eval_every_epoch = true;
  int64_t mode_min_samples = 20;  // a mode counts as covered with this many high-quality samples
  double quality_sigmas = 3.0;    // a sample is high quality within this many sigmas of its nearest mode
};

// Reads [gan] of `root` (and refuses the keys of other tables that a GAN does not use, such as
// [optim], naming them). The networks' tables are read by build_gan_networks.
GanConfig read_gan_config(const ConfigNode& root, const TrainConfig& config);

}  // namespace dptrain
