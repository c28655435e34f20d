#include "comm/backend/local/LocalCommunicator.h"

namespace dptrain {

namespace {
class DoneRequest final : public CommRequest {
 public:
  void wait() override {}
  bool test() override { return true; }
};
}  // namespace

std::unique_ptr<CommRequest> LocalCommunicator::make_request() { return std::make_unique<DoneRequest>(); }

}  // namespace dptrain
