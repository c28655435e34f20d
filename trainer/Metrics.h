// What a run reports: a progress line on the terminal (redrawn in place on a TTY, one line per
// log interval otherwise) and a JSON-lines file with one record per logged step and per epoch.
// Values are already all-reduced; only the ranks asked to log construct these.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
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

 private:
  std::vector<std::pair<std::string, std::variant<double, int64_t, std::string>>> fields_;
};

class MetricsLog {
 public:
  MetricsLog() = default;
  // Opens `path` for appending (resumed runs add to the same file); "" disables the log.
  explicit MetricsLog(const std::string& path);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  void write(const JsonRecord& record);

 private:
  std::FILE* file_ = nullptr;
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
