// Lets layers with global-batch statistics (synchronized batch norm) sum over the job's ranks
// through a communicator: models/ knows nothing of MPI, so the trainers hand this in.
#pragma once

#include "comm/Communicator.h"
#include "models/layers/Layer.h"

namespace dptrain {

class CommCrossRankSum final : public CrossRankSum {
 public:
  explicit CommCrossRankSum(Communicator& comm) : comm_(comm) {}
  void sum(float* data, int64_t count) override {
    comm_.set_operation("batch statistics all-reduce", comm_.step());
    comm_.allreduce_sum(data, count);
  }
  void sum(double* data, int64_t count) override {
    comm_.set_operation("batch statistics all-reduce", comm_.step());
    comm_.allreduce_sum(data, count);
  }

 private:
  Communicator& comm_;
};

}  // namespace dptrain
