// Ranks without MPI: the launchers' variables (comm/RankEnvironment), the rendezvous on the control
// channel (comm/control/Rendezvous) and the Gloo communicator's collectives, with three ranks as
// threads of this process. Whole jobs started by torchrun's variables and srun --mpi=none are
// tests/comm/gloo_launch.sh and tests/launch/slurm_e2e.sh.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "comm/RankEnvironment.h"
#include "comm/backend/BackendRegistry.h"
#include "comm/control/Rendezvous.h"
#include "models/core/Error.h"
#include "tests/support/TestSupport.h"

using namespace dptrain;
using Catch::Contains;

namespace {

EnvLookup env_of(const std::map<std::string, std::string>& vars) {
  return [vars](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

std::string env_error(const std::map<std::string, std::string>& vars) {
  RankEnvironment e;
  try {
    read_rank_environment(e, env_of(vars));
  } catch (const Error& err) {
    CHECK(err.exit_code() == 2);
    return err.what();
  }
  return "";
}

uint16_t free_port() {
  // The OS's pick for a server that then goes away; racing another process for it is unlikely.
  RendezvousServer probe("127.0.0.1", 0, "t", 1);
  return probe.port();
}

}  // namespace

TEST_CASE("torchrun and srun variables give the rank, world and rendezvous", "[gloo]") {
  RankEnvironment e;
  REQUIRE(read_rank_environment(e, env_of({{"RANK", "2"},
                                           {"WORLD_SIZE", "4"},
                                           {"LOCAL_RANK", "0"},
                                           {"LOCAL_WORLD_SIZE", "2"},
                                           {"MASTER_ADDR", "10.0.0.7"},
                                           {"MASTER_PORT", "29500"}})));
  CHECK(e.source == "torchrun");
  CHECK(e.rank == 2);
  CHECK(e.world == 4);
  CHECK(e.local_rank == 0);
  CHECK(e.local_size == 2);
  CHECK(e.rendezvous_host == "10.0.0.7");
  CHECK(e.rendezvous_port == 29500);

  // Every rank of a job derives the same token; another job on the same address another one.
  RankEnvironment other;
  read_rank_environment(
      other, env_of({{"RANK", "0"}, {"WORLD_SIZE", "4"}, {"MASTER_ADDR", "10.0.0.7"}, {"MASTER_PORT", "29500"}}));
  CHECK(other.token == e.token);
  read_rank_environment(
      other, env_of({{"RANK", "0"}, {"WORLD_SIZE", "3"}, {"MASTER_ADDR", "10.0.0.7"}, {"MASTER_PORT", "29500"}}));
  CHECK(other.token != e.token);
  read_rank_environment(other, env_of({{"RANK", "0"},
                                       {"WORLD_SIZE", "4"},
                                       {"MASTER_ADDR", "10.0.0.7"},
                                       {"MASTER_PORT", "29500"},
                                       {"DPTRAIN_JOB_TOKEN", "secret"}}));
  CHECK(other.token == "secret");

  RankEnvironment s;
  REQUIRE(read_rank_environment(s, env_of({{"SLURM_PROCID", "1"},
                                           {"SLURM_STEP_NUM_TASKS", "2"},
                                           {"SLURM_NTASKS", "2"},
                                           {"SLURM_LOCALID", "1"},
                                           {"SLURM_STEP_NODELIST", "node[07-09],gpu1"},
                                           {"SLURM_JOB_ID", "4242"},
                                           {"SLURM_STEP_ID", "0"}})));
  CHECK(s.source == "slurm");
  CHECK(s.rank == 1);
  CHECK(s.world == 2);
  CHECK(s.local_rank == 1);
  CHECK(s.rendezvous_host == "node07");
  CHECK(s.rendezvous_port >= 20000);
  CHECK(s.rendezvous_port < 40000);

  // One process, and a batch script's own shell (no srun step), are not several ranks.
  CHECK_FALSE(read_rank_environment(e, env_of({})));
  CHECK_FALSE(read_rank_environment(
      e, env_of({{"RANK", "0"}, {"WORLD_SIZE", "1"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29500"}})));
  CHECK_FALSE(read_rank_environment(e, env_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}})));
}

TEST_CASE("a slurm host list's first host", "[gloo]") {
  CHECK(first_slurm_host("localhost") == "localhost");
  CHECK(first_slurm_host("a,b") == "a");
  CHECK(first_slurm_host("node[03-05,9],x[1-2]") == "node03");
  CHECK(first_slurm_host("node[12]") == "node12");
  CHECK(first_slurm_host("rack1-n[5,7]") == "rack1-n5");
}

TEST_CASE("conflicting or half-given rank variables are refused naming them", "[gloo]") {
  const std::map<std::string, std::string> both = {{"RANK", "1"},
                                                   {"WORLD_SIZE", "2"},
                                                   {"MASTER_ADDR", "127.0.0.1"},
                                                   {"MASTER_PORT", "29500"},
                                                   {"SLURM_PROCID", "0"},
                                                   {"SLURM_STEP_NUM_TASKS", "2"},
                                                   {"SLURM_STEP_NODELIST", "localhost"}};
  CHECK_THAT(env_error(both), Contains("RANK=1 but SLURM_PROCID=0") && Contains("DPTRAIN_RANKS_FROM"));
  auto chosen = both;
  chosen["DPTRAIN_RANKS_FROM"] = "slurm";
  RankEnvironment e;
  REQUIRE(read_rank_environment(e, env_of(chosen)));
  CHECK(e.rank == 0);
  CHECK(e.source == "slurm");
  chosen["DPTRAIN_RANKS_FROM"] = "mpi";
  CHECK_THAT(env_error(chosen), Contains("DPTRAIN_RANKS_FROM='mpi'"));

  auto sizes = both;
  sizes["SLURM_PROCID"] = "1";
  sizes["SLURM_STEP_NUM_TASKS"] = "3";
  CHECK_THAT(env_error(sizes), Contains("WORLD_SIZE=2 but SLURM_STEP_NUM_TASKS=3"));

  CHECK_THAT(env_error({{"RANK", "0"}, {"WORLD_SIZE", "2"}}), Contains("MASTER_ADDR is not"));
  CHECK_THAT(env_error({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}}),
             Contains("RANK=2 is not below WORLD_SIZE=2"));
  CHECK_THAT(env_error({{"RANK", "x"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}}),
             Contains("RANK='x'"));
  CHECK_THAT(env_error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}}),
             Contains("MASTER_PORT='70000'"));
}

