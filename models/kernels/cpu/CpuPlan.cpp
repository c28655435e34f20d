// The measured plan of CpuPlan.h: recording a step's products, timing their candidates, the
// per-machine cache, and the lookup every product makes.
#include "models/kernels/cpu/CpuPlan.h"

#include <cblas.h>
#include <fcntl.h>
#include <omp.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "models/core/Error.h"
#include "models/kernels/cpu/CpuInternal.h"
#include "models/kernels/cpu/CpuKernels.h"

namespace dptrain {

namespace {

// One row per product kind: its name in plans and cache files.
struct KindRow {
  ProductKind kind;
  const char* name;
};
constexpr KindRow kind_rows[] = {{ProductKind::dense_forward, "dense_forward"},
                                 {ProductKind::dense_input_grad, "dense_input_grad"},
                                 {ProductKind::gemm, "gemm"},
                                 {ProductKind::gemm_serial, "gemm_serial"}};

const char* kind_name(ProductKind k) {
  for (const KindRow& r : kind_rows)
    if (r.kind == k) return r.name;
  return "?";
}

bool is_dense(ProductKind k) { return k == ProductKind::dense_forward || k == ProductKind::dense_input_grad; }

// The choice without a plan: OpenBLAS, or the forced engine, with the layouts measured best on
// the machines we had before plans existed (the transposed forward from 256 outputs up, up to
// 2048 inputs, from 16 rows; the unpacked product from 64 outputs up for the input gradient).
ProductChoice default_choice(const ProductKey& key, CpuEngine engine) {
  ProductChoice c{engine == CpuEngine::automatic ? CpuEngine::openblas : engine, false};
  const bool wide = key.k >= 256 && key.n <= 2048;
  switch (key.kind) {
    case ProductKind::dense_forward:
      if (c.engine == CpuEngine::unpacked && !wide) c.engine = CpuEngine::openblas;
      c.transposed = wide && (c.engine == CpuEngine::unpacked || key.m >= 16);
      break;
    case ProductKind::dense_input_grad:
      if (c.engine == CpuEngine::unpacked && key.k < 64) c.engine = CpuEngine::openblas;
      break;
    case ProductKind::gemm:
    case ProductKind::gemm_serial:
      if (c.engine == CpuEngine::unpacked) c.engine = CpuEngine::openblas;
      break;
  }
  return c;
}

// The installed plan, read by every product; written only between steps, when no product runs.
CpuPlan installed_plan;
CpuEngine fallback_engine = CpuEngine::openblas;

std::atomic<bool> recording{false};
std::mutex recorded_mu;
std::set<ProductKey> recorded;

// A deterministic fill, so that measurements never meet denormals or NaNs.
void fill(std::vector<float>& v, uint32_t seed) {
  uint32_t s = seed * 2654435761u + 1;
  for (float& x : v) {
    s = s * 1664525u + 1013904223u;
    x = static_cast<float>(s >> 8) * (1.0f / 16777216.0f) - 0.5f;
  }
}

// Runs one product of `key` by `choice` on buffers of its shape.
class ProductRunner {
 public:
  explicit ProductRunner(const ProductKey& key) : key_(key) {
    const size_t m = static_cast<size_t>(key.m), n = static_cast<size_t>(key.n), k = static_cast<size_t>(key.k);
    if (is_dense(key.kind)) {  // m rows, n inputs, k outputs
      a_.resize(m * std::max(n, k));
      b_.resize(k * n);
      c_.resize(m * std::max(n, k));
      bias_.resize(k);
    } else {
      a_.resize(m * k);
      b_.resize(k * n);
      c_.resize(m * n);
    }
    fill(a_, 1);
    fill(b_, 2);
    fill(c_, 3);
    fill(bias_, 4);
  }

