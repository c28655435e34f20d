// The hosts of an Open MPI hostfile, for `dptrain launch --hostfile F --min-ranks M`: which ranks
// mpirun places on each host (by slot, its default), and the hostfile of the hosts that remain
// when some are lost (docs/multi-host.md "Restarting on fewer hosts").
#pragma once

#include <string>
#include <vector>

namespace dptrain {

struct HostEntry {
  std::string name;  // the first word of the line: a host name or address
  int slots = 1;     // slots=N, else 1
  std::string line;  // the line as written (kept in a filtered hostfile)
};

class HostList {
 public:
  // Reads `path`; comments (#) and blank lines are skipped. A missing file, a file without hosts
  // or a bad slots= value is bad input naming the file and line.
  static HostList read(const std::string& path);

  const std::vector<HostEntry>& hosts() const { return hosts_; }
  // How many of `ranks` ranks mpirun's by-slot mapping puts on each host, in order: the slots
  // filled host by host, then round again (oversubscribed) while ranks are left.
  std::vector<int> placement(int ranks) const;
  // These hosts without the ones at `lost` (indices into hosts()).
  HostList without(const std::vector<size_t>& lost) const;
  // Writes the hostfile atomically.
  void write(const std::string& path) const;
  std::string names() const;  // "a, b, c"

 private:
  std::vector<HostEntry> hosts_;
};

}  // namespace dptrain
