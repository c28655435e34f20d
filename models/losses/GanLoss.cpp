#include "models/losses/GanLoss.h"

#include "models/core/Error.h"

namespace dptrain {

namespace {

using Term = KernelBackend::GanTerm;

// f(s) = c g(a s + b) per role. D(x) = sigmoid(s) for the two cross-entropy objectives, so
// -log D = softplus(-s) and -log(1 - D) = softplus(s).
Term make(Term::Shape shape, float a, float b, float c) {
  Term t;
  t.shape = shape;
  t.a = a;
  t.b = b;
  t.c = c;
  return t;
}

}  // namespace

GanLossKind GanLoss::parse(const std::string& name) {
  if (name == "minimax") return GanLossKind::minimax;
  if (name == "non_saturating") return GanLossKind::non_saturating;
  if (name == "wasserstein") return GanLossKind::wasserstein;
  if (name == "hinge") return GanLossKind::hinge;
  if (name == "least_squares") return GanLossKind::least_squares;
  fail_input("unknown GAN loss '" + name + "'; valid: " + names_help());
}

std::string GanLoss::name(GanLossKind kind) {
  switch (kind) {
    case GanLossKind::minimax:
      return "minimax";
    case GanLossKind::non_saturating:
      return "non_saturating";
    case GanLossKind::wasserstein:
      return "wasserstein";
    case GanLossKind::hinge:
      return "hinge";
    case GanLossKind::least_squares:
      return "least_squares";
  }
  return "?";
}

const char* GanLoss::names_help() { return "minimax, non_saturating, wasserstein, hinge, least_squares"; }

Term GanLoss::term(GanLossKind kind, GanRole role) {
  switch (kind) {
    case GanLossKind::minimax:         // D: -log D(x) - log(1 - D(G(z))); G: log(1 - D(G(z)))
    case GanLossKind::non_saturating:  // the same D; G: -log D(G(z))
      if (role == GanRole::real) return make(Term::softplus, -1.0f, 0.0f, 1.0f);
      if (role == GanRole::fake) return make(Term::softplus, 1.0f, 0.0f, 1.0f);
      return kind == GanLossKind::minimax ? make(Term::softplus, 1.0f, 0.0f, -1.0f)
                                          : make(Term::softplus, -1.0f, 0.0f, 1.0f);
    case GanLossKind::wasserstein:  // critic: E[s(fake)] - E[s(real)]; G: -E[s(fake)]
      if (role == GanRole::fake) return make(Term::linear, 1.0f, 0.0f, 1.0f);
      return make(Term::linear, -1.0f, 0.0f, 1.0f);
    case GanLossKind::hinge:  // D: max(0, 1 - s(real)) + max(0, 1 + s(fake)); G: -s(fake)
      if (role == GanRole::real) return make(Term::relu, -1.0f, 1.0f, 1.0f);
      if (role == GanRole::fake) return make(Term::relu, 1.0f, 1.0f, 1.0f);
      return make(Term::linear, -1.0f, 0.0f, 1.0f);
    case GanLossKind::least_squares:  // D: (s(real) - 1)^2 / 2 + s(fake)^2 / 2; G: (s(fake) - 1)^2 / 2
      if (role == GanRole::fake) return make(Term::half_square, 1.0f, 0.0f, 1.0f);
      return make(Term::half_square, 1.0f, -1.0f, 1.0f);
  }
  return Term{};
}

void GanLoss::evaluate(GanRole role, const Tensor& scores, float scale, Tensor* dscores, float* stats) const {
  if (scores.row_size() != 1)
    fail_input("the GAN discriminator must output one score per sample, it outputs " +
               scores.shape().drop_first().str());
  float* d = nullptr;
  if (dscores) {
    dscores->resize(scores.shape(), scores.device());
    d = dscores->data();
  }
  kernels(scores.device()).gan_loss(term(kind_, role), scores.rows(), scores.data(), scale, d, stats);
}

}  // namespace dptrain