  void run(ProductChoice choice) {
    const ProductKey& p = key_;
    switch (p.kind) {
      case ProductKind::dense_forward:
        return cpu_dense_forward_as(choice, cpu_kernels(), p.m, p.n, p.k, a_.data(), b_.data(), bias_.data(),
                                    Activation::relu, 0.0f, c_.data(), scratch_);
      case ProductKind::dense_input_grad:
        return cpu_dense_input_grad_as(choice.engine, p.m, p.n, p.k, a_.data(), b_.data(), c_.data());
      case ProductKind::gemm:
        return cpu_gemm_as(choice.engine, p.trans_a, p.trans_b, p.m, p.n, p.k, 1.0f, a_.data(), p.trans_a ? p.m : p.k,
                           b_.data(), p.trans_b ? p.k : p.n, p.accumulate ? 1.0f : 0.0f, c_.data(), p.n);
      case ProductKind::gemm_serial: {
        // As a convolution runs it: one thread (oneDNN would otherwise take the whole pool).
        const int threads = omp_get_max_threads();
        omp_set_num_threads(1);
        cpu_gemm_serial_as(choice.engine, p.trans_a, p.trans_b, p.m, p.n, p.k, 1.0f, a_.data(), p.trans_a ? p.m : p.k,
                           b_.data(), p.trans_b ? p.k : p.n, p.accumulate ? 1.0f : 0.0f, c_.data(), p.n);
        omp_set_num_threads(threads);
        return;
      }
    }
  }

 private:
  ProductKey key_;
  std::vector<float> a_, b_, c_, bias_;
  LayerScratch scratch_;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A product's candidates, fastest first: (seconds, choice).
using Timings = std::vector<std::pair<double, ProductChoice>>;

// A product timed alone runs with its operands hot in cache; in a step it shares the caches with
// the others, and one engine for most products keeps one set of packing buffers and kernels warm
// (forcing oneDNN beat a mixed plan by up to 8 % on small MLPs). So a candidate of the engine that
// won the most measured work is kept where it is within this fraction of the fastest.
constexpr double majority_margin = 0.05;

// Times every candidate of `key`: a first call (page faults, packing buffers), then the best of
// `reps` timed calls. Returns the entry with the fastest, and every candidate's time.
PlanEntry measure(const ProductKey& key, Timings& times) {
  ProductRunner runner(key);
  times.clear();
  for (const ProductChoice& c : cpu_product_candidates(key)) {
    runner.run(c);
    double best = 1e30;
    // Short products are timed more often: the best of at least 3 calls or 20 ms.
    const auto t_start = std::chrono::steady_clock::now();
    for (int rep = 0; rep < 3 || (seconds_since(t_start) < 0.02 && rep < 50); ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      runner.run(c);
      best = std::min(best, seconds_since(t0));
    }
    times.emplace_back(best, c);
  }
  std::stable_sort(times.begin(), times.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  PlanEntry e{key, times.front().second, "measured:"};
  char buf[64];
  for (const auto& [t, c] : times) {
    std::snprintf(buf, sizeof buf, " %s %.3g ms,", c.text().c_str(), t * 1e3);
    e.how += buf;
  }
  e.how.pop_back();
  return e;
}

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

bool parse_key(const std::string& text, ProductKey& key) {
  std::istringstream in(text);
  std::string kind, flags, dims;
  if (!(in >> kind >> flags >> dims)) return false;
  bool found = false;
  for (const KindRow& r : kind_rows)
    if (kind == r.name) key.kind = r.kind, found = true;
  if (!found || flags.size() < 2) return false;
  key.trans_a = flags[0] == 'T';
  key.trans_b = flags[1] == 'T';
  key.accumulate = flags.size() > 2 && flags[2] == '+';
  long long m = 0, n = 0, k = 0;
  char tail = 0;
  if (std::sscanf(dims.c_str(), "%lldx%lldx%lld%c", &m, &n, &k, &tail) != 3 || m <= 0 || n <= 0 || k <= 0) return false;
  key.m = m, key.n = n, key.k = k;
  return true;
}

bool parse_choice(const std::string& text, ProductChoice& choice) {
  const bool t = text.size() > 2 && text.compare(text.size() - 2, 2, "-t") == 0;
  const std::string name = t ? text.substr(0, text.size() - 2) : text;
  for (CpuEngine e : {CpuEngine::openblas, CpuEngine::onednn, CpuEngine::unpacked})
    if (name == cpu_engine_name(e)) {
      choice = {e, t};
      return true;
    }
  return false;
}

// Reads "<key>\t<choice>\t<how>" into an entry; false when the line is not one.
bool parse_entry(const std::string& line, PlanEntry& e) {
  const size_t t1 = line.find('\t');
  const size_t t2 = t1 == std::string::npos ? std::string::npos : line.find('\t', t1 + 1);
  if (t1 == std::string::npos) return false;
  const std::string choice = line.substr(t1 + 1, t2 == std::string::npos ? std::string::npos : t2 - t1 - 1);
  e.how = t2 == std::string::npos ? "" : line.substr(t2 + 1);
  return parse_key(line.substr(0, t1), e.key) && parse_choice(trim(choice), e.choice);
}

std::string entry_line(const PlanEntry& e) { return e.key.text() + "\t" + e.choice.text() + "\t" + e.how + "\n"; }

// The cache file, locked for the life of this object.
class LockedCache {
 public:
  LockedCache(const std::string& path, std::string* warn) : path_(path), warn_(warn) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    // Wait at most 10 s for another process measuring on this machine (the other ranks are
    // waiting in the plan's broadcast meanwhile); then go on without the cache.
    bool locked = false;
    for (int tries = 0; fd_ >= 0 && !locked && tries < 200; ++tries) {
      locked = ::flock(fd_, LOCK_EX | LOCK_NB) == 0;
      if (!locked) ::usleep(50000);
    }
    if (!locked) {
      note(fd_ < 0 ? "cannot open it" : "another process held its lock for 10 s");
      close_fd();
    }
  }
  ~LockedCache() { close_fd(); }
  LockedCache(const LockedCache&) = delete;
  LockedCache& operator=(const LockedCache&) = delete;

  // The decisions cached for `machine`; a line that is not one is skipped with a warning.
  std::map<ProductKey, PlanEntry> read(const std::string& machine) {
    std::map<ProductKey, PlanEntry> out;
    if (fd_ < 0) return out;
    std::ifstream in(path_);
    std::string line;
    int bad = 0;
    while (std::getline(in, line)) {
      const size_t tab = line.find('\t');
      if (tab == std::string::npos || line.compare(0, tab, machine) != 0) continue;
      PlanEntry e;
      if (parse_entry(line.substr(tab + 1), e))
        out[e.key] = e;
      else
        ++bad;
    }
    if (bad) note(std::to_string(bad) + " line(s) are not decisions and were skipped");
    return out;
  }

  void append(const std::string& machine, const std::vector<PlanEntry>& entries) {
    if (fd_ < 0 || entries.empty()) return;
    std::string text;
    for (const PlanEntry& e : entries) text += machine + "\t" + entry_line(e);
    // One write, under the lock: other processes see all of these decisions or none.
    if (::write(fd_, text.data(), text.size()) != static_cast<ssize_t>(text.size()) || ::fsync(fd_) != 0)
      note("cannot append to it");
  }

 private:
  void note(const std::string& what) {
    if (warn_) *warn_ += (warn_->empty() ? "" : "; ") + ("CPU product cache " + path_ + ": " + what);
  }
  void close_fd() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  std::string path_;
  std::string* warn_;
  int fd_ = -1;
};

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return trim(line.substr(colon + 1));
    }
  return "unknown CPU";
}

}  // namespace

