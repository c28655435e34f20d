// The GAN objectives (Goodfellow et al. 2014: minimax and non-saturating; Arjovsky et al. 2017:
// Wasserstein; Lim & Ye 2017 / Miyato et al. 2018: hinge; Mao et al. 2017: least squares) on the
// discriminator's one score per sample. Each is a table of three per-row terms — the
// discriminator on real rows, on generated rows, and the generator's own — evaluated by one
// backend kernel, so a new objective is a new table row, not new device code.
#pragma once

#include <string>

#include "models/core/Tensor.h"
#include "models/kernels/KernelBackend.h"

namespace dptrain {

enum class GanLossKind { minimax, non_saturating, wasserstein, hinge, least_squares };

// Which term: the discriminator's loss on real rows or on generated rows, or the generator's loss
// on generated rows (which the discriminator scores).
enum class GanRole { real, fake, generator };

class GanLoss {
 public:
  explicit GanLoss(GanLossKind kind) : kind_(kind) {}
  // "minimax", "non_saturating", "wasserstein", "hinge", "least_squares"; throws naming it.
  static GanLossKind parse(const std::string& name);
  static std::string name(GanLossKind kind);
  static const char* names_help();
  // The per-row term f(s) = c g(a s + b) of `role` (see KernelBackend::gan_loss).
  static KernelBackend::GanTerm term(GanLossKind kind, GanRole role);

  GanLossKind kind() const { return kind_; }
  // Adds the sum of the role's term over `scores` ([rows, 1]) to stats[stat_loss] and the rows to
  // stats[stat_count]; writes dscores = scale * d/ds when dscores is not null.
  void evaluate(GanRole role, const Tensor& scores, float scale, Tensor* dscores, float* stats) const;

 private:
  GanLossKind kind_;
};

}  // namespace dptrain
