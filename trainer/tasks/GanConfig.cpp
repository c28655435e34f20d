#include "trainer/tasks/GanConfig.h"

#include "models/core/Error.h"

namespace dptrain {

GanConfig read_gan_config(const ConfigNode& root, const TrainConfig& config) {
  GanConfig c;
  ConfigNode g = root.child("gan");
  c.latent = g.get_int("latent", 16);
  if (c.latent <= 0) g.fail("latent", "must be a positive integer (the size of the generator's input)");
  c.distribution = g.get_choice("latent_distribution", "normal", {"normal", "uniform"}) == "normal"
                       ? LatentDistribution::normal
                       : LatentDistribution::uniform;
  std::string loss = g.get_string("loss", "non_saturating");
  try {
    c.loss = GanLoss::parse(loss);
  } catch (const Error& e) {
    g.fail("loss", e.what());
  }
  c.d_steps = g.get_int("d_steps", 1);
  if (c.d_steps <= 0) g.fail("d_steps", "must be a positive integer (discriminator updates per cycle)");
  c.g_steps = g.get_int("g_steps", 1);
  if (c.g_steps <= 0) g.fail("g_steps", "must be a positive integer (generator updates per cycle)");
  c.pack = g.get_int("pack", 1);
  if (c.pack <= 0) g.fail("pack", "must be a positive integer (samples the discriminator judges at once; 1 = off)");
  // Weight clipping keeps the Wasserstein critic Lipschitz (Arjovsky et al.: c = 0.01).
  c.clip = g.get_float("clip", c.loss == GanLossKind::wasserstein ? 0.01 : 0.0);
  if (!(c.clip >= 0.0)) g.fail("clip", "must be >= 0 (0 = no weight clipping)");
  c.d_skip_below = g.get_float("d_skip_below", 0.0);
  if (!(c.d_skip_below >= 0.0)) g.fail("d_skip_below", "must be >= 0 (0 = never skip)");
  if (c.d_skip_below > 0.0 && (c.loss == GanLossKind::wasserstein))
    g.fail("d_skip_below", "needs a loss bounded below (the Wasserstein critic's loss is not)");

  // DCGAN's Adam (Radford et al. 2016): lr 2e-4, beta1 = 0.5, for both networks.
  OptimConfig adam;
  adam.kind = OptimizerKind::adam;
  adam.lr = 2e-4;
  adam.beta1 = 0.5;
  c.optim_g = read_optim_config(g.child("optim_g"), adam);
  c.optim_d = read_optim_config(g.child("optim_d"), adam);

  c.ema = g.get_float("ema", 0.0);
  if (!(c.ema >= 0.0 && c.ema < 1.0))
    g.fail("ema", "must be in [0, 1): the decay of the generator's weight average (0 = off)");
  c.ema_calibration_batches = g.get_int("ema_calibration_batches", 100);
  if (c.ema_calibration_batches <= 0) g.fail("ema_calibration_batches", "must be a positive integer");

  c.samples = g.get_int("samples", 64);
  if (c.samples < 0) g.fail("samples", "must be >= 0 (0 = write no sample picture)");
  c.eval_samples = g.get_int("eval_samples", 2500);
  if (c.eval_samples <= 0) g.fail("eval_samples", "must be a positive integer");
  c.eval_every_epoch = g.get_bool("eval_every_epoch", true);
  c.mode_min_samples = g.get_int("mode_min_samples", 20);
  if (c.mode_min_samples <= 0) g.fail("mode_min_samples", "must be a positive integer");
  c.quality_sigmas = g.get_float("quality_sigmas", 3.0);
  if (!(c.quality_sigmas > 0.0)) g.fail("quality_sigmas", "must be > 0");
  g.mark_used("generator");
  g.mark_used("discriminator");

  if (config.task == "gan") {
    // Tables of the supervised loop that a GAN does not use: refuse them rather than ignore them.
    ConfigNode o = root.child("optim");
    for (const char* k :
         {"kind", "lr", "momentum", "beta1", "beta2", "eps", "rho", "l1", "l2", "weight_decay", "clip_norm"})
      if (o.has(k)) o.fail(k, "a GAN has one optimizer per network: set it in [gan.optim_g] or [gan.optim_d]");
    if (config.schedule.kind == ScheduleKind::plateau)
      root.child("schedule").fail("kind", "plateau needs validation losses; task gan has none");
    if (config.early_stopping.enabled) root.child("early_stopping").fail("enabled", "does not apply to task gan");
    if (root.child("model").has("kind") || root.child("model").has("layers"))
      root.child("model").fail(root.child("model").has("kind") ? "kind" : "layers",
                               "task gan builds its networks from [gan.generator] and [gan.discriminator]");
  }
  return c;
}

}  // namespace dptrain
