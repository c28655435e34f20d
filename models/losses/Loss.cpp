#include "models/losses/Loss.h"

#include "models/core/Error.h"
#include "models/kernels/KernelBackend.h"

namespace dptrain {

LossKind Loss::parse(const std::string& name) {
  if (name == "mse" || name == "mean_squared_error") return LossKind::mean_squared_error;
  if (name == "bce" || name == "binary_cross_entropy") return LossKind::binary_cross_entropy;
  if (name == "cross_entropy" || name == "softmax_cross_entropy") return LossKind::softmax_cross_entropy;
  if (name == "hinge" || name == "multiclass_hinge") return LossKind::multiclass_hinge;
  if (name == "entropy" || name == "prediction_entropy") return LossKind::prediction_entropy;
  fail_input("unknown loss '" + name + "'; valid: mse, bce, cross_entropy, hinge, entropy");
}

std::string Loss::name(LossKind kind) {
  switch (kind) {
    case LossKind::mean_squared_error:
      return "mse";
    case LossKind::binary_cross_entropy:
      return "bce";
    case LossKind::softmax_cross_entropy:
      return "cross_entropy";
    case LossKind::multiclass_hinge:
      return "hinge";
    case LossKind::prediction_entropy:
      return "entropy";
  }
  return "?";
}

void Loss::evaluate(const Tensor& pred, const Targets& t, float scale, Tensor* dpred, float* stats) const {
  KernelBackend& k = kernels(pred.device());
  int64_t rows = pred.rows(), cols = pred.row_size();
  if (t.per_row > 1) {
    if (!t.labels || cols % t.per_row != 0)
      fail_input("loss " + name(kind_) + ": per-step targets (" + std::to_string(t.per_row) +
                 " class ids per sample) need a model output of [steps, classes] per sample, it has " +
                 pred.shape().drop_first().str());
    rows *= t.per_row;
    cols /= t.per_row;
  }
  float* d = nullptr;
  if (dpred) {
    dpred->resize(pred.shape(), pred.device());
    d = dpred->data();
  }
  auto need = [&](bool ok, const char* what) {
    if (!ok) fail_input("loss " + name(kind_) + " needs " + what + " targets");
  };
  switch (kind_) {
    case LossKind::mean_squared_error:
      need(t.values != nullptr, "float");
      k.mean_squared_error(rows, cols, pred.data(), t.values, scale, d, stats);
      break;
    case LossKind::binary_cross_entropy:
      need(t.labels || t.values, "0/1 label or float");
      k.sigmoid_cross_entropy(rows, cols, pred.data(), t.labels, t.values, scale, d, stats);
      break;
    case LossKind::softmax_cross_entropy:
      need(t.labels || t.values, "class id or distribution");
      k.softmax_cross_entropy(rows, cols, pred.data(), t.labels, t.values, scale, d, stats);
      break;
    case LossKind::multiclass_hinge:
      need(t.labels != nullptr, "class id");
      k.multiclass_hinge(rows, cols, pred.data(), t.labels, margin_, scale, d, stats);
      break;
    case LossKind::prediction_entropy:
      k.prediction_entropy(rows, cols, pred.data(), scale, d, stats);
      break;
  }
}

}  // namespace dptrain
