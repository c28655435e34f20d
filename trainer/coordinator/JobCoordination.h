// A rank's place in its job's coordination, shared by every training task (supervised,
// self-training, GAN): it connects to the coordinator that `dptrain launch` named in the
// environment or, by default, to one that rank 0 starts on a thread; and it writes checkpoints —
// streamed by every rank as 1/N shares through the coordinator, or, with coordination off,
// written by rank 0 alone (the replicas are identical).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "comm/Communicator.h"
#include "storage/checkpoint/CheckpointStore.h"
#include "trainer/TrainConfig.h"
#include "trainer/coordinator/Coordinator.h"
#include "trainer/coordinator/CoordinatorClient.h"

namespace dptrain {

class JobCoordination {
 public:
  using Printer = std::function<void(const std::string&)>;
  JobCoordination(const TrainConfig& config, Communicator& comm, Printer print);
  ~JobCoordination();

  CoordinatorClient* client() { return client_.get(); }
  // The coordinator this rank hosts (rank 0 without `dptrain launch`), else null.
  Coordinator* hosted() { return coordinator_.get(); }
  CheckpointStore& store() { return *store_; }

  // Saves the checkpoint of `state(false).step`: `state(with_data)` builds it (sizes only, or
  // with host copies of the flats); `flats` point at the flat buffers on `device`, in the order of
  // the state's flats. `wait`: return only once it is written. Returns the path when known.
  // `until_update[i]`: flat i stays unchanged until the caller's next before_update(), so the
  // streamed save may copy it while training goes on (CoordinatorClient::stage_checkpoint).
  std::string checkpoint(const std::function<CheckpointState(bool with_data)>& state,
                         const std::vector<const float*>& flats, Device device, bool wait,
                         const std::vector<bool>& until_update = {});
  // Waits until the checkpoint of `step`, already handed over, is written (a forced checkpoint at
  // the step of a periodic one); returns its path when known.
  std::string wait_checkpoint(int64_t step);
  // Call before changing a flat that was checkpointed `until_update`: waits for its copy.
  void before_update() {
    if (client_) client_->wait_staged();
  }

  // Picks a checkpoint on rank 0 ("latest", "", or a file) and tells every rank; "" if none.
  std::string choose_checkpoint(const std::string& spec);

 private:
  const TrainConfig& config_;
  Communicator& comm_;
  Printer print_;
  std::unique_ptr<CheckpointStore> store_;
  std::unique_ptr<ScheduleService> service_;  // outlives the coordinator that calls it
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<CoordinatorClient> client_;
};

}  // namespace dptrain
