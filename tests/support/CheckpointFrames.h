// A worker's side of a checkpoint over the control channel, for coordinator tests: the frames of a
// checkpoint of `step` holding one 16-float "params" flat, whole (one rank) or a rank's share in
// two parts (its begin, then its slice and end), so that a test can interleave the ranks.
#pragma once

#include <cstdint>

#include "comm/control/ControlClient.h"

namespace dptrain::test {

void send_small_checkpoint(ControlClient& worker, int64_t step);
void begin_checkpoint_share(ControlClient& worker, int64_t step, int world);
void end_checkpoint_share(ControlClient& worker, int64_t step, int rank, int world);

}  // namespace dptrain::test
