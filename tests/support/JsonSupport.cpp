#include "support/JsonSupport.h"

#include <fstream>
#include <stdexcept>

namespace dptrain::test {

std::vector<nlohmann::json> read_json_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::vector<nlohmann::json> metrics_events(const std::string& path, const std::string& event) {
  std::vector<nlohmann::json> out;
  for (auto& record : read_json_lines(path))
    if (record.value("event", "") == event) out.push_back(std::move(record));
  return out;
}

}  // namespace dptrain::test
