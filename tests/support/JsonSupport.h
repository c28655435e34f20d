// Reading what dptrain writes as JSON (metrics.jsonl, GET /status) in tests: parsed with
// nlohmann/json, never searched as text, so a test checks keys and values rather than spacing.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace dptrain::test {

// Every line of a JSON-lines file, parsed; throws (failing the test) on a line that is not JSON.
std::vector<nlohmann::json> read_json_lines(const std::string& path);
// The records of a metrics file whose "event" is `event`, in order.
std::vector<nlohmann::json> metrics_events(const std::string& path, const std::string& event);

}  // namespace dptrain::test
