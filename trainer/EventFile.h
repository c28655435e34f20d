// TensorBoard event files (docs/observability.md): TFRecord framing — each record its length as
// a little-endian uint64, the masked CRC32C of those 8 bytes, the data, the masked CRC32C of the
// data — around tensorflow.Event protocol buffers: a first event with file_version
// "brain.Event:2", then one event per scalar with wall_time, step and a Summary of one
// Value { tag, simple_value }. Those three messages are all we write, so they are encoded here
// by hand (field numbers from tensorflow/core/util/event.proto and summary.proto); CRC32C is
// Boost.CRC's.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace dptrain {

// masked_crc32c(data) as TFRecord frames it.
uint32_t tfrecord_masked_crc(const void* data, size_t n);

class EventFileWriter {
 public:
  // Creates `dir` and a new events.out.tfevents.<seconds>.<host>.<pid> file in it.
  explicit EventFileWriter(const std::string& dir);
  ~EventFileWriter();
  EventFileWriter(const EventFileWriter&) = delete;
  EventFileWriter& operator=(const EventFileWriter&) = delete;

  void scalar(const std::string& tag, int64_t step, double wall_time, float value);
  void flush();
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& data);

  std::string path_;
  std::FILE* file_ = nullptr;
  std::string event_;  // reused encoding buffer
};

// After a resume at `step`: rewrites every event file in `dir` (atomically) without the events of
// later steps, which a killed run wrote after its last checkpoint. A damaged frame (bad length or
// CRC: the process died mid-write) ends the file there. Returns the number of events dropped.
int64_t drop_events_after(const std::string& dir, int64_t step);

// The events of one file: step and, for scalars, tag and value (file_version events have an empty
// tag). Throws naming the file and offset on a bad frame, unless `stop_at_damage`.
struct ScalarEvent {
  int64_t step = 0;
  double wall_time = 0.0;
  std::string tag;
  float value = 0.0f;
  std::string raw;  // the Event's bytes
};
std::vector<ScalarEvent> read_event_file(const std::string& path, bool stop_at_damage);

}  // namespace dptrain
