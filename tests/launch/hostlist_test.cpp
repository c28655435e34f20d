// `dptrain launch --hostfile F --min-ranks M`: reading an Open MPI hostfile, where mpirun's
// by-slot mapping puts the ranks, the hostfile of the hosts that remain, and the refusals. The
// restart on fewer hosts itself runs in tests/launch/netns_e2e.sh (hosts in network namespaces).
#include <catch2/catch.hpp>

#include "launch/HostList.h"
#include "models/core/Error.h"
#include "support/TestSupport.h"

using namespace dptrain;
using namespace dptrain::test;
using Catch::Contains;

TEST_CASE("a hostfile's hosts, slots and the ranks mpirun places on each", "[launch][hostfile]") {
  TempDir dir;
  write_text(dir.file("hosts"),
             "# the cluster\nnode0 slots=2\n\nnode1   # no slots given\n10.0.0.3 slots=3 max_slots=4\n");
  HostList h = HostList::read(dir.file("hosts"));
  REQUIRE(h.hosts().size() == 3);
  CHECK(h.names() == "node0, node1, 10.0.0.3");
  CHECK_FALSE(HostList::read(dir.file("hosts")).without({1, 2}).names_other_hosts("node0"));
  CHECK(h.hosts()[0].slots == 2);
  CHECK(h.hosts()[1].slots == 0);  // none given: mpirun counts the host's cores
  CHECK(h.hosts()[2].slots == 3);
  CHECK(h.names_other_hosts("node0"));
  CHECK_THROWS_WITH(h.require_slots(dir.file("hosts"), 4, "--min-ranks"),
                    Contains(dir.file("hosts") + ":4: node1 has no slots=N; --min-ranks needs"));
  write_text(dir.file("slots"), "node0 slots=2\nnode1 slots=1\n10.0.0.3 slots=3 max_slots=4\n");
  h = HostList::read(dir.file("slots"));
  h.require_slots(dir.file("slots"), 6, "--min-ranks");
  CHECK_THROWS_WITH(h.require_slots(dir.file("slots"), 7, "--min-ranks"),
                    Contains("its hosts have 6 slots, fewer than the 7 ranks asked for"));
  CHECK(h.placement(6) == std::vector<int>{2, 1, 3});
  CHECK(h.placement(3) == std::vector<int>{2, 1, 0});
  CHECK(h.placement(1) == std::vector<int>{1, 0, 0});
  HostList rest = h.without({1});
  CHECK(rest.names() == "node0, 10.0.0.3");
  rest.write(dir.file("rest"));
  HostList again = HostList::read(dir.file("rest"));
  CHECK(again.names() == "node0, 10.0.0.3");
  CHECK(again.hosts()[1].slots == 3);
  CHECK_THAT(again.hosts()[1].line, Contains("max_slots=4"));
}

TEST_CASE("a bad hostfile names the file and line", "[launch][hostfile]") {
  TempDir dir;
  CHECK_THROWS_WITH(HostList::read(dir.file("none")), Contains(dir.file("none") + ": cannot read the hostfile"));
  write_text(dir.file("empty"), "# nothing\n\n");
  CHECK_THROWS_WITH(HostList::read(dir.file("empty")), Contains("names no host"));
  write_text(dir.file("bad"), "a slots=1\nb slots=two\n");
  CHECK_THROWS_WITH(HostList::read(dir.file("bad")), Contains(dir.file("bad") + ":2: slots must be"));
}

TEST_CASE("dptrain launch --min-ranks and --hostfile refuse what they cannot do, exit 2", "[launch][cli][hostfile]") {
  TempDir dir;
  write_text(dir.file("c.toml"), "[data]\ntrain = \"x.h5\"\n[model]\nkind = \"mlp\"\n");
  write_text(dir.file("hosts"), "a slots=1\nb slots=1\n");
  write_text(dir.file("local"), "localhost slots=2\n");
  CliResult r = run_cli({"launch", "-n", "2", "--min-ranks", "1", dir.file("c.toml")});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err,
             Contains("--min-ranks restarts on the hosts that remain: it needs --launcher mpirun and --hostfile"));
  r = run_cli({"launch", "-n", "2", "--min-ranks", "3", "--hostfile", dir.file("hosts"), dir.file("c.toml")});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Contains("--min-ranks must be between 1 and -n (2), got 3"));
  r = run_cli({"launch", "-n", "2", "--min-ranks", "1", "--hostfile", dir.file("nohosts"), dir.file("c.toml")});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Contains(dir.file("nohosts") + ": cannot read the hostfile"));
  r = run_cli({"launch", "-n", "1", "--launcher", "local", "--hostfile", dir.file("hosts"), dir.file("c.toml")});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Contains("--hostfile is mpirun's"));
  r = run_cli({"launch", "-n", "2", "--hostfile", dir.file("hosts"), dir.file("c.toml")});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Contains("names other hosts (a, b) but coordinator.bind is \"127.0.0.1\""));
  r = run_cli({"launch", "-n", "3", "--min-ranks", "1", "--hostfile", dir.file("local"), dir.file("c.toml")});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Contains("its hosts have 2 slots, fewer than the 3 ranks asked for"));
}
