// How a process learns its place in a job that no MPI launcher started: torchrun's variables
// (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) or those of an srun
// step without an MPI plug-in (SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID,
// SLURM_STEP_NODELIST). The Gloo backend reads it (docs/design.md "Communicators").
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace dptrain {

struct RankEnvironment {
  std::string source;  // "torchrun" or "slurm"
  int rank = 0, world = 1;
  int local_rank = -1, local_size = -1;  // -1: not given (the backend counts ranks per host)
  // Where rank 0 serves the rendezvous: MASTER_ADDR:MASTER_PORT, or for SLURM the step's first
  // node and a port derived from the job and step ids.
  std::string rendezvous_host;
  uint16_t rendezvous_port = 0;
  // DPTRAIN_JOB_TOKEN when set (authenticates the rendezvous); else a token derived from the
  // job's identity that only keeps two jobs on one address apart.
  std::string token;
};

using EnvLookup = std::function<const char*(const char*)>;

// Reads the variables (from the process environment, or `lookup` in tests). False when neither
// set describes more than one rank. Malformed values, one set only half present, and the two sets
// disagreeing (RANK=1 with SLURM_PROCID=0) are bad input naming the variables;
// DPTRAIN_RANKS_FROM=torchrun|slurm picks one set where both are present on purpose.
bool read_rank_environment(RankEnvironment& out, const EnvLookup& lookup = {});

// Whether an MPI launcher (mpirun, or srun with PMI/PMIx) started this process as one of several.
bool launched_by_mpi(const EnvLookup& lookup = {});

// The first host of a SLURM host list: "node[03-05],gpu1" gives "node03".
std::string first_slurm_host(const std::string& list);

}  // namespace dptrain
