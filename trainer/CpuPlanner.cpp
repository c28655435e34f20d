#include "trainer/CpuPlanner.h"

#include <filesystem>
#include <fstream>

#include "models/core/Error.h"
#include "models/kernels/cpu/CpuPlan.h"
#include "storage/AtomicFile.h"

namespace dptrain {

CpuPlanner::CpuPlanner(Communicator& comm, bool cpu, Printer print, std::string out_dir)
    : comm_(comm),
      active_(cpu && cpu_engine() == CpuEngine::automatic),
      pending_(active_),
      print_(std::move(print)),
      out_dir_(std::move(out_dir)) {
  // The plan's broadcasts are collectives: every rank must take part or none. Ranks whose
  // DPTRAIN_CPU_ENGINE or device differ would otherwise pair them with other collectives and hang.
  double flags[2] = {active_ ? 1.0 : 0.0, active_ ? 0.0 : 1.0};
  comm_.set_operation("CPU engine agreement", -1);
  comm_.allreduce_max(flags, 2);
  if (flags[0] > 0.0 && flags[1] > 0.0)
    fail_input("ranks disagree on the CPU engine: some measure a plan (cpu_engine = \"auto\" on the CPU), others use " +
               std::string(cpu_engine_name(cpu_engine())) +
               " or a GPU; set DPTRAIN_CPU_ENGINE alike on every node, or unset it everywhere");
  if (active_) cpu_plan_install({});
}

void CpuPlanner::before_step() {
  if (pending_ && !recording_) cpu_plan_record(true);
  recording_ = pending_;
}

void CpuPlanner::after_step(bool complete) {
  if (!pending_ || !complete) return;
  pending_ = recording_ = false;
  cpu_plan_record(false);
  std::string text, summary, warn;
  if (comm_.rank() == 0) {
    const std::string cache = cpu_plan_cache_path();
    if (cache.empty())
      warn =
          "no cache directory for the CPU product plan (HOME, XDG_CACHE_HOME and DPTRAIN_CACHE_DIR unset): "
          "each start measures afresh, so a repeated run may choose other engines and round differently";
    const CpuPlan plan = cpu_plan_measure(cpu_plan_recorded(), budget_seconds, cache, &warn);
    text = plan.to_text();
    summary = plan.summary();
  }
  // Every rank computes with rank 0's decisions, so a run repeats whatever each rank would time.
  uint64_t size = text.size();
  comm_.set_operation("CPU product plan broadcast", -1);
  comm_.broadcast(&size, sizeof size, 0);
  text.resize(size);
  comm_.broadcast(text.data(), size, 0);
  if (!warn.empty()) print_("note: " + warn);
  install(text, "rank 0's CPU product plan", summary);
}

void CpuPlanner::install(const std::string& text, const std::string& source, const std::string& summary) {
  std::string warn;
  cpu_plan_install(CpuPlan::parse(text, source), &warn);
  if (!warn.empty()) print_("note: " + warn);
  if (comm_.rank() != 0) return;
  std::string where;
  if (!out_dir_.empty()) {
    const std::string path = (std::filesystem::path(out_dir_) / "cpu_products.tsv").string();
    std::filesystem::create_directories(out_dir_);
    write_atomically(path, [&](const std::string& tmp) {
      std::ofstream out(tmp, std::ios::binary);
      out << cpu_plan_installed().to_text();
      if (!out.flush()) fail_input(tmp + ": cannot write the CPU product plan");
    });
    where = "; each product in " + path;
  }
  summary_ = summary;
  print_("cpu engines: " + summary + where);
}

void CpuPlanner::save(CheckpointState& s) const {
  if (active_ && !pending_) s.strings.emplace_back(checkpoint_key, cpu_plan_installed().to_text());
}

void CpuPlanner::restore(const CheckpointState& s) {
  if (!active_) return;
  for (const auto& [name, text] : s.strings)
    if (name == checkpoint_key) {
      pending_ = false;
      CpuPlan plan = CpuPlan::parse(text, s.source + ": /strings/" + checkpoint_key);
      install(text, s.source + ": /strings/" + checkpoint_key,
              std::to_string(plan.entries.size()) + " products as the checkpoint recorded them (machine " +
                  plan.machine + ")");
      return;
    }
}

}  // namespace dptrain
