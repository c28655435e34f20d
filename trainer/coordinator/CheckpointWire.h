// How checkpoint state travels over the control channel: the metadata (everything but the flat
// buffers' contents — scalars, arrays, strings, layouts) in one checkpoint_begin frame from rank
// 0, and each rank's 1/N slice of every flat buffer in checkpoint_slice frames. Decoding checks
// every count against the payload and bounds, so a hostile frame cannot make us allocate wildly.
#pragma once

#include <cstdint>
#include <vector>

#include "comm/control/Frame.h"
#include "storage/checkpoint/CheckpointState.h"

namespace dptrain {

// The 1/N share of a flat buffer of `size` floats that rank r sends: [begin, end).
std::pair<int64_t, int64_t> checkpoint_slice(int64_t size, int rank, int world);

// Metadata of `state` (its flats' names, layouts and sizes, not their data).
void encode_checkpoint_meta(const CheckpointState& state, ByteWriter& w);
// Reads metadata; flats come back with zero-filled data of their full size.
CheckpointState decode_checkpoint_meta(ByteReader& r, int64_t max_floats);

}  // namespace dptrain
