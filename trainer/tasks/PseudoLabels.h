// Pseudo-label selection for self-training, and how predictions and selections travel between
// workers and the coordinator. Selection is a pure function of the predictions (ties broken by
// row), so the coordinator's decision is reproducible and independent of which rank predicted
// which row.
#pragma once

#include <cstdint>
#include <vector>

#include "comm/control/Frame.h"
#include "trainer/TrainConfig.h"

namespace dptrain {

// Class probabilities of some rows: probs holds k values per row.
struct Predictions {
  int64_t k = 0;
  std::vector<int64_t> rows;
  std::vector<float> probs;
};

struct Selection {
  std::vector<int64_t> rows;    // ascending
  std::vector<int32_t> labels;  // argmax class per row
  std::vector<float> probs;     // k per row (kept for soft labels)
};

// Threshold (confidence >= tau) or top fraction of the remaining rows, optionally class-balanced:
// each class contributes as many rows as the class with the fewest candidates (classes with no
// candidate do not block the others); within a class the most confident go first.
// With relabel, round r's top fraction is (r + 1) * top_fraction of all unlabelled rows.
Selection select_pseudo_labels(const Predictions& p, const SelfTrainingConfig& config, int64_t round = 0);

// Wire messages in schedule frames.
enum class ScheduleMessage : uint8_t { predictions = 1, selection = 2 };
void encode_predictions(int64_t round, int world, const Predictions& p, ByteWriter& w);
void encode_selection(int64_t round, const Selection& s, int64_t k, ByteWriter& w);
// Reads a selection message (after its type byte); throws ProtocolError when malformed.
Selection decode_selection(ByteReader& r, int64_t& round, int64_t k);

}  // namespace dptrain
