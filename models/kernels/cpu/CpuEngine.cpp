#include "models/kernels/cpu/CpuEngine.h"

#include <atomic>
#include <cstdlib>

#include "models/core/Error.h"
#include "models/kernels/cpu/CpuInternal.h"

namespace dptrain {

namespace {

struct EngineName {
  CpuEngine engine;
  const char* name;
};
constexpr EngineName engine_names[] = {
    {CpuEngine::automatic, "auto"}, {CpuEngine::openblas, "openblas"}, {CpuEngine::unpacked, "unpacked"}};

CpuEngine resolve(CpuEngine e) {
  if (e == CpuEngine::automatic) return cpu_unpacked_gemm_available() ? CpuEngine::unpacked : CpuEngine::openblas;
  if (!cpu_engine_available(e))
    fail_input("CPU engine 'unpacked' needs a build with AVX-512 (DPTRAIN_NATIVE=ON on an AVX-512 CPU)");
  return e;
}

// The environment's engine, read once; automatic when DPTRAIN_CPU_ENGINE is unset or empty.
CpuEngine environment_engine() {
  static const CpuEngine engine = [] {
    const char* v = std::getenv("DPTRAIN_CPU_ENGINE");
    if (!v || !*v) return CpuEngine::automatic;
    for (const EngineName& n : engine_names)
      if (std::string_view(v) == n.name) return n.engine;
    fail_input("environment variable DPTRAIN_CPU_ENGINE = '" + std::string(v) +
               "' names no CPU engine; valid: " + cpu_engine_names());
  }();
  return engine;
}

std::atomic<CpuEngine> requested_engine{CpuEngine::automatic};

}  // namespace

bool cpu_engine_available(CpuEngine e) { return e != CpuEngine::unpacked || cpu_unpacked_gemm_available(); }

CpuEngine parse_cpu_engine(std::string_view name) {
  for (const EngineName& e : engine_names)
    if (name == e.name) return e.engine;
  fail_input("unknown CPU engine '" + std::string(name) + "'; valid: " + cpu_engine_names());
}

const char* cpu_engine_name(CpuEngine e) {
  for (const EngineName& n : engine_names)
    if (n.engine == e) return n.name;
  return "?";
}

std::string cpu_engine_names() {
  std::string s;
  for (const EngineName& e : engine_names) s += (s.empty() ? "" : ", ") + std::string(e.name);
  return s;
}

void set_cpu_engine(CpuEngine requested) {
  resolve(requested);  // refuses `unpacked` where it is missing, even when the environment overrides it
  requested_engine.store(requested);
  cpu_engine();  // a bad DPTRAIN_CPU_ENGINE is reported here, at start-up, not at the first product
}

CpuEngine cpu_engine() {
  const CpuEngine env = environment_engine();
  return resolve(env != CpuEngine::automatic ? env : requested_engine.load());
}

bool cpu_use_unpacked() { return cpu_engine() == CpuEngine::unpacked; }

}  // namespace dptrain
