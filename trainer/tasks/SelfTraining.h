// A worker's side of self-training: which rows and labels the current round trains on (the
// labelled rows plus the pseudo-labels selected so far), the end-of-round step (predict this
// rank's share of the rows still unlabelled, hand the predictions to the coordinator, apply its
// selection), and the state that goes into checkpoints so a resumed round continues exactly.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "comm/Communicator.h"
#include "models/Model.h"
#include "storage/checkpoint/CheckpointState.h"
#include "storage/reader/ShardedReader.h"
#include "trainer/DataSplits.h"
#include "trainer/TrainConfig.h"
#include "trainer/coordinator/CoordinatorClient.h"
#include "trainer/tasks/PseudoLabels.h"

namespace dptrain {

struct RoundReport {
  int64_t round = 0;
  int64_t added = 0, total_pseudo = 0, remaining = 0;
  double pseudo_accuracy = -1.0;  // against the unlabelled rows' /y, when the file has true labels there
};

class SelfTraining {
 public:
  SelfTraining(const SelfTrainingConfig& config, const DataSplit& labelled, const DataSplit& unlabeled,
               int64_t num_classes);

  int64_t round() const { return round_; }
  const SelfTrainingConfig& config() const { return config_; }
  // Rows the training reader reads this round: labelled plus pseudo-labelled, ascending.
  std::vector<int64_t> training_rows() const;
  // Per file row: true labels for labelled rows, pseudo-labels for selected ones.
  std::shared_ptr<const std::vector<int32_t>> labels() const { return labels_; }
  // Per file row, k values: one-hot for labelled rows, predicted distributions for selected ones
  // (soft labels only; null otherwise).
  std::shared_ptr<const std::vector<float>> soft_targets() const { return soft_; }
  const std::vector<int64_t>& unlabeled_rows() const { return unlabeled_.rows; }

  // Ends the round: every rank predicts its share of the remaining unlabelled rows with `model`
  // (eval mode, batches read with `reader_options`), the coordinator selects, and the selection
  // is applied; then the round counter advances.
  RoundReport finish_round(Model& model, const ReaderOptions& reader_options, Communicator& comm,
                           CoordinatorClient& client, double timeout_s);

  // Ends a round without a selection (entropy minimization alone).
  void skip_round() { ++round_; }

  void save(CheckpointState& state) const;
  void restore(const CheckpointState& state);

 private:
  void apply(const Selection& s);

  SelfTrainingConfig config_;
  DataSplit labelled_, unlabeled_;
  int64_t k_;
  int64_t round_ = 0;
  std::vector<int64_t> pseudo_rows_;  // ascending
  std::vector<int32_t> pseudo_labels_;
  std::vector<float> pseudo_probs_;
  std::shared_ptr<std::vector<int32_t>> labels_;
  std::shared_ptr<std::vector<float>> soft_;
};

}  // namespace dptrain
