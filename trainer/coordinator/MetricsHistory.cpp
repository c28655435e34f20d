#include "trainer/coordinator/MetricsHistory.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

namespace dptrain {

namespace {
using Json = nlohmann::ordered_json;  // a record keeps the key order it was logged in

std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

double unix_seconds() {
  const double s = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  return std::round(s * 1e3) / 1e3;
}
}  // namespace

bool MetricsHistory::add_record(const std::string& json) {
  Json j = Json::parse(json, nullptr, false);
  if (!j.is_object()) return false;
  const std::string event = j.contains("event") && j["event"].is_string() ? j["event"].get<std::string>() : "";
  const bool has_step = j.contains("step") && j["step"].is_number_integer();
  const int64_t step = has_step ? j["step"].get<int64_t>() : std::max<int64_t>(last_step_, 0);
  std::vector<Entry>& bucket = event == "step" ? steps_ : others_;
  if (has_step) {
    bool seen = false;  // the same event at this step or later: the run went back
    for (auto it = bucket.rbegin(); it != bucket.rend() && it->step >= step && !seen; ++it) seen = it->event == event;
    if (seen) rewind(step);
    last_step_ = step;
  }
  Entry e{step, event, dump(j)};
  auto at = std::upper_bound(bucket.begin(), bucket.end(), step, [](int64_t s, const Entry& x) { return s < x.step; });
  bucket.insert(at, std::move(e));
  thin(bucket, event == "step" ? limits_.step_records : limits_.other_records, thinned_);
  ++version_;
  return true;
}

void MetricsHistory::rewind(int64_t step) {
  for (std::vector<Entry>* b : {&steps_, &others_}) {
    auto from = std::lower_bound(b->begin(), b->end(), step, [](const Entry& x, int64_t s) { return x.step < s; });
    b->erase(from, b->end());
  }
}

void MetricsHistory::thin(std::vector<Entry>& entries, size_t limit, int64_t& thinned) {
  if (entries.size() <= std::max<size_t>(limit, 2)) return;
  // Every other record of the older half goes (the first one stays, so the curve keeps its start).
  const size_t half = entries.size() / 2;
  size_t kept = 0;
  for (size_t i = 0; i < half; i += 2, ++kept)
    if (i != kept) entries[kept] = std::move(entries[i]);
  const size_t removed = half - kept;
  entries.erase(entries.begin() + static_cast<std::ptrdiff_t>(kept),
                entries.begin() + static_cast<std::ptrdiff_t>(half));
  thinned += static_cast<int64_t>(removed);
}

int64_t MetricsHistory::seed_from_file(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return 0;
  const std::streamoff size = in.tellg();
  const std::streamoff from =
      size > static_cast<std::streamoff>(max_bytes) ? size - static_cast<std::streamoff>(max_bytes) : 0;
  in.seekg(from);
  std::string line;
  if (from > 0) std::getline(in, line);  // the first line read is a partial one
  int64_t taken = 0;
  while (std::getline(in, line))
    if (!line.empty() && add_record(line)) ++taken;
  return taken;
}

void MetricsHistory::add_event(JsonRecord event) {
  Json j = Json::parse(event.str(), nullptr, false);
  if (!j.is_object()) return;
  if (!j.contains("step")) j["step"] = last_step_;
  if (!j.contains("time")) j["time"] = unix_seconds();
  events_.push_back({j["step"].is_number_integer() ? j["step"].get<int64_t>() : last_step_,
                     j.value("event", std::string()), dump(j)});
  if (events_.size() > limits_.events) {
    const size_t drop = events_.size() - limits_.events * 3 / 4;  // amortized: not one erase per event
    events_.erase(events_.begin(), events_.begin() + static_cast<std::ptrdiff_t>(drop));
    thinned_ += static_cast<int64_t>(drop);
  }
  ++version_;
}

std::string MetricsHistory::json(const std::string& job, const std::string& instance) const {
  std::string out;
  size_t bytes = 256 + job.size() + instance.size();
  for (const auto* b : {&steps_, &others_, &events_})
    for (const Entry& e : *b) bytes += e.json.size() + 2;
  out.reserve(bytes);
  out += "{\"job\":" + dump(Json(job)) + ",\"instance\":" + dump(Json(instance)) +
         ",\"version\":" + std::to_string(version_) + ",\"thinned\":" + std::to_string(thinned_) + ",\"records\":[";
  // Both lists are sorted by step; at equal steps the step record comes first (then the epoch
  // that ended with it), the order the run logged them in.
  size_t i = 0, k = 0;
  bool first = true;
  while (i < steps_.size() || k < others_.size()) {
    const bool take_step = k == others_.size() || (i < steps_.size() && steps_[i].step <= others_[k].step);
    const Entry& e = take_step ? steps_[i++] : others_[k++];
    if (!first) out += ',';
    out += e.json;
    first = false;
  }
  out += "],\"events\":[";
  for (size_t n = 0; n < events_.size(); ++n) {
    if (n) out += ',';
    out += events_[n].json;
  }
  out += "]}\n";
  return out;
}

}  // namespace dptrain
