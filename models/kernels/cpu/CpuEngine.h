// Which engine computes the CPU backend's dense-layer products (docs/design.md rule 8). `auto`
// uses our unpacked AVX-512 product (CpuUnpackedGemm.cpp) where the build has it and OpenBLAS
// elsewhere; `openblas` forces OpenBLAS for every product, so a second CPU's rounding (that of a
// machine without AVX-512) can be tried on one machine. The environment variable
// DPTRAIN_CPU_ENGINE, when set, overrides whatever a config asked for, in every process that
// inherits it (tests, mpirun's local ranks): `DPTRAIN_CPU_ENGINE=openblas scripts/test`.
#pragma once

#include <string>
#include <string_view>

namespace dptrain {

enum class CpuEngine { automatic, unpacked, openblas };

// The engine named `name` ("auto", "unpacked", "openblas"); otherwise fails as bad input (exit
// code 2) naming the valid names.
CpuEngine parse_cpu_engine(std::string_view name);
const char* cpu_engine_name(CpuEngine e);
// The names parse_cpu_engine accepts, for error messages: "auto, openblas, unpacked".
std::string cpu_engine_names();

// False for `unpacked` on a build or CPU without AVX-512.
bool cpu_engine_available(CpuEngine e);

// Asks for an engine (a config's `cpu_engine`); DPTRAIN_CPU_ENGINE, when set, wins. `unpacked`
// on a build without AVX-512, or a DPTRAIN_CPU_ENGINE naming no engine, fails as bad input.
void set_cpu_engine(CpuEngine requested);
// The engine in effect: never `automatic`.
CpuEngine cpu_engine();
// True when the dense products go through our unpacked kernel.
bool cpu_use_unpacked();

}  // namespace dptrain
