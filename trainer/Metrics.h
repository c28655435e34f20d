// What a run reports: a progress line on the terminal (redrawn in place on a TTY, one line per
// log interval otherwise) and a JSON-lines file with one record per logged step and per epoch,
// optionally also as CSV and TensorBoard event files (docs/observability.md). Values are already
// all-reduced; only the ranks asked to log construct these.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace dptrain {

// A flat JSON object of numbers and strings, keys in insertion order, serialized by nlohmann/json
// (kept out of this header, which the trainers include). A NaN or infinite number is written as
// null; a string that is not valid UTF-8 has its bad bytes replaced by U+FFFD.
class JsonRecord {
 public:
  JsonRecord& add(const std::string& key, double value);
  JsonRecord& add(const std::string& key, int64_t value);
  JsonRecord& add(const std::string& key, const std::string& value);
  // One line of JSON, without a newline.
  std::string str() const;
  using Value = std::variant<double, int64_t, std::string>;
  const std::vector<std::pair<std::string, Value>>& fields() const { return fields_; }

 private:
  std::vector<std::pair<std::string, Value>> fields_;
};

class EventFileWriter;

// The run's logs: JSON lines, and optionally a CSV of every number (event,step,name,value) and
// TensorBoard event files with one scalar series per event and key ("train/loss",
// "epoch/val_accuracy", "test/accuracy"). Steps only increase within each series: start_at()
// cuts what a killed run logged past its checkpoint, or what an earlier run left in out_dir.
class MetricsLog {
 public:
  struct Paths {
    std::string jsonl, csv, tensorboard;  // "" = off; tensorboard is a directory
  };
  MetricsLog() = default;
  explicit MetricsLog(const Paths& paths);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // Before the first record: the run goes on from `step` (0: a fresh run, whose logs start empty;
  // else a resume from `checkpoint`, marked in the JSON lines by a "resume" record). Each log is
  // cut at its first record of a later step.
  void start_at(int64_t step, const std::string& checkpoint);
  // The step of records that carry none (a test result).
  void at_step(int64_t step) { step_ = step; }
  void write(const JsonRecord& record);

 private:
  void open();

  Paths paths_;
  std::FILE *jsonl_ = nullptr, *csv_ = nullptr;
  std::unique_ptr<EventFileWriter> events_;
  int64_t step_ = 0;
};

class ProgressLine {
 public:
  explicit ProgressLine(bool enabled);
  // Shows progress through a period (`label`: "epoch 3/10", "round 2/5"), step `step` of `steps`;
  // throttled to a few redraws per second on a terminal.
  void update(const std::string& label, int64_t step, int64_t steps, double loss, double accuracy, bool has_accuracy,
              double samples_per_s, double eta_s);
  // Ends the current line (before printing anything else).
  void finish();

 private:
  bool enabled_, tty_;
  bool open_ = false;
  std::chrono::steady_clock::time_point last_;
};

// "1:02:03" or "2:03".
std::string format_duration(double seconds);

}  // namespace dptrain
