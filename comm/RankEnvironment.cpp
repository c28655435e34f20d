#include "comm/RankEnvironment.h"

#include <cstdlib>

#include "comm/control/Crypto.h"
#include "models/core/Error.h"

namespace dptrain {

namespace {

struct Env {
  const EnvLookup& lookup;
  const char* raw(const char* name) const {
    const char* v = lookup ? lookup(name) : std::getenv(name);
    return v && *v ? v : nullptr;
  }
  bool has(const char* name) const { return raw(name) != nullptr; }
  // A whole non-negative integer, or bad input naming the variable.
  long long integer(const char* name, long long max) const {
    const char* v = raw(name);
    char* end = nullptr;
    long long x = std::strtoll(v, &end, 10);
    if (*end != '\0' || x < 0 || x > max)
      fail_input(std::string(name) + "='" + v + "' is not a whole number in [0, " + std::to_string(max) + "]");
    return x;
  }
};

// One launcher's description of the rank, before the two are compared.
struct Place {
  int rank = -1, world = -1, local_rank = -1, local_size = -1;
  const char *rank_var = "", *world_var = "", *local_var = "";
};

bool read_torchrun(const Env& env, Place& p) {
  if (!env.has("RANK") && !env.has("WORLD_SIZE")) return false;
  for (const char* need : {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"})
    if (!env.has(need))
      fail_input(std::string(env.has("RANK") ? "RANK" : "WORLD_SIZE") + " is set but " + need +
                 " is not: a torchrun-style launch sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT");
  p.world = static_cast<int>(env.integer("WORLD_SIZE", 1 << 20));
  p.rank = static_cast<int>(env.integer("RANK", 1 << 20));
  if (env.has("LOCAL_RANK")) p.local_rank = static_cast<int>(env.integer("LOCAL_RANK", 1 << 20));
  if (env.has("LOCAL_WORLD_SIZE")) p.local_size = static_cast<int>(env.integer("LOCAL_WORLD_SIZE", 1 << 20));
  p.rank_var = "RANK";
  p.world_var = "WORLD_SIZE";
  p.local_var = "LOCAL_RANK";
  return true;
}

// A task of an srun step: SLURM_STEP_NUM_TASKS is set there and not in the batch script's own
// shell (where SLURM_PROCID = 0 of SLURM_NTASKS would wait forever for ranks that never start).
bool read_slurm(const Env& env, Place& p) {
  if (!env.has("SLURM_PROCID") || !env.has("SLURM_STEP_NUM_TASKS")) return false;
  p.world = static_cast<int>(env.integer("SLURM_STEP_NUM_TASKS", 1 << 20));
  p.rank = static_cast<int>(env.integer("SLURM_PROCID", 1 << 20));
  if (env.has("SLURM_LOCALID")) p.local_rank = static_cast<int>(env.integer("SLURM_LOCALID", 1 << 20));
  p.rank_var = "SLURM_PROCID";
  p.world_var = "SLURM_STEP_NUM_TASKS";
  p.local_var = "SLURM_LOCALID";
  return true;
}

}  // namespace

bool launched_by_mpi(const EnvLookup& lookup) {
  Env env{lookup};
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"})
    if (env.has(var)) return std::atoi(env.raw(var)) > 1;
  // srun --mpi=pmix sets PMIX_RANK but no size; the step's task count says how many.
  if (!env.has("PMIX_RANK")) return false;
  const char* tasks = env.raw("SLURM_STEP_NUM_TASKS");
  return !tasks || std::atoi(tasks) > 1;
}

std::string first_slurm_host(const std::string& list) {
  size_t depth = 0, end = list.size();
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i] == '[') ++depth;
    if (list[i] == ']' && depth > 0) --depth;
    if (list[i] == ',' && depth == 0) {
      end = i;
      break;
    }
  }
  std::string first = list.substr(0, end);
  size_t open = first.find('[');
  if (open == std::string::npos) return first;
  // "node[03-05,9]": the prefix and the first number of the first range, zero padding kept.
  size_t stop = first.find_first_of("-,]", open + 1);
  return first.substr(0, open) +
         first.substr(open + 1, stop == std::string::npos ? std::string::npos : stop - open - 1);
}