std::string ProductKey::text() const {
  std::string flags = is_dense(kind) ? "--" : std::string(trans_a ? "T" : "N") + (trans_b ? "T" : "N");
  if (accumulate) flags += "+";
  return std::string(kind_name(kind)) + " " + flags + " " + std::to_string(m) + "x" + std::to_string(n) + "x" +
         std::to_string(k);
}

std::string ProductChoice::text() const { return std::string(cpu_engine_name(engine)) + (transposed ? "-t" : ""); }

std::vector<ProductChoice> cpu_product_candidates(const ProductKey& key) {
  std::vector<ProductChoice> out;
  const bool onednn = cpu_onednn_available(), unpacked = cpu_unpacked_gemm_available();
  switch (key.kind) {
    case ProductKind::dense_forward:
      out = {{CpuEngine::openblas, false}, {CpuEngine::openblas, true}};
      if (onednn) out.insert(out.end(), {{CpuEngine::onednn, false}, {CpuEngine::onednn, true}});
      if (unpacked) out.push_back({CpuEngine::unpacked, true});
      break;
    case ProductKind::dense_input_grad:
    case ProductKind::gemm:
      out = {{CpuEngine::openblas, false}};
      if (onednn) out.push_back({CpuEngine::onednn, false});
      if (unpacked && !key.trans_a && !key.trans_b && !key.accumulate) out.push_back({CpuEngine::unpacked, false});
      break;
    case ProductKind::gemm_serial:
      out = {{CpuEngine::openblas, false}};
      if (onednn) out.push_back({CpuEngine::onednn, false});
      break;
  }
  return out;
}

