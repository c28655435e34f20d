#include "trainer/tasks/SelfTraining.h"

#include <algorithm>

#include "models/core/Error.h"
#include "models/kernels/KernelBackend.h"
#include "storage/checkpoint/StateFields.h"

namespace dptrain {

SelfTraining::SelfTraining(const SelfTrainingConfig& config, const DataSplit& labelled, const DataSplit& unlabeled,
                           int64_t num_classes)
    : config_(config), labelled_(labelled), unlabeled_(unlabeled), k_(num_classes) {
  if (labelled_.file->label_kind() != LabelKind::classes)
    fail_input(labelled_.file->path() + ": self-training needs class labels in /y");
  if (unlabeled_.rows.empty())
    fail_input(labelled_.file->path() +
               ": self-training found no unlabelled rows (give [self_training] unlabeled = FILE, or a /labeled mask "
               "with 0 for the unlabelled rows, e.g. dptrain data synth ... --labeled-per-class K)");
  apply({});
}

std::vector<int64_t> SelfTraining::training_rows() const {
  std::vector<int64_t> rows;
  std::merge(labelled_.rows.begin(), labelled_.rows.end(), pseudo_rows_.begin(), pseudo_rows_.end(),
             std::back_inserter(rows));
  return rows;
}

void SelfTraining::apply(const Selection& s) {
  for (size_t i = 0; i < s.rows.size(); ++i) {
    pseudo_rows_.push_back(s.rows[i]);
    pseudo_labels_.push_back(s.labels[i]);
    pseudo_probs_.insert(pseudo_probs_.end(), s.probs.begin() + static_cast<int64_t>(i) * k_,
                         s.probs.begin() + static_cast<int64_t>(i + 1) * k_);
  }
  // Keep the three arrays sorted by row together.
  std::vector<size_t> order(pseudo_rows_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return pseudo_rows_[a] < pseudo_rows_[b]; });
  std::vector<int64_t> rows;
  std::vector<int32_t> labels;
  std::vector<float> probs;
  for (size_t i : order) {
    rows.push_back(pseudo_rows_[i]);
    labels.push_back(pseudo_labels_[i]);
    probs.insert(probs.end(), pseudo_probs_.begin() + static_cast<int64_t>(i) * k_,
                 pseudo_probs_.begin() + static_cast<int64_t>(i + 1) * k_);
  }
  pseudo_rows_ = std::move(rows);
  pseudo_labels_ = std::move(labels);
  pseudo_probs_ = std::move(probs);

  // Label arrays by file row: the true labels of the labelled rows, pseudo-labels where selected.
  // Rows neither labelled nor selected are never read.
  const DatasetFile& f = *labelled_.file;
  auto labels_by_row = std::make_shared<std::vector<int32_t>>(static_cast<size_t>(f.rows()), 0);
  for (int64_t r : labelled_.rows) (*labels_by_row)[static_cast<size_t>(r)] = f.labels()[static_cast<size_t>(r)];
  for (size_t i = 0; i < pseudo_rows_.size(); ++i)
    (*labels_by_row)[static_cast<size_t>(pseudo_rows_[i])] = pseudo_labels_[i];
  labels_ = labels_by_row;
  if (config_.soft) {
    auto soft = std::make_shared<std::vector<float>>(static_cast<size_t>(f.rows() * k_), 0.0f);
    for (int64_t r : labelled_.rows) (*soft)[static_cast<size_t>(r * k_ + f.labels()[static_cast<size_t>(r)])] = 1.0f;
    for (size_t i = 0; i < pseudo_rows_.size(); ++i)
      std::copy_n(pseudo_probs_.begin() + static_cast<int64_t>(i) * k_, k_, soft->begin() + pseudo_rows_[i] * k_);
    soft_ = soft;
  }
}

