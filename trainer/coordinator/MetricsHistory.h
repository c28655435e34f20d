// What the coordinator remembers of a run for the dashboard (GET /history, docs/observability.md):
// the records rank 0 logs (every Session::log record: steps, epochs, test, GAN and self-training
// events) and the coordinator's own events (checkpoints written, restarts, starts, stop requests).
// Its size is bounded however long the run: past a limit the older half of the step records is
// thinned by dropping every other one, so recent steps stay at full resolution and older ones at a
// density that halves with age (a million steps keep about 2,000 records). Not thread-safe: the
// coordinator holds its lock around every call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "trainer/Metrics.h"

namespace dptrain {

// A logged record's bound on the control channel (a record is a flat object of a few numbers).
inline constexpr size_t max_record_bytes = size_t{16} << 10;

class MetricsHistory {
 public:
  struct Limits {
    size_t step_records = 2048;   // `"event": "step"` records
    size_t other_records = 2048;  // epochs, rounds, test, coverage, ...
    size_t events = 512;          // the coordinator's events: the newest are kept
  };
  MetricsHistory() = default;
  explicit MetricsHistory(Limits limits) : limits_(limits) {}

  // One record as the run logged it (a JSON object on one line). A record of an event already
  // recorded at this step or later means the run went back (a restart from a checkpoint, or a new
  // run in the same out_dir): everything from that step on is forgotten first, so the curves
  // show each step once. False (nothing kept) when `json` is not a JSON object.
  bool add_record(const std::string& json);
  // The records of a metrics file written before this coordinator started, from at most its last
  // `max_bytes`; unreadable lines are skipped. Returns how many were taken.
  int64_t seed_from_file(const std::string& path, size_t max_bytes);
  // A coordinator event; `time` (now, in seconds since the epoch) is added when it has none, and
  // `step` (the last step recorded).
  void add_event(JsonRecord event);

  bool has_records() const { return !steps_.empty() || !others_.empty(); }
  int64_t last_step() const { return last_step_; }
  // The GET /history body: {"job", "instance", "version", "thinned", "records": [...],
  // "events": [...]}, records in step order, one JSON object ending in a newline.
  std::string json(const std::string& job, const std::string& instance) const;

 private:
  struct Entry {
    int64_t step;
    std::string event;
    std::string json;  // compact, valid JSON
  };
  static void thin(std::vector<Entry>& entries, size_t limit, int64_t& thinned);
  void rewind(int64_t step);

  Limits limits_;
  std::vector<Entry> steps_, others_;  // each sorted by step
  std::vector<Entry> events_;          // in arrival order
  int64_t last_step_ = -1;
  int64_t thinned_ = 0;  // records dropped to stay within the limits
  uint64_t version_ = 0;
};

}  // namespace dptrain
