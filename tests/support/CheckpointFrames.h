// A worker's side of a checkpoint over the control channel, for coordinator tests: the frames of a
// one-rank checkpoint of `step` holding one 16-float "params" flat.
#pragma once

#include <cstdint>

#include "comm/control/ControlClient.h"

namespace dptrain::test {

void send_small_checkpoint(ControlClient& worker, int64_t step);

}  // namespace dptrain::test