TEST_CASE("an MPI launcher is told apart from srun without an MPI plug-in", "[gloo]") {
  CHECK(launched_by_mpi(env_of({{"OMPI_COMM_WORLD_SIZE", "2"}})));
  CHECK_FALSE(launched_by_mpi(env_of({{"OMPI_COMM_WORLD_SIZE", "1"}, {"PMIX_RANK", "0"}})));
  CHECK(launched_by_mpi(env_of({{"PMIX_RANK", "1"}, {"SLURM_STEP_NUM_TASKS", "2"}})));           // srun --mpi=pmix
  CHECK(launched_by_mpi(env_of({{"PMI_SIZE", "2"}})));                                           // srun --mpi=pmi2
  CHECK_FALSE(launched_by_mpi(env_of({{"SLURM_PROCID", "1"}, {"SLURM_STEP_NUM_TASKS", "2"}})));  // --mpi=none
}

TEST_CASE("the rendezvous hands values to ranks that wait for them and tracks who is there", "[gloo]") {
  RendezvousServer server("127.0.0.1", 0, "job-token", 2);
  RendezvousClient a("127.0.0.1", server.port(), "job-token", 0, 2, 10.0);
  std::vector<char> got;
  std::thread waiter([&] {
    RendezvousClient b("127.0.0.1", server.port(), "job-token", 1, 2, 10.0);
    got = b.get("address-of-0", 10.0);  // asked before it is set
    b.report(7, 3);
    b.set("done", {'1'});
    a.get("done", 10.0);
  });
  a.set("address-of-0", {'x', 'y', '\0', 'z'});
  waiter.join();
  CHECK(got == std::vector<char>{'x', 'y', '\0', 'z'});

  // b has left: the rendezvous says so, with what it last reported.
  std::vector<PeerState> peers;
  for (int i = 0; i < 50; ++i) {
    peers = a.peers(5.0);
    if (!peers[1].connected) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(peers.size() == 2);
  CHECK(peers[0].connected);
  CHECK_FALSE(peers[1].connected);
  CHECK(peers[1].seen);
  CHECK(peers[1].sequence == 7);
  CHECK(peers[1].step == 3);

  CHECK_THROWS_WITH(RendezvousClient("127.0.0.1", server.port(), "wrong-token", 1, 2, 5.0),
                    Contains("rendezvous with rank 0 at 127.0.0.1:"));
  CHECK_THROWS_WITH(a.get("never-set", 0.3), Contains("'never-set' was not set"));
  // A rank that disagrees on the world size hears why (bad input), not that rank 0 was lost.
  RendezvousClient odd("127.0.0.1", server.port(), "job-token", 1, 3, 5.0);
  CHECK_THROWS_WITH(odd.get("address-of-0", 5.0),
                    Contains("refused us: this rank says the world is 3 ranks, rank 0 says 2"));
}

TEST_CASE("gloo collectives over three ranks agree with their sums", "[gloo]") {
  if (!gloo_backend_compiled()) {
    WARN("built without Gloo: skipped");
    return;
  }
  const int world = 3;
  const uint16_t port = free_port();
  std::vector<std::string> errors(world);
  std::vector<std::vector<float>> sums(world);
  std::vector<std::thread> ranks;
  for (int r = 0; r < world; ++r)
    ranks.emplace_back([&, r] {
      // Catch2 assertions are not thread-safe: each rank notes what went wrong.
      auto expect = [&](bool ok, const char* what) {
        if (!ok) errors[r] += std::string(errors[r].empty() ? "" : "; ") + what;
      };
      try {
        RankEnvironment env;
        env.source = "test";
        env.rank = r;
        env.world = world;
        env.rendezvous_host = "127.0.0.1";
        env.rendezvous_port = port;
        env.token = "t";
        auto comm = make_gloo_communicator(env, 30.0);
        expect(comm->backend() == "gloo", "comm->backend() == \"gloo\"");
        expect(comm->size() == world, "comm->size() == world");
        expect(comm->local_size() == world, "local_size == world (one host)");
        // A large async sum (split into Gloo segments) beside small blocking ones.
        std::vector<float> big(3'000'001), small(5);
        for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<float>((i % 7) + r);
        for (size_t i = 0; i < small.size(); ++i) small[i] = static_cast<float>(r * 10 + i);
        auto request = comm->make_request();
        comm->allreduce_sum_async(big.data(), static_cast<int64_t>(big.size()), *request);
        comm->allreduce_sum(small.data(), 5);
        request->wait();
        expect(request->test(), "request->test()");
        bool big_ok = true;
        for (size_t i = 0; i < big.size(); ++i) big_ok &= big[i] == static_cast<float>(3 * (i % 7) + 3);
        expect(big_ok, "big_ok");
        // A blocking sum over the ring, segments of another length.
        std::vector<float> mid(700'003);
        for (size_t i = 0; i < mid.size(); ++i) mid[i] = static_cast<float>((i % 5) * (r + 1));
        comm->allreduce_sum(mid.data(), static_cast<int64_t>(mid.size()));
        bool mid_ok = true;
        for (size_t i = 0; i < mid.size(); ++i) mid_ok &= mid[i] == static_cast<float>(6 * (i % 5));
        expect(mid_ok, "mid_ok");
        sums[r] = small;
        double d[2] = {0.5 * r, -1.0 * r};
        comm->allreduce_max(d, 2);
        expect(d[0] == 1.0, "d[0] == 1.0");
        expect(d[1] == 0.0, "d[1] == 0.0");
        double t = r + 0.25;
        comm->allreduce_sum(&t, 1);
        expect(t == 3.75, "t == 3.75");
        char text[8] = {};
        if (r == 1) std::snprintf(text, sizeof text, "from-1");
        comm->broadcast(text, sizeof text, 1);
        expect(std::string(text) == "from-1", "std::string(text) == \"from-1\"");
        int mine = 100 + r;
        std::vector<int> all(world);
        comm->allgather(&mine, sizeof mine, all.data());
        expect(all == std::vector<int>{100, 101, 102}, "all == std::vector<int>{100, 101, 102}");
        comm->barrier();
      } catch (const std::exception& e) {
        errors[r] += e.what();
      }
    });
  for (auto& t : ranks) t.join();
  for (int r = 0; r < world; ++r) {
    INFO("rank " << r << ": " << errors[r]);
    CHECK(errors[r].empty());
    CHECK(sums[r] == std::vector<float>{30, 33, 36, 39, 42});
  }
}
