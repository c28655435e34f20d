// World size 1: every collective is the identity. Lets the trainer run one code path everywhere.
#pragma once

#include <cstring>

#include "comm/Communicator.h"

namespace dptrain {

class LocalCommunicator final : public Communicator {
 public:
  std::string backend() const override { return "local"; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  void allreduce_sum(float*, int64_t) override {}
  void allreduce_sum(double*, int64_t) override {}
  void allreduce_max(double*, int64_t) override {}
  std::unique_ptr<CommRequest> make_request() override;
  void allreduce_sum_async(float*, int64_t, CommRequest&) override {}
  void broadcast(void*, size_t, int) override {}
  void allgather(const void* send, size_t bytes, void* recv) override {
    if (send != recv) std::memcpy(recv, send, bytes);
  }
  void barrier() override {}
};

}  // namespace dptrain
