// Which library computes the CPU backend's products (docs/design.md rule 8). `auto` (the default)
// lets the measured plan of CpuPlan.h choose per product: each distinct product of the model is
// timed on the machine where the job runs under every engine that can compute it, and the
// fastest is kept. Naming an engine forces it for every product it can compute: `openblas`,
// `onednn` (oneDNN's sgemm, where the build found libdnnl) or `unpacked` (our AVX-512 product,
// CpuUnpackedGemm.cpp, for the dense layers; OpenBLAS elsewhere). The environment variable
// DPTRAIN_CPU_ENGINE, when set, overrides whatever a config asked for, in every process that
// inherits it (tests, mpirun's local ranks): `DPTRAIN_CPU_ENGINE=openblas scripts/test`.
#pragma once

#include <string>
#include <string_view>

namespace dptrain {

enum class CpuEngine { automatic, openblas, onednn, unpacked };

// The engine named `name` ("auto", "openblas", "onednn", "unpacked"); otherwise fails as bad input
// (exit code 2) naming the valid names.
CpuEngine parse_cpu_engine(std::string_view name);
const char* cpu_engine_name(CpuEngine e);
// The names parse_cpu_engine accepts, for help and error messages: "auto, openblas, onednn, unpacked".
std::string cpu_engine_names();

// False for `unpacked` on a build or CPU without AVX-512 and for `onednn` on a build without it.
bool cpu_engine_available(CpuEngine e);
// Why `e` is missing, for messages ("" when it is available).
std::string cpu_engine_missing_why(CpuEngine e);

// Asks for an engine (a config's `cpu_engine`); DPTRAIN_CPU_ENGINE, when set, wins. An engine
// this build lacks, or a DPTRAIN_CPU_ENGINE naming no engine, fails as bad input.
void set_cpu_engine(CpuEngine requested);
// The engine in effect: `automatic` while products follow the measured plan.
CpuEngine cpu_engine();

}  // namespace dptrain
