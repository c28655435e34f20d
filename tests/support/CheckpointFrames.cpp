#include "support/CheckpointFrames.h"

#include "models/core/Hash.h"
#include "trainer/coordinator/CheckpointWire.h"

namespace dptrain::test {

void send_small_checkpoint(ControlClient& worker, int64_t step) {
  CheckpointState s;
  s.config_text = "x = 1\n";
  s.config_hash = stable_hash(s.config_text);
  s.step = step;
  s.flats.push_back({"params", {{"w", Shape{4}, 0}}, {}, 16});
  ByteWriter begin;
  begin.i64(step).i32(1);
  encode_checkpoint_meta(s, begin);
  worker.send(FrameType::checkpoint_begin, begin.bytes());
  ByteWriter slice;
  float values[16] = {1, 2, 3, 4};
  slice.i64(step).u32(0).i64(0).u64(16).raw(values, sizeof values);
  worker.send(FrameType::checkpoint_slice, slice.bytes());
  ByteWriter end;
  end.i64(step);
  worker.send(FrameType::checkpoint_end, end.bytes());
}

}  // namespace dptrain::test
