// The hosts of an Open MPI hostfile, for `dptrain launch --hostfile F --min-ranks M`: which ranks
// mpirun places on each host (by slot, its default), and the hostfile of the hosts that remain
// when some are lost (docs/multi-host.md "Restarting on fewer hosts").
#pragma once

#include <string>
#include <vector>

namespace dptrain {

struct HostEntry {
  std::string name;  // the first word of the line: a host name or address
  int slots = 0;     // slots=N, else 0 (mpirun then counts the host's cores)
  int line_number = 0;
  std::string line;  // the line as written (kept in a filtered hostfile)
};

class HostList {
 public:
  // Reads `path`; comments (#) and blank lines are skipped. A missing file, a file without hosts
  // or a bad slots= value is bad input naming the file and line.
  static HostList read(const std::string& path);

  const std::vector<HostEntry>& hosts() const { return hosts_; }
  // How many of `ranks` ranks mpirun's by-slot mapping puts on each host, in order: the slots
  // filled host by host. Only for hostfiles whose every line gives slots= and with at most as
  // many ranks as slots (require_slots).
  std::vector<int> placement(int ranks) const;
  // Bad input naming `path` unless every line gives slots= and they add up to `ranks` or more:
  // what placement() needs to know where mpirun puts the ranks.
  void require_slots(const std::string& path, int ranks, const std::string& why) const;
  // Whether a host other than this machine is named (not localhost, 127.x or `this_host`).
  bool names_other_hosts(const std::string& this_host) const;
  // These hosts without the ones at `lost` (indices into hosts()).
  HostList without(const std::vector<size_t>& lost) const;
  // Writes the hostfile atomically.
  void write(const std::string& path) const;
  std::string names() const;  // "a, b, c"

 private:
  std::vector<HostEntry> hosts_;
};

}  // namespace dptrain
