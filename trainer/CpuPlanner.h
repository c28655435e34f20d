// The run's side of the measured CPU plan (models/kernels/cpu/CpuPlan.h): the first training step
// records its products, then rank 0 times them (or reads its machine's cache) and broadcasts the
// plan, which every rank installs before the second step. The plan is part of the training state:
// checkpoints carry it, and a resume installs it instead of measuring, so a resumed run computes
// with the same engines as the run it continues, on any machine.
#pragma once

#include <functional>
#include <string>

#include "comm/Communicator.h"
#include "storage/checkpoint/CheckpointState.h"

namespace dptrain {

class CpuPlanner {
 public:
  using Printer = std::function<void(const std::string&)>;
  // Active when the model trains on the CPU and the engine is `auto`; otherwise every call is a
  // no-op. Clears a plan an earlier run in this process installed. `out_dir`: where rank 0
  // writes the plan it installed (cpu_products.tsv), "" for nowhere.
  CpuPlanner(Communicator& comm, bool cpu, Printer print, std::string out_dir);

  // The first step records its products; after it (after the step that makes `complete` true,
  // for schedules whose first steps differ: a GAN's D and G steps) rank 0 measures, broadcasts,
  // and every rank installs the plan. after_step is collective.
  void before_step();
  void after_step(bool complete = true);

  // The installed plan, saved as the checkpoint string "cpu_products".
  void save(CheckpointState& s) const;
  void restore(const CheckpointState& s);

  // The plan in one line, for /status: "11 products: onednn 9, ..." ("" before a plan).
  const std::string& summary() const { return summary_; }

  static constexpr double budget_seconds = 2.0;  // measuring time at a start without a cache
  static constexpr const char* checkpoint_key = "cpu_products";

 private:
  void install(const std::string& text, const std::string& source, const std::string& summary);

  Communicator& comm_;
  bool active_;
  bool pending_;            // no plan yet: the next step records
  bool recording_ = false;  // a step has begun recording
  Printer print_;
  std::string out_dir_;
  std::string summary_;
};

}  // namespace dptrain