RoundReport SelfTraining::finish_round(Model& model, const ReaderOptions& reader_options, Communicator& comm,
                                       CoordinatorClient& client, double timeout_s) {
  RoundReport report;
  report.round = round_;
  std::vector<int64_t> remaining;
  if (config_.relabel)
    remaining = unlabeled_.rows;  // every round re-scores them all
  else
    std::set_difference(unlabeled_.rows.begin(), unlabeled_.rows.end(), pseudo_rows_.begin(), pseudo_rows_.end(),
                        std::back_inserter(remaining));
  Predictions mine;
  mine.k = k_;
  if (!remaining.empty()) {
    ReaderOptions ro = reader_options;
    ro.accumulate = 1;  // scoring reads whole batches
    ro.shuffle = Shuffle::none;
    ro.transform = nullptr;
    ro.labels = nullptr;
    ro.soft_targets = nullptr;
    ShardedReader reader(unlabeled_.file, remaining, ro);
    std::vector<float> probs;
    for (int64_t s = 0; s < reader.steps_per_epoch(); ++s) {
      const Batch& b = reader.next();
      StepContext ctx{Mode::eval, 0, 0, b.row0, nullptr, false};
      Tensor x = b.x;
      Tensor xd;
      if (model.device() != Device::cpu) {
        xd.resize(b.x.shape(), model.device());
        xd.copy_from(b.x);
        x = xd;
      }
      const Tensor& out = model.forward(x, ctx);
      if (out.row_size() != k_) fail_input("self-training needs one output per class");
      probs.resize(static_cast<size_t>(out.numel()));
      Tensor host = out;
      std::vector<float> logits(static_cast<size_t>(out.numel()));
      copy_memory(logits.data(), Device::cpu, out.data(), out.device(), logits.size() * sizeof(float));
      kernels(Device::cpu).softmax(out.rows(), k_, logits.data(), probs.data());
      mine.rows.insert(mine.rows.end(), b.file_rows, b.file_rows + b.rows());
      mine.probs.insert(mine.probs.end(), probs.begin(), probs.end());
    }
  }
  ByteWriter w;
  encode_predictions(round_, comm.size(), mine, w);
  client.send_schedule(w.bytes());
  std::vector<uint8_t> reply = client.receive_schedule(timeout_s);
  ByteReader r(reply.data(), reply.size());
  if (r.u8() != static_cast<uint8_t>(ScheduleMessage::selection)) fail_internal("expected a pseudo-label selection");
  int64_t round = -1;
  Selection selection = decode_selection(r, round, k_);
  if (round != round_)
    throw Error(ErrorKind::peer, "the coordinator answered round " + std::to_string(round) + " while this rank ended " +
                                     std::to_string(round_));
  report.added = static_cast<int64_t>(selection.rows.size());
  report.remaining = static_cast<int64_t>(remaining.size()) - report.added;
  if (!selection.rows.empty()) {
    int64_t right = 0;
    for (size_t i = 0; i < selection.rows.size(); ++i)
      right += labelled_.file->labels()[static_cast<size_t>(selection.rows[i])] == selection.labels[i];
    report.pseudo_accuracy = static_cast<double>(right) / static_cast<double>(selection.rows.size());
  }
  if (config_.relabel) {
    pseudo_rows_.clear();
    pseudo_labels_.clear();
    pseudo_probs_.clear();
  }
  apply(selection);
  report.total_pseudo = static_cast<int64_t>(pseudo_rows_.size());
  ++round_;
  return report;
}

namespace {

// The schedule's position and the current pseudo-labels, declared once (StateFields.h).
struct SelfTrainingFields {
  int64_t round = 0;
  std::vector<int64_t> rows;
  std::vector<int32_t> labels;
  std::vector<float> probs;

  template <class Fields>
  void fields(Fields& f) {
    f("self_training_round", round);
    f("pseudo_rows", rows);
    f("pseudo_labels", labels);
    f("pseudo_probs", probs);
  }
};

}  // namespace

void SelfTraining::save(CheckpointState& s) const {
  SelfTrainingFields v{round_, pseudo_rows_, pseudo_labels_, pseudo_probs_};
  save_fields(s, v);
}

void SelfTraining::restore(const CheckpointState& s) {
  if (!s.has_integer("self_training_round"))
    fail_input(s.source + ": has no self-training state (saved by another task)");
  SelfTrainingFields v;
  restore_fields(s, v);
  round_ = v.round;
  const auto& rows = v.rows;
  const auto& labels = v.labels;
  const auto& probs = v.probs;
  if (labels.size() != rows.size() || probs.size() != rows.size() * static_cast<size_t>(k_))
    fail_input(s.source + ": its pseudo-labels are inconsistent");
  Selection sel;
  for (size_t i = 0; i < rows.size(); ++i) {
    int64_t r = rows[i];
    if (r < 0 || r >= labelled_.file->rows() || labels[i] < 0 || labels[i] >= k_)
      fail_input(s.source + ": a pseudo-label refers to row " + std::to_string(r) + " or class " +
                 std::to_string(labels[i]) + ", outside the data");
    sel.rows.push_back(r);
    sel.labels.push_back(static_cast<int32_t>(labels[i]));
  }
  sel.probs = probs;
  pseudo_rows_.clear();
  pseudo_labels_.clear();
  pseudo_probs_.clear();
  apply(sel);
}

}  // namespace dptrain
