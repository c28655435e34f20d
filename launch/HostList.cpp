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
    e.line_number = number;
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
  int left = ranks;
  for (size_t i = 0; i < hosts_.size() && left > 0; ++i) {
    on[i] = std::min(left, hosts_[i].slots);
    left -= on[i];
  }
  return on;
}

void HostList::require_slots(const std::string& path, int ranks, const std::string& why) const {
  int slots = 0;
  for (const auto& h : hosts_) {
    if (h.slots == 0)
      fail_input(path + ":" + std::to_string(h.line_number) + ": " + h.name + " has no slots=N; " + why +
                 " needs every host's slot count to know which ranks run where");
    slots += h.slots;
  }
  if (slots < ranks)
    fail_input(path + ": its hosts have " + std::to_string(slots) + " slots, fewer than the " + std::to_string(ranks) +
               " ranks asked for; " + why + " needs one slot per rank");
}

bool HostList::names_other_hosts(const std::string& this_host) const {
  for (const auto& h : hosts_)
    if (h.name != "localhost" && h.name.rfind("127.", 0) != 0 && h.name != this_host) return true;
  return false;
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