ProductChoice cpu_product_choice(const ProductKey& key) {
  const CpuEngine forced = cpu_engine();
  if (forced != CpuEngine::automatic) return default_choice(key, forced);
  if (key.m <= 0 || key.n <= 0 || key.k <= 0) return default_choice(key, CpuEngine::openblas);  // nothing to plan
  if (recording.load(std::memory_order_relaxed)) {
    std::lock_guard<std::mutex> lock(recorded_mu);
    recorded.insert(key);
  }
  const std::vector<PlanEntry>& entries = installed_plan.entries;
  auto it = std::lower_bound(entries.begin(), entries.end(), key,
                             [](const PlanEntry& e, const ProductKey& k) { return e.key < k; });
  if (it != entries.end() && it->key == key) return it->choice;
  if (is_dense(key.kind)) {
    // Another batch size of a planned layer (evaluation, a last partial batch): the layer's
    // choice for the nearest number of rows.
    const PlanEntry* near = nullptr;
    for (const PlanEntry& e : entries)
      if (e.key.kind == key.kind && e.key.n == key.n && e.key.k == key.k &&
          (!near || std::llabs(e.key.m - key.m) < std::llabs(near->key.m - key.m)))
        near = &e;
    if (near) return near->choice;
  }
  return default_choice(key, fallback_engine);
}

void cpu_plan_record(bool on) {
  std::lock_guard<std::mutex> lock(recorded_mu);
  if (on) recorded.clear();
  recording.store(on);
}

std::vector<ProductKey> cpu_plan_recorded() {
  std::lock_guard<std::mutex> lock(recorded_mu);
  return {recorded.begin(), recorded.end()};
}

// The version of the way decisions are taken: a change to it (the candidates, the majority margin)
// leaves earlier cached decisions unread.
constexpr int decision_rule = 2;

std::string cpu_machine_id() {
  std::string id = cpu_model_name() + "|rule=" + std::to_string(decision_rule) +
                   "|threads=" + std::to_string(omp_get_max_threads()) + "|openblas=" + openblas_get_corename() +
                   "|onednn=" + (cpu_onednn_available() ? "yes" : "no") +
                   "|avx512=" + (cpu_unpacked_gemm_available() ? "yes" : "no");
  std::replace(id.begin(), id.end(), '\t', ' ');
  std::replace(id.begin(), id.end(), '\n', ' ');
  return id;
}

std::string cpu_plan_cache_path() {
  std::filesystem::path dir;
  if (const char* d = std::getenv("DPTRAIN_CACHE_DIR"); d && *d)
    dir = d;
  else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
    dir = std::filesystem::path(x) / "dptrain";
  else if (const char* h = std::getenv("HOME"); h && *h)
    dir = std::filesystem::path(h) / ".cache" / "dptrain";
  else
    return "";
  return (dir / "cpu-products.tsv").string();
}

