#include "trainer/Metrics.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "models/core/Error.h"
#include "storage/AtomicFile.h"
#include "trainer/EventFile.h"

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

namespace {

// Cuts a text log at its first line whose step (found by `step_of`, -1 for none) exceeds `step`;
// with step 0 it empties the file. Rewritten atomically; a missing file stays missing.
void cut_text_log(const std::string& path, int64_t step, const std::function<int64_t(const std::string&)>& step_of) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    if (step == 0 || step_of(line) > step) break;
    kept += line + "\n";
  }
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp);
    out << kept;
    if (!out) fail_input(tmp + ": cannot rewrite the log");
  });
}

constexpr const char* csv_header = "event,step,name,value";

}  // namespace

MetricsLog::MetricsLog(const Paths& paths) : paths_(paths) {}

MetricsLog::~MetricsLog() {
  if (jsonl_) std::fclose(jsonl_);
  if (csv_) std::fclose(csv_);
}

void MetricsLog::start_at(int64_t step, const std::string& checkpoint) {
  step_ = step;
  // The files are rewritten (renamed over): nothing may stay open on the old ones.
  if (jsonl_) std::fclose(jsonl_);
  if (csv_) std::fclose(csv_);
  jsonl_ = csv_ = nullptr;
  events_.reset();
  if (!paths_.jsonl.empty())
    cut_text_log(paths_.jsonl, step, [](const std::string& line) -> int64_t {
      const auto j = nlohmann::json::parse(line, nullptr, false);
      return j.is_object() && j.contains("step") && j["step"].is_number_integer() ? j["step"].get<int64_t>() : -1;
    });
  if (!paths_.csv.empty())
    cut_text_log(paths_.csv, step, [](const std::string& line) -> int64_t {
      const size_t a = line.find(','), b = line.find(',', a + 1);
      if (a == std::string::npos || b == std::string::npos) return -1;
      return std::atoll(line.substr(a + 1, b - a - 1).c_str());
    });
  if (!paths_.tensorboard.empty()) drop_events_after(paths_.tensorboard, step);
  open();
  if (step > 0) write(JsonRecord().add("event", std::string("resume")).add("step", step).add("checkpoint", checkpoint));
}

void MetricsLog::open() {
  if (!paths_.jsonl.empty() && !jsonl_) {
    jsonl_ = std::fopen(paths_.jsonl.c_str(), "a");
    if (!jsonl_) fail_input(paths_.jsonl + ": cannot open the metrics file: " + std::strerror(errno));
  }
  if (!paths_.csv.empty() && !csv_) {
    csv_ = std::fopen(paths_.csv.c_str(), "a");
    if (!csv_) fail_input(paths_.csv + ": cannot open the CSV log: " + std::strerror(errno));
    if (std::ftell(csv_) == 0) std::fprintf(csv_, "%s\n", csv_header);
  }
  if (!paths_.tensorboard.empty() && !events_) events_ = std::make_unique<EventFileWriter>(paths_.tensorboard);
}

void MetricsLog::write(const JsonRecord& record) {
  open();  // a run that logs before start_at() (none does today) appends
  if (jsonl_) {
    std::fprintf(jsonl_, "%s\n", record.str().c_str());
    std::fflush(jsonl_);
  }
  if (!csv_ && !events_) return;
  std::string event = "record";
  int64_t step = step_;
  for (const auto& [key, value] : record.fields()) {
    if (key == "event" && std::holds_alternative<std::string>(value)) event = std::get<std::string>(value);
    if (key == "step" && std::holds_alternative<int64_t>(value)) step = std::get<int64_t>(value);
  }
  const std::string series = event == "step" ? "train" : event;
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  for (const auto& [key, value] : record.fields()) {
    if (std::holds_alternative<std::string>(value) || key == "step" || key == "epoch" || key == "time_s") continue;
    const double v =
        std::holds_alternative<double>(value) ? std::get<double>(value) : static_cast<double>(std::get<int64_t>(value));
    if (csv_) std::fprintf(csv_, "%s,%lld,%s,%.9g\n", event.c_str(), static_cast<long long>(step), key.c_str(), v);
    if (events_) events_->scalar(series + "/" + key, step, now, static_cast<float>(v));
  }
  if (csv_) std::fflush(csv_);
  if (events_) events_->flush();
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
