#include "launch/HostList.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "models/core/Error.h"
#include "storage/AtomicFile.h"

namespace dptrain {

HostList HostList::read(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail_input(path + ": cannot read the hostfile");
  HostList list;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::string text = line.substr(0, line.find('#'));
    std::istringstream words(text);
    HostEntry e;
    if (!(words >> e.name)) continue;
    e.line = text;
    for (std::string w; words >> w;) {
      if (w.rfind("slots=", 0) != 0) continue;
      const std::string v = w.substr(6);
      char* end = nullptr;
      long n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n < 1 || n > 1 << 20)
        fail_input(path + ":" + std::to_string(number) + ": slots must be a whole number >= 1, got '" + v + "'");
      e.slots = static_cast<int>(n);
    }
    list.hosts_.push_back(std::move(e));
  }
  if (list.hosts_.empty()) fail_input(path + ": the hostfile names no host");
  return list;
}

std::vector<int> HostList::placement(int ranks) const {
  std::vector<int> on(hosts_.size(), 0);
  int slots = 0;
  for (const auto& h : hosts_) slots += h.slots;
  // Full rounds of every slot, then the rest host by host in order.
  for (size_t i = 0; i < hosts_.size(); ++i) on[i] = ranks / slots * hosts_[i].slots;
  int left = ranks % slots;
  for (size_t i = 0; i < hosts_.size() && left > 0; ++i) {
    const int here = std::min(left, hosts_[i].slots);
    on[i] += here;
    left -= here;
  }
  return on;
}

HostList HostList::without(const std::vector<size_t>& lost) const {
  HostList rest;
  for (size_t i = 0; i < hosts_.size(); ++i)
    if (std::find(lost.begin(), lost.end(), i) == lost.end()) rest.hosts_.push_back(hosts_[i]);
  return rest;
}

void HostList::write(const std::string& path) const {
  std::string text = "# the hosts that remain (dptrain launch --min-ranks)\n";
  for (const auto& h : hosts_) text += h.line + "\n";
  write_bytes_atomically(path, text);
}

std::string HostList::names() const {
  std::string s;
  for (const auto& h : hosts_) s += (s.empty() ? "" : ", ") + h.name;
  return s;
}

}  // namespace dptrain