CpuPlan cpu_plan_measure(const std::vector<ProductKey>& keys, double budget_seconds, const std::string& cache_path,
                         std::string* warn) {
  CpuPlan plan;
  plan.machine = cpu_machine_id();
  std::unique_ptr<LockedCache> cache;
  std::map<ProductKey, PlanEntry> cached;
  if (!cache_path.empty()) {
    cache = std::make_unique<LockedCache>(cache_path, warn);
    cached = cache->read(plan.machine);
  }
  std::vector<ProductKey> order(keys.begin(), keys.end());
  std::stable_sort(order.begin(), order.end(),
                   [](const ProductKey& a, const ProductKey& b) { return a.flops() > b.flops(); });
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<PlanEntry> fresh, unmeasured;
  std::vector<Timings> fresh_times;
  std::map<CpuEngine, double> won;  // measured work each engine won
  for (const ProductKey& key : order) {
    if (auto it = cached.find(key); it != cached.end()) {
      plan.entries.push_back(it->second);
      plan.entries.back().how = "cached (" + it->second.how + ")";
      ++plan.cached;
    } else if (cpu_product_candidates(key).size() < 2) {
      plan.entries.push_back({key, cpu_product_candidates(key).front(), "the only engine"});
    } else if (seconds_since(t0) < budget_seconds) {
      fresh_times.emplace_back();
      fresh.push_back(measure(key, fresh_times.back()));
      won[fresh.back().choice.engine] += key.flops();
      ++plan.measured;
    } else {
      unmeasured.push_back({key, {}, "not measured: the time budget was spent"});
    }
  }
  // What budget left over takes the engine that won the most measured work (OpenBLAS if none).
  CpuEngine best = CpuEngine::openblas;
  for (const auto& [e, w] : won)
    if (w > won[best]) best = e;
  for (size_t i = 0; i < fresh.size(); ++i) {
    const Timings& t = fresh_times[i];
    for (const auto& [seconds, choice] : t)
      if (fresh[i].choice.engine != best && choice.engine == best &&
          seconds <= t.front().first * (1.0 + majority_margin)) {
        fresh[i].choice = choice;
        fresh[i].how += "; took " + choice.text() + ", within 5 % of the fastest, for the engine of most products";
        break;
      }
    plan.entries.push_back(fresh[i]);
  }
  for (PlanEntry& e : unmeasured) {
    e.choice = default_choice(e.key, best);
    plan.entries.push_back(e);
    fresh.push_back(e);
    ++plan.unmeasured;
  }
  plan.measure_seconds = seconds_since(t0);
  if (cache) cache->append(plan.machine, fresh);
  std::sort(plan.entries.begin(), plan.entries.end(),
            [](const PlanEntry& a, const PlanEntry& b) { return a.key < b.key; });
  return plan;
}

void cpu_plan_install(const CpuPlan& plan, std::string* warn) {
  installed_plan = plan;
  std::sort(installed_plan.entries.begin(), installed_plan.entries.end(),
            [](const PlanEntry& a, const PlanEntry& b) { return a.key < b.key; });
  int missing = 0;
  std::map<CpuEngine, double> work;
  for (PlanEntry& e : installed_plan.entries) {
    if (!cpu_engine_available(e.choice.engine)) {
      e.choice = default_choice(e.key, CpuEngine::openblas);
      ++missing;
    }
    work[e.choice.engine] += e.key.flops();
  }
  fallback_engine = CpuEngine::openblas;
  for (const auto& [e, w] : work)
    if (w > work[fallback_engine]) fallback_engine = e;
  if (missing && warn)
    *warn = std::to_string(missing) + " product(s) of the plan name an engine this build lacks; they use OpenBLAS";
}

const CpuPlan& cpu_plan_installed() { return installed_plan; }

std::string CpuPlan::to_text() const {
  std::string s = "machine\t" + machine + "\n";
  for (const PlanEntry& e : entries) s += entry_line(e);
  return s;
}

CpuPlan CpuPlan::parse(const std::string& text, const std::string& source) {
  CpuPlan plan;
  std::istringstream in(text);
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.rfind("machine\t", 0) == 0) {
      plan.machine = line.substr(8);
      continue;
    }
    if (trim(line).empty()) continue;
    PlanEntry e;
    if (!parse_entry(line, e))
      fail_input(source + ": line " + std::to_string(number) + " is not a CPU product decision: '" + line + "'");
    plan.entries.push_back(e);
  }
  return plan;
}

std::string CpuPlan::summary() const {
  std::map<std::string, int> count;
  for (const PlanEntry& e : entries) ++count[e.choice.text()];
  std::string s = std::to_string(entries.size()) + " products:";
  for (const auto& [name, n] : count) s += " " + name + " " + std::to_string(n) + ",";
  s.pop_back();
  char buf[160];
  std::snprintf(buf, sizeof buf, " (measured %d in %.2f s, %d from the cache%s)", measured, measure_seconds, cached,
                unmeasured ? (", " + std::to_string(unmeasured) + " past the time budget").c_str() : "");
  return s + buf;
}

}  // namespace dptrain
