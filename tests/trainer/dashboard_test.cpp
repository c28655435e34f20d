// The live dashboard (docs/observability.md): the coordinator's bounded history of what rank 0
// logs, GET /history and the page at GET /. The end-to-end case opens the page in headless
// Chromium (Debian's chromium package, installed by scripts/setup) during a 2-rank
// `dptrain launch`, checks from the DOM that the curves and both ranks are drawn, keeps a
// screenshot (copied to $DPTRAIN_KEEP_SCREENSHOT when set), then kills a worker and restarts the
// whole supervisor, and checks that the history survives both.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <regex>
#include <thread>

#include "storage/dataset/Synthesize.h"
#include "support/JsonSupport.h"
#include "support/TestSupport.h"
#include "trainer/Metrics.h"
#include "trainer/coordinator/Coordinator.h"
#include "trainer/coordinator/CoordinatorClient.h"
#include "trainer/coordinator/MetricsHistory.h"

using namespace dptrain;
using namespace dptrain::test;

namespace {

nlohmann::json parse(const std::string& text) { return nlohmann::json::parse(text, nullptr, false); }

std::string step_record(int64_t step, double loss) {
  return JsonRecord().add("event", std::string("step")).add("step", step).add("loss", loss).str();
}

std::vector<int64_t> steps_of(const nlohmann::json& history, const std::string& event) {
  std::vector<int64_t> out;
  for (const auto& r : history["records"])
    if (r.value("event", "") == event) out.push_back(r["step"].get<int64_t>());
  return out;
}

// Headless Chromium: $DPTRAIN_CHROMIUM, else chromium or chromium-browser on PATH; "" if none.
std::string find_chromium() {
  if (const char* c = std::getenv("DPTRAIN_CHROMIUM"); c && *c) return c;
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (const char* name : {"chromium", "chromium-browser"}) {
    size_t start = 0;
    while (start <= dirs.size()) {
      size_t end = dirs.find(':', start);
      if (end == std::string::npos) end = dirs.size();
      const std::string candidate = dirs.substr(start, end - start) + "/" + name;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
      start = end + 1;
    }
  }
  return "";
}

// Chromium loads `url`, runs its scripts for 5 s of virtual time (the page's polls included), and
// then prints the DOM (`--dump-dom`) or writes a PNG (`screenshot`).
CliResult chromium(const std::string& exe, const TempDir& dir, const std::string& url,
                   const std::string& screenshot = "") {
  std::vector<std::string> argv = {exe,
                                   "--headless",
                                   "--no-sandbox",
                                   "--disable-gpu",
                                   "--no-first-run",
                                   "--hide-scrollbars",
                                   "--user-data-dir=" + dir.file("chromium-profile"),
                                   "--virtual-time-budget=5000"};
  if (screenshot.empty()) {
    argv.push_back("--dump-dom");
  } else {
    argv.push_back("--screenshot=" + screenshot);
    argv.push_back("--window-size=1200,900");
  }
  argv.push_back(url);
  return run_program(argv, dir.path(), 120);
}

// The data-points of the curve of `key` (of `event` records) in a dumped DOM; -1 when not drawn.
int64_t curve_points(const std::string& dom, const std::string& event, const std::string& key) {
  std::smatch m;
  const std::regex curve("<path class=\"series\" data-event=\"" + event + "\" data-key=\"" + key +
                         "\" data-points=\"([0-9]+)\"");
  return std::regex_search(dom, m, curve) ? std::stoll(m[1]) : -1;
}

bool has(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

// A `dptrain launch -n 2` that is always stopped: SIGTERM (the supervisor stops its workers
// after a checkpoint), then SIGKILL for it and any worker seen alive.
struct LaunchedJob {
  LaunchedJob(const std::vector<std::string>& argv, const std::string& log)
      : log_file(log), process(argv, {"DPTRAIN_TEST_STEP_MS=25"}, log) {}
  ~LaunchedJob() { stop(SIGTERM); }
  int stop(int signal) {
    if (process.running()) {
      process.kill(signal);
      for (int i = 0; i < 600 && process.running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (process.running()) {
      // The supervisor did not stop: end it and the workers it could not end itself.
      process.kill(SIGKILL);
      for (int64_t pid : workers) ::kill(static_cast<pid_t>(pid), SIGKILL);
    }
    return process.wait();
  }
  // Waits until /status shows two ranks at `min_step` or later (none of `not_pids`) and /history
  // holds what `ready` asks for; returns that history. Fails with the job's output otherwise.
  nlohmann::json wait_for(int64_t min_step, const std::vector<int64_t>& not_pids,
                          const std::function<bool(const nlohmann::json&)>& ready) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(180);
    std::string status, history;
    while (std::chrono::steady_clock::now() < deadline && process.running()) {
      port = status_port(read_text(log_file));
      status = port > 0 ? http_get(port, "/status") : "";
      nlohmann::json s = parse(status);
      bool ok = s.is_object() && s["ranks"].size() == 2;
      std::vector<int64_t> pids;
      for (size_t i = 0; ok && i < 2; ++i) {
        const auto& r = s["ranks"][i];
        pids.push_back(r["pid"].get<int64_t>());
        ok = r["step"].get<int64_t>() >= min_step &&
             std::find(not_pids.begin(), not_pids.end(), pids.back()) == not_pids.end();
      }
      if (ok) {
        workers = pids;
        history = http_get(port, "/history");
        nlohmann::json h = parse(history);
        if (h.is_object() && ready(h)) return h;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    FAIL("the job did not reach step " << min_step << " with two ranks and the history asked for"
                                       << (process.running() ? "" : " (it exited)") << "\nlast /status: " << status
                                       << "\nlast /history: " << history.substr(0, 4000) << "\njob output:\n"
                                       << read_text(log_file));
    return {};
  }

  std::string log_file;
  BackgroundProcess process;
  std::vector<int64_t> workers;
  int port = -1;
};

}  // namespace

TEST_CASE("history: a million steps stay within the bound, recent steps at full resolution", "[dashboard]") {
  MetricsHistory h;  // default limits: 2,048 step records
  const int64_t steps = 1000000;
  int64_t refused = 0;
  for (int64_t s = 1; s <= steps; ++s) refused += h.add_record(step_record(s, 1.0 / static_cast<double>(s))) ? 0 : 1;
  CHECK(refused == 0);
  nlohmann::json j = parse(h.json("job", "i"));
  REQUIRE(j.is_object());
  const std::vector<int64_t> kept = steps_of(j, "step");
  CHECK(kept.size() <= 2048);
  CHECK(kept.size() >= 1024);
  CHECK(j["thinned"].get<int64_t>() == steps - static_cast<int64_t>(kept.size()));
  REQUIRE(!kept.empty());
  CHECK(kept.front() == 1);  // the curve keeps its start
  CHECK(kept.back() == steps);
  CHECK(std::is_sorted(kept.begin(), kept.end()));
  CHECK(std::adjacent_find(kept.begin(), kept.end()) == kept.end());
  // The newest half is every step; the gaps grow with age.
  const size_t half = kept.size() / 2;
  for (size_t i = half + 1; i < kept.size(); ++i) REQUIRE(kept[i] == kept[i - 1] + 1);
  CHECK(kept[1] - kept[0] > kept[kept.size() - 1] - kept[kept.size() - 2]);
  CHECK(h.json("job", "i").size() < (size_t{1} << 20));

  // Events keep the newest.
  for (int64_t e = 0; e < 2000; ++e) h.add_event(JsonRecord().add("event", std::string("checkpoint")).add("step", e));
  j = parse(h.json("job", "i"));
  CHECK(j["events"].size() <= 512);
  CHECK(j["events"].back()["step"] == 1999);
  CHECK(j["events"].back()["time"].get<double>() > 1.6e9);  // seconds since the epoch
}

TEST_CASE("history: a restart that repeats steps replaces them, and non-objects are refused", "[dashboard]") {
  MetricsHistory h;
  for (int64_t s = 10; s <= 100; s += 10) h.add_record(step_record(s, 1.0));
  for (int64_t s : {50, 100})
    h.add_record(JsonRecord().add("event", std::string("epoch")).add("step", s).add("val_loss", 0.5).str());
  // The job resumed from the checkpoint of step 50: it logs step 60 again.
  h.add_record(step_record(60, 2.0));
  nlohmann::json j = parse(h.json("job", "i"));
  CHECK(steps_of(j, "step") == std::vector<int64_t>{10, 20, 30, 40, 50, 60});
  CHECK(steps_of(j, "epoch") == std::vector<int64_t>{50});
  CHECK(j["records"].back()["loss"] == 2.0);
  // Records come out in step order, an epoch after the step record it ended with.
  CHECK(j["records"][4]["event"] == "step");
  CHECK(j["records"][5]["event"] == "epoch");
  // A record without a step (the test result) sorts after the last step.
  h.add_record(JsonRecord().add("event", std::string("test")).add("accuracy", 0.9).str());
  j = parse(h.json("job", "i"));
  CHECK(j["records"].back()["event"] == "test");
  CHECK(!h.add_record("[1, 2]"));
  CHECK(!h.add_record("{\"event\": "));
  CHECK(parse(h.json("job", "i"))["records"].size() == j["records"].size());
}

TEST_CASE("history: seeded from the tail of a metrics file", "[dashboard]") {
  TempDir dir;
  std::string text;
  for (int64_t s = 1; s <= 400; ++s) text += step_record(s, 0.5) + "\n";
  text += "not json\n";
  text += JsonRecord().add("event", std::string("epoch")).add("step", int64_t{400}).add("val_loss", 0.25).str() + "\n";
  write_text(dir.file("metrics.jsonl"), text);
  MetricsHistory all, tail;
  CHECK(all.seed_from_file(dir.file("metrics.jsonl"), size_t{1} << 20) == 401);
  const int64_t taken = tail.seed_from_file(dir.file("metrics.jsonl"), 2000);  // starts mid-line
  CHECK(taken > 10);
  CHECK(taken < 100);
  nlohmann::json j = parse(tail.json("job", "i"));
  REQUIRE(j.is_object());  // the partial first line was skipped, not parsed
  CHECK(steps_of(j, "step").back() == 400);
  CHECK(steps_of(j, "epoch") == std::vector<int64_t>{400});
  CHECK(MetricsHistory().seed_from_file(dir.file("absent.jsonl"), 1000) == 0);
}

TEST_CASE("coordinator: records from a CoordinatorClient reach /history, and / serves the page",
          "[dashboard][coordinator]") {
  TempDir dir;
  // What an earlier attempt logged, read when rank 0 announces its start.
  write_text(dir.file("metrics.jsonl"), step_record(5, 3.0) + "\n" + step_record(10, 2.0) + "\n");
  CoordinatorOptions o;
  o.job = "dash";
  o.checkpoint_dir = dir.file("checkpoints");
  o.http_port = 0;
  Coordinator c(o, [](const std::string&) {});
  {
    CoordinatorEndpoint endpoint{"127.0.0.1", c.port(), c.token()};
    CoordinatorClient client(endpoint, 0, 1, 0.05);
    client.report_metrics(15, 1, 1.5, 0.5, 100.0, 0.01);
    client.report_record(JsonRecord()
                             .add("event", std::string("start"))
                             .add("world", int64_t{1})
                             .add("metrics_file", dir.file("metrics.jsonl"))
                             .str());
    client.report_record(step_record(15, 1.5));
    client.report_record("{not json");  // dropped; the worker stays connected
    client.report_record(JsonRecord().add("event", std::string("test")).add("accuracy", 0.75).str());
  }  // the client's destructor sends what is queued
  nlohmann::json h;
  for (int i = 0; i < 500; ++i) {
    h = parse(c.history_json());
    if (h["records"].size() >= 4) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  INFO(h.dump());
  CHECK(h["job"] == "dash");
  CHECK(!h["instance"].get<std::string>().empty());
  CHECK(steps_of(h, "step") == std::vector<int64_t>{5, 10, 15});
  REQUIRE(h["records"].size() == 4);
  CHECK(h["records"][3]["event"] == "test");
  REQUIRE(h["events"].size() == 1);
  CHECK(h["events"][0]["event"] == "start");
  CHECK(h["events"][0]["records_from_file"] == 2);
  nlohmann::json status = parse(c.status_json());
  CHECK(status["step"] == 15);  // record-only frames leave the interval's numbers alone
  CHECK(status["loss"] == 1.5);
  c.note_restart("rank 1 was killed");
  CHECK(parse(c.history_json())["events"].back()["event"] == "restart");

  const std::string page = http_get(c.http_port(), "/");
  CHECK(has(page, "<!doctype html>"));
  CHECK(has(page, "getJson('history')"));
  for (const char* external : {"<link", " src=", "@import", "url(", "https://"}) {
    INFO(external);
    CHECK(!has(page, external));  // no external asset: everything is inline
  }
  CHECK(parse(http_get(c.http_port(), "/history?since=0"))["job"] == "dash");
}

TEST_CASE("dashboard: the GAN and self-training figures are drawn when their records arrive", "[dashboard]") {
  const std::string exe = find_chromium();
  if (exe.empty()) FAIL("the dashboard test needs headless Chromium: install Debian's chromium (scripts/setup)");
  TempDir dir;
  CoordinatorOptions o;
  o.checkpoint_dir = dir.file("checkpoints");
  o.http_port = 0;
  Coordinator c(o, [](const std::string&) {});
  CoordinatorClient client({"127.0.0.1", c.port(), c.token()}, 0, 1, 0.05);
  const auto record = [](const std::string& event, int64_t step) {
    JsonRecord r;
    r.add("event", event).add("step", step);
    return r;
  };
  for (int64_t step = 5; step <= 100; step += 5) {
    const double t = static_cast<double>(step);
    client.report_record(record("step", step)
                             .add("d_loss", 1.4 - t / 200)
                             .add("g_loss", 0.7 + t / 300)
                             .add("lr_g", 2e-4)
                             .add("lr_d", 1e-4)
                             .add("samples_per_s", 5000.0)
                             .str());
    if (step % 50 == 0) {
      client.report_record(record("epoch", step)
                               .add("d_loss", 1.2)
                               .add("g_loss", 0.8)
                               .add("modes_covered", step / 10)
                               .add("modes", int64_t{8})
                               .add("high_quality", t / 120)
                               .str());
      client.report_record(record("round", step)
                               .add("round", step / 50)
                               .add("pseudo_labels", step * 10)
                               .add("unlabeled_left", 2000 - step * 10)
                               .add("pseudo_accuracy", 0.9)
                               .add("val_accuracy", 0.85)
                               .str());
    }
  }
  client.report_record(record("coverage", 100).add("modes_covered", int64_t{8}).add("modes", int64_t{8}).str());
  for (int i = 0; i < 500 && parse(c.history_json())["records"].size() < 25; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(parse(c.history_json())["records"].size() == 25);

  CliResult dom = chromium(exe, dir, "http://127.0.0.1:" + std::to_string(c.http_port()) + "/");
  INFO("chromium exit " << dom.exit_code << "\nDOM:\n" << dom.out);
  REQUIRE(dom.exit_code == 0);
  CHECK(curve_points(dom.out, "step", "d_loss") == 20);
  CHECK(curve_points(dom.out, "step", "g_loss") == 20);
  CHECK(curve_points(dom.out, "step", "lr_g") == 20);
  CHECK(curve_points(dom.out, "epoch", "modes_covered") == 2);
  CHECK(curve_points(dom.out, "epoch", "high_quality") == 2);
  CHECK(curve_points(dom.out, "round", "pseudo_labels") == 2);
  CHECK(curve_points(dom.out, "round", "pseudo_accuracy") == 2);
  CHECK(curve_points(dom.out, "round", "val_accuracy") == 2);
  CHECK(curve_points(dom.out, "step", "loss") == -1);  // no supervised loss logged: no empty chart
  CHECK(has(dom.out, "<tr data-event=\"coverage\""));
  CHECK(has(dom.out, "<tr data-event=\"round\""));
  CHECK(has(dom.out, "<tr data-rank=\"0\""));
}

TEST_CASE("dashboard: headless Chromium draws the curves and both ranks of a 2-rank run, across restarts",
          "[dashboard][launch][mpi]") {
  const std::string exe = find_chromium();
  if (exe.empty())
    FAIL(
        "the dashboard test needs headless Chromium, and neither chromium nor chromium-browser is on PATH: "
        "install Debian's chromium package (scripts/setup does) or set DPTRAIN_CHROMIUM");
  TempDir dir;
  SynthOptions s;  // two spirals: the loss falls over hundreds of steps, not in the first few
  s.kind = "spirals";
  s.n = 1200;
  write_dataset_file(dir.file("data.h5"), synthesize(s));
  const std::string config = dir.file("c.toml");
  write_text(config, "seed = 3\n[data]\ntrain = \"" + dir.file("data.h5") +
                         "\"\nvalidation_fraction = 0.2\n[model]\nkind = \"mlp\"\nhidden = [32, 32]\n"
                         "[optim]\nkind = \"adam\"\nlr = 0.01\n[schedule]\nkind = \"step\"\nstep_epochs = 3\n"
                         "gamma = 0.5\nwarmup_steps = 30\n[train]\nbatch_size = 32\nepochs = 500\n"
                         "progress = false\nlog_every = 3\n[checkpoint]\nevery_steps = 20\n"
                         "[coordinator]\nheartbeat_s = 0.05\nhttp_port = 0\n");
  const std::vector<std::string> argv = {dptrain_binary(),
                                         "launch",
                                         "-n",
                                         "2",
                                         "--max-restarts",
                                         "3",
                                         config,
                                         "--set",
                                         "out_dir=\"" + dir.file("run") + "\""};
  const auto has_event = [](const nlohmann::json& h, const std::string& event) {
    for (const auto& e : h["events"])
      if (e.value("event", "") == event) return true;
    return false;
  };

  int64_t stopped_at = 0;
  std::vector<int64_t> old_pids;
  {
    LaunchedJob job(argv, dir.file("first.log"));
    // Some steps, a finished epoch (validation curves) and a checkpoint.
    nlohmann::json h = job.wait_for(45, {}, [&](const nlohmann::json& h) {
      return steps_of(h, "step").size() >= 10 && !steps_of(h, "epoch").empty() && has_event(h, "checkpoint");
    });
    const std::string url = "http://127.0.0.1:" + std::to_string(job.port) + "/";
    CliResult dom = chromium(exe, dir, url);
    INFO("chromium exit " << dom.exit_code << "\n" << dom.err.substr(0, 2000) << "\nDOM:\n" << dom.out);
    REQUIRE(dom.exit_code == 0);
    CHECK(has(dom.out, "<body data-state=\"live\""));
    CHECK(curve_points(dom.out, "step", "loss") >= 10);
    CHECK(curve_points(dom.out, "step", "accuracy") >= 10);
    CHECK(curve_points(dom.out, "step", "lr") >= 10);
    CHECK(curve_points(dom.out, "step", "samples_per_s") >= 10);
    CHECK(curve_points(dom.out, "epoch", "val_loss") >= 1);
    CHECK(curve_points(dom.out, "epoch", "val_accuracy") >= 1);
    CHECK(curve_points(dom.out, "step", "d_loss") == -1);  // not a GAN: no GAN chart
    CHECK(has(dom.out, "<tr data-rank=\"0\""));
    CHECK(has(dom.out, "<tr data-rank=\"1\""));
    CHECK(!has(dom.out, "data-rank=\"2\""));
    CHECK(has(dom.out, "<tr data-event=\"checkpoint\""));
    CHECK(has(dom.out, "class=\"mark mark-checkpoint\""));

    // A worker killed: the supervisor restarts the job from its checkpoint; the history keeps the
    // steps before and shows each step once.
    const int64_t killed_at = steps_of(h, "step").back();
    old_pids = job.workers;
    ::kill(static_cast<pid_t>(job.workers[1]), SIGKILL);
    h = job.wait_for(killed_at + 10, old_pids, [&](const nlohmann::json& h) {
      return has_event(h, "restart") && steps_of(h, "step").back() > killed_at + 10;
    });
    std::vector<int64_t> steps = steps_of(h, "step");
    CHECK(steps.front() == 3);
    CHECK(std::adjacent_find(steps.begin(), steps.end(), std::greater_equal<int64_t>()) == steps.end());
    dom = chromium(exe, dir, url);
    CHECK(has(dom.out, "<tr data-event=\"restart\""));
    CHECK(has(dom.out, "class=\"mark mark-restart\""));
    CHECK(curve_points(dom.out, "step", "loss") >= static_cast<int64_t>(steps.size()));
    CHECK(has(dom.out, "<tr data-rank=\"1\""));

    // The screenshot (kept where $DPTRAIN_KEEP_SCREENSHOT says): curves, ranks, a restart.
    const std::string png = dir.file("dashboard.png");
    CliResult shot = chromium(exe, dir, url, png);
    INFO(shot.err.substr(0, 2000));
    REQUIRE(shot.exit_code == 0);
    const std::string bytes = read_text(png);
    CHECK(bytes.size() > 20000);
    CHECK(bytes.substr(0, 8) == "\x89PNG\r\n\x1a\n");
    if (const char* keep = std::getenv("DPTRAIN_KEEP_SCREENSHOT"); keep && *keep)
      std::filesystem::copy_file(png, keep, std::filesystem::copy_options::overwrite_existing);

    // Pre-empted: the supervisor checkpoints and exits with the requeue code.
    stopped_at = steps.back();
    CHECK(job.stop(SIGUSR1) == 75);
  }
  {
    // The same command again: a new supervisor and coordinator, which reads what the first one
    // showed from the run's metrics file when rank 0 announces itself.
    LaunchedJob job(argv, dir.file("second.log"));
    nlohmann::json h = job.wait_for(stopped_at + 6, old_pids, [&](const nlohmann::json& h) {
      return has_event(h, "start") && !steps_of(h, "step").empty() && steps_of(h, "step").back() > stopped_at;
    });
    INFO(h.dump().substr(0, 4000));
    const std::vector<int64_t> steps = steps_of(h, "step");
    CHECK(steps.front() == 3);  // from the first supervisor's run
    CHECK(std::adjacent_find(steps.begin(), steps.end(), std::greater_equal<int64_t>()) == steps.end());
    bool found = false, read = false;
    for (const auto& e : h["events"]) {
      found = found || (e.value("event", "") == "checkpoint" && e.value("found_at_start", 0) == 1);
      read = read || (e.value("event", "") == "start" && e.value("records_from_file", 0) > 10);
    }
    CHECK(found);
    CHECK(read);
    CliResult dom = chromium(exe, dir, "http://127.0.0.1:" + std::to_string(job.port) + "/");
    CHECK(curve_points(dom.out, "step", "loss") >= static_cast<int64_t>(steps.size()));
    CHECK(has(dom.out, "<tr data-rank=\"0\""));
    CHECK(has(dom.out, "<tr data-rank=\"1\""));
    CHECK(job.stop(SIGUSR1) == 75);
  }
}
