#include "trainer/Metrics.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "models/core/Error.h"

namespace dptrain {

JsonRecord& JsonRecord::add(const std::string& key, double value) {
  fields_.emplace_back(key, value);
  return *this;
}

JsonRecord& JsonRecord::add(const std::string& key, int64_t value) {
  fields_.emplace_back(key, value);
  return *this;
}

JsonRecord& JsonRecord::add(const std::string& key, const std::string& value) {
  fields_.emplace_back(key, value);
  return *this;
}

std::string JsonRecord::str() const {
  nlohmann::ordered_json record = nlohmann::ordered_json::object();
  for (const auto& [key, value] : fields_) std::visit([&](const auto& v) { record[key] = v; }, value);
  return record.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

MetricsLog::MetricsLog(const std::string& path) {
  if (path.empty()) return;
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) fail_input(path + ": cannot open the metrics file: " + std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::write(const JsonRecord& record) {
  if (!file_) return;
  std::fprintf(file_, "%s\n", record.str().c_str());
  std::fflush(file_);
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  return buf;
}

ProgressLine::ProgressLine(bool enabled) : enabled_(enabled), tty_(::isatty(STDOUT_FILENO) != 0) {}

void ProgressLine::update(const std::string& label, int64_t step, int64_t steps, double loss, double accuracy,
                          bool has_accuracy, double samples_per_s, double eta_s) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (tty_ && open_ && now - last_ < std::chrono::milliseconds(200) && step < steps) return;
  last_ = now;
  char acc[32] = "";
  if (has_accuracy) std::snprintf(acc, sizeof acc, "  acc %.2f%%", accuracy * 100.0);
  std::printf("%s%s  step %lld/%lld  loss %.4f%s  %.0f samples/s  ETA %s%s", tty_ ? "\r\033[K" : "", label.c_str(),
              static_cast<long long>(step), static_cast<long long>(steps), loss, acc, samples_per_s,
              format_duration(eta_s).c_str(), tty_ ? "" : "\n");
  std::fflush(stdout);
  open_ = tty_;
}

void ProgressLine::finish() {
  if (open_) {
    std::printf("\n");
    std::fflush(stdout);
    open_ = false;
  }
}

}  // namespace dptrain