bool read_rank_environment(RankEnvironment& out, const EnvLookup& lookup) {
  Env env{lookup};
  Place torch, slurm;
  const bool has_torch = read_torchrun(env, torch);
  const bool has_slurm = read_slurm(env, slurm);
  if (!has_torch && !has_slurm) return false;
  std::string from = env.has("DPTRAIN_RANKS_FROM") ? env.raw("DPTRAIN_RANKS_FROM") : "";
  if (!from.empty() && from != "torchrun" && from != "slurm")
    fail_input("DPTRAIN_RANKS_FROM='" + from + "' is not one of: torchrun, slurm");
  if (from == "torchrun" && !has_torch) fail_input("DPTRAIN_RANKS_FROM=torchrun but RANK and WORLD_SIZE are not set");
  if (from == "slurm" && !has_slurm)
    fail_input("DPTRAIN_RANKS_FROM=slurm but SLURM_PROCID and SLURM_STEP_NUM_TASKS are not set (not an srun task)");
  if (from.empty() && has_torch && has_slurm) {
    auto differ = [](int a, int b) { return a >= 0 && b >= 0 && a != b; };
    std::string conflict;
    if (differ(torch.rank, slurm.rank))
      conflict = "RANK=" + std::to_string(torch.rank) + " but SLURM_PROCID=" + std::to_string(slurm.rank);
    else if (differ(torch.world, slurm.world))
      conflict =
          "WORLD_SIZE=" + std::to_string(torch.world) + " but SLURM_STEP_NUM_TASKS=" + std::to_string(slurm.world);
    else if (differ(torch.local_rank, slurm.local_rank))
      conflict =
          "LOCAL_RANK=" + std::to_string(torch.local_rank) + " but SLURM_LOCALID=" + std::to_string(slurm.local_rank);
    if (!conflict.empty())
      fail_input("conflicting rank variables: " + conflict +
                 "; unset one set, or say which to follow with DPTRAIN_RANKS_FROM=torchrun or slurm");
  }
  const bool use_torch = from == "torchrun" || (from.empty() && has_torch);
  const Place& p = use_torch ? torch : slurm;
  if (p.world < 1) fail_input(std::string(p.world_var) + " must be at least 1");
  if (p.rank >= p.world)
    fail_input(std::string(p.rank_var) + "=" + std::to_string(p.rank) + " is not below " + p.world_var + "=" +
               std::to_string(p.world));
  out.source = use_torch ? "torchrun" : "slurm";
  out.rank = p.rank;
  out.world = p.world;
  out.local_rank = p.local_rank;
  out.local_size = p.local_size;

  std::string identity;
  if (env.has("MASTER_ADDR") && env.has("MASTER_PORT")) {
    out.rendezvous_host = env.raw("MASTER_ADDR");
    out.rendezvous_port = static_cast<uint16_t>(env.integer("MASTER_PORT", 65535));
    if (out.rendezvous_port == 0) fail_input("MASTER_PORT must name a port (1-65535), not 0");
  } else {
    const char* nodes = env.raw("SLURM_STEP_NODELIST") ? env.raw("SLURM_STEP_NODELIST") : env.raw("SLURM_JOB_NODELIST");
    if (!nodes) fail_input("an srun task without MASTER_ADDR needs SLURM_STEP_NODELIST to find rank 0's node");
    out.rendezvous_host = first_slurm_host(nodes);
    long long job = env.has("SLURM_JOB_ID") ? env.integer("SLURM_JOB_ID", (1LL << 62)) : 0;
    long long step = env.has("SLURM_STEP_ID") ? env.integer("SLURM_STEP_ID", (1LL << 62)) : 0;
    // Steps of one job, and jobs sharing a node, get different ports; MASTER_PORT overrides.
    out.rendezvous_port = static_cast<uint16_t>(20000 + (job * 31 + step) % 20000);
    identity = std::to_string(job) + "." + std::to_string(step);
  }
  if (env.has("DPTRAIN_JOB_TOKEN")) {
    out.token = env.raw("DPTRAIN_JOB_TOKEN");
  } else {
    identity += "|" + out.rendezvous_host + ":" + std::to_string(out.rendezvous_port) + "|" + std::to_string(out.world);
    Digest d = hmac_sha256("dptrain-rendezvous", identity.data(), identity.size());
    out.token = to_hex(d.data(), d.size());
  }
  return out.world > 1;
}

}  // namespace dptrain
