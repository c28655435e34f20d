#include "support/CheckpointFrames.h"

#include "models/core/Hash.h"
#include "trainer/coordinator/CheckpointWire.h"

namespace dptrain::test {

void send_small_checkpoint(ControlClient& worker, int64_t step) {
  begin_checkpoint_share(worker, step, 1);
  end_checkpoint_share(worker, step, 0, 1);
}

void begin_checkpoint_share(ControlClient& worker, int64_t step, int world) {
  CheckpointState s;
  s.config_text = "x = 1\n";
  s.config_hash = stable_hash(s.config_text);
  s.step = step;
  s.world_size = world;
  s.flats.push_back({"params", {{"w", Shape{4}, 0}}, {}, 16});
  ByteWriter begin;
  begin.i64(step).i32(world);
  encode_checkpoint_meta(s, begin);
  worker.send(FrameType::checkpoint_begin, begin.bytes());
}

void end_checkpoint_share(ControlClient& worker, int64_t step, int rank, int world) {
  const auto [b, e] = checkpoint_slice(16, rank, world);
  std::vector<float> values(static_cast<size_t>(e - b), static_cast<float>(step));
  ByteWriter slice;
  slice.i64(step).u32(0).i64(b).u64(static_cast<uint64_t>(e - b)).raw(values.data(), values.size() * sizeof(float));
  worker.send(FrameType::checkpoint_slice, slice.bytes());
  ByteWriter end;
  end.i64(step);
  worker.send(FrameType::checkpoint_end, end.bytes());
}

}  // namespace dptrain::test
