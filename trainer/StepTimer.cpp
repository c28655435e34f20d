#include "trainer/StepTimer.h"

#include <cstdio>
#include <fstream>

#include "comm/Communicator.h"
#include "models/core/Error.h"
#include "storage/AtomicFile.h"

namespace dptrain {

namespace {
int64_t micros(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}
}  // namespace

const char* StepTimer::name(Phase p) {
  static const char* names[num_phases] = {"data", "compute", "allreduce", "optimizer"};
  return names[p];
}

void StepTimer::begin(int64_t step) {
  step_ = step;
  ++steps_;
  last_ = Clock::now();
}

void StepTimer::mark(Phase p) {
  const Clock::time_point now = Clock::now();
  seconds_[p] += std::chrono::duration<double>(now - last_).count();
  if (events_.size() < max_events_) events_.push_back({step_, p, micros(last_), micros(now)});
  last_ = now;
}

void StepTimer::take(double (&seconds)[num_phases], int64_t& steps) {
  for (int p = 0; p < num_phases; ++p) seconds[p] = seconds_[p], seconds_[p] = 0.0;
  steps = steps_;
  steps_ = 0;
}

void StepTimer::write_trace(Communicator& comm, const std::string& path) const {
  // A gather from sums: each rank fills its own slots of buffers every rank sizes alike.
  const int ranks = comm.size(), me = comm.rank();
  std::vector<double> counts(static_cast<size_t>(ranks), 0.0);
  counts[static_cast<size_t>(me)] = static_cast<double>(events_.size());
  comm.set_operation("trace gather", step_);
  comm.allreduce_sum(counts.data(), ranks);
  int64_t offset = 0, total = 0;
  for (int r = 0; r < ranks; ++r) {
    if (r < me) offset += static_cast<int64_t>(counts[static_cast<size_t>(r)]);
    total += static_cast<int64_t>(counts[static_cast<size_t>(r)]);
  }
  // Times relative to the earliest event, so they stay exact in doubles.
  double t0 = events_.empty() ? -1e300 : -static_cast<double>(events_.front().begin_us);
  comm.allreduce_max(&t0, 1);
  t0 = -t0;
  std::vector<double> all(static_cast<size_t>(total * 4), 0.0);
  for (size_t i = 0; i < events_.size(); ++i) {
    double* e = all.data() + (offset + static_cast<int64_t>(i)) * 4;
    e[0] = static_cast<double>(events_[i].step);
    e[1] = static_cast<double>(events_[i].phase);
    e[2] = static_cast<double>(events_[i].begin_us) - t0;
    e[3] = static_cast<double>(events_[i].end_us - events_[i].begin_us);
  }
  comm.allreduce_sum(all.data(), static_cast<int64_t>(all.size()));
  if (me != 0) return;
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp);
    out << "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n";
    char line[256];
    for (int r = 0; r < ranks; ++r) {
      std::snprintf(line, sizeof line,
                    "{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 0, \"tid\": %d, \"args\": {\"name\": "
                    "\"rank %d\"}}",
                    r, r);
      out << (r ? ",\n" : "") << line;
    }
    int64_t at = 0;
    for (int r = 0; r < ranks; ++r)
      for (int64_t i = 0; i < static_cast<int64_t>(counts[static_cast<size_t>(r)]); ++i, ++at) {
        const double* e = all.data() + at * 4;
        std::snprintf(line, sizeof line,
                      "{\"name\": \"%s\", \"ph\": \"X\", \"pid\": 0, \"tid\": %d, \"ts\": %.0f, \"dur\": %.0f, "
                      "\"args\": {\"step\": %.0f}}",
                      name(static_cast<Phase>(static_cast<int>(e[1]))), r, e[2], e[3], e[0]);
        out << ",\n" << line;
      }
    out << "\n]}\n";
    if (!out) fail_input(path + ": cannot write the trace");
  });
}

}  // namespace dptrain
