// The coordinator's side of self-training: it gathers every rank's predictions for the rows still
// unlabelled at a round's end, selects the pseudo-labels, and sends the selection to all workers.
// Workers persist it in their checkpoints, so a resumed round trains on exactly the same rows.
#pragma once

#include <map>
#include <memory>
#include <mutex>

#include "trainer/TrainConfig.h"
#include "trainer/coordinator/Coordinator.h"
#include "trainer/tasks/PseudoLabels.h"

namespace dptrain {

class PseudoLabelService final : public ScheduleService {
 public:
  PseudoLabelService(const SelfTrainingConfig& config, Coordinator& coordinator);
  void on_schedule(int rank, ByteReader& payload) override;

 private:
  SelfTrainingConfig config_;
  Coordinator& coordinator_;
  std::mutex mu_;
  int64_t round_ = -1;
  int world_ = 0;
  std::map<int, Predictions> received_;
};

// The schedule service a job's config asks for (null when its task needs none).
std::unique_ptr<ScheduleService> make_schedule_service(const TrainConfig& config, Coordinator& coordinator);

}  // namespace dptrain
