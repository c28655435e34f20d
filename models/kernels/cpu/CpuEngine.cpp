#include "models/kernels/cpu/CpuEngine.h"

#include <atomic>
#include <cstdlib>

#include "models/core/Error.h"
#include "models/kernels/cpu/CpuInternal.h"

namespace dptrain {

namespace {

// One row per engine: its name and why a build may lack it.
struct EngineRow {
  CpuEngine engine;
  const char* name;
  const char* missing;  // why it may be missing; nullptr when every build has it
};
constexpr EngineRow engine_rows[] = {
    {CpuEngine::automatic, "auto", nullptr},
    {CpuEngine::openblas, "openblas", nullptr},
    {CpuEngine::onednn, "onednn", "needs a build that found oneDNN (libdnnl-dev)"},
    {CpuEngine::unpacked, "unpacked", "needs AVX-512 (a build with DPTRAIN_NATIVE=ON on an AVX-512 CPU)"},
};

CpuEngine checked(CpuEngine e, const std::string& who) {
  if (!cpu_engine_available(e))
    fail_input(who + ": CPU engine '" + cpu_engine_name(e) + "' " + cpu_engine_missing_why(e));
  return e;
}

// The environment's engine, read once; automatic when DPTRAIN_CPU_ENGINE is unset or empty.
CpuEngine environment_engine() {
  static const CpuEngine engine = [] {
    const char* v = std::getenv("DPTRAIN_CPU_ENGINE");
    if (!v || !*v) return CpuEngine::automatic;
    for (const EngineRow& r : engine_rows)
      if (std::string_view(v) == r.name) return checked(r.engine, "environment variable DPTRAIN_CPU_ENGINE");
    fail_input("environment variable DPTRAIN_CPU_ENGINE = '" + std::string(v) +
               "' names no CPU engine; valid: " + cpu_engine_names());
  }();
  return engine;
}

std::atomic<CpuEngine> requested_engine{CpuEngine::automatic};

}  // namespace

bool cpu_engine_available(CpuEngine e) {
  if (e == CpuEngine::unpacked) return cpu_unpacked_gemm_available();
  if (e == CpuEngine::onednn) return cpu_onednn_available();
  return true;
}

std::string cpu_engine_missing_why(CpuEngine e) {
  if (cpu_engine_available(e)) return "";
  for (const EngineRow& r : engine_rows)
    if (r.engine == e && r.missing) return r.missing;
  return "is not available";
}

CpuEngine parse_cpu_engine(std::string_view name) {
  for (const EngineRow& r : engine_rows)
    if (name == r.name) return r.engine;
  fail_input("unknown CPU engine '" + std::string(name) + "'; valid: " + cpu_engine_names());
}

const char* cpu_engine_name(CpuEngine e) {
  for (const EngineRow& r : engine_rows)
    if (r.engine == e) return r.name;
  return "?";
}

std::string cpu_engine_names() {
  std::string s;
  for (const EngineRow& r : engine_rows) s += (s.empty() ? "" : ", ") + std::string(r.name);
  return s;
}

void set_cpu_engine(CpuEngine requested) {
  checked(requested, "cpu_engine");  // refused where missing, even when the environment overrides it
  requested_engine.store(requested);
  environment_engine();  // a bad DPTRAIN_CPU_ENGINE is reported here, at start-up, not at the first product
}

CpuEngine cpu_engine() {
  const CpuEngine env = environment_engine();
  return env != CpuEngine::automatic ? env : requested_engine.load();
}

}  // namespace dptrain
