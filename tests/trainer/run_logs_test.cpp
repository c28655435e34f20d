// The run's logs beyond metrics.jsonl (docs/observability.md): TensorBoard event files and the
// CSV. Decoded by an independent reader — Python's crc32c and protobuf packages, the Event and
// Summary messages declared from TensorFlow's field numbers — which checks every frame's CRCs, the
// tags and that each series' steps only increase, before and after a kill and --resume.
#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "storage/checkpoint/CheckpointStore.h"
#include "storage/dataset/Synthesize.h"
#include "support/JsonSupport.h"
#include "support/TestSupport.h"
#include "trainer/EventFile.h"

using namespace dptrain;
using namespace dptrain::test;

namespace {

// Checks every event file of a run; prints "events N tags T steps S" and "csv N", exits 1 with a
// message on the first problem.
const char* check_logs = R"(
import crc32c, glob, os, struct, sys, csv, json
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
F = descriptor_pb2.FieldDescriptorProto
fdp = descriptor_pb2.FileDescriptorProto(name='event_check.proto', package='tensorflow')
def message(name, fields):
    m = fdp.message_type.add(name=name)
    for fname, number, ftype, label, type_name in fields:
        f = m.field.add(name=fname, number=number, type=ftype, label=label)
        if type_name: f.type_name = type_name
message('Value', [('tag', 1, F.TYPE_STRING, F.LABEL_OPTIONAL, None),
                  ('simple_value', 2, F.TYPE_FLOAT, F.LABEL_OPTIONAL, None)])
message('Summary', [('value', 1, F.TYPE_MESSAGE, F.LABEL_REPEATED, '.tensorflow.Value')])
message('Event', [('wall_time', 1, F.TYPE_DOUBLE, F.LABEL_OPTIONAL, None),
                  ('step', 2, F.TYPE_INT64, F.LABEL_OPTIONAL, None),
                  ('file_version', 3, F.TYPE_STRING, F.LABEL_OPTIONAL, None),
                  ('summary', 5, F.TYPE_MESSAGE, F.LABEL_OPTIONAL, '.tensorflow.Summary')])
pool = descriptor_pool.DescriptorPool()
pool.Add(fdp)
desc = pool.FindMessageTypeByName('tensorflow.Event')
Event = (message_factory.GetMessageClass(desc) if hasattr(message_factory, 'GetMessageClass')
         else message_factory.MessageFactory(pool).GetPrototype(desc))
def masked(data):
    c = crc32c.crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xa282ead8) & 0xffffffff
run = sys.argv[1]
files = sorted(glob.glob(os.path.join(run, 'tensorboard', 'events.out.tfevents.*')))
if not files: sys.exit('no event files')
last = {}
events = 0
for path in files:
    data = open(path, 'rb').read()
    at = 0
    first = True
    while at < len(data):
        (n,) = struct.unpack_from('<Q', data, at)
        (len_crc,) = struct.unpack_from('<I', data, at + 8)
        if len_crc != masked(data[at:at + 8]): sys.exit('%s: bad length CRC at %d' % (path, at))
        body = data[at + 12:at + 12 + n]
        (body_crc,) = struct.unpack_from('<I', data, at + 12 + n)
        if body_crc != masked(body): sys.exit('%s: bad data CRC at %d' % (path, at))
        at += 16 + n
        e = Event()
        e.ParseFromString(body)
        if first:
            if e.file_version != 'brain.Event:2': sys.exit('%s: first event is not the file version' % path)
            first = False
            continue
        for v in e.summary.value:
            if '/' not in v.tag: sys.exit('bad tag ' + v.tag)
            if v.tag in last and e.step <= last[v.tag]:
                sys.exit('%s: tag %s step %d after %d' % (path, v.tag, e.step, last[v.tag]))
            last[v.tag] = e.step
            events += 1
for tag in ('train/loss', 'train/accuracy', 'train/lr', 'epoch/train_loss', 'epoch/val_loss', 'test/accuracy'):
    if tag not in last: sys.exit('missing tag ' + tag)
print('events %d tags %d steps %d' % (events, len(last), last['train/loss']))
rows = 0
seen = {}
with open(os.path.join(run, 'metrics.csv')) as f:
    for r in csv.DictReader(f):
        key = (r['event'], r['name'])
        step = int(r['step'])
        if key in seen and step <= seen[key]: sys.exit('csv %s step %d after %d' % (key, step, seen[key]))
        seen[key] = step
        float(r['value'])
        rows += 1
print('csv %d' % rows)
by_event = {}
for line in open(os.path.join(run, 'metrics.jsonl')):
    r = json.loads(line)
    if 'step' not in r: continue
    if r['event'] in by_event and r['step'] <= by_event[r['event']]:
        sys.exit('jsonl %s step %d after %d' % (r['event'], r['step'], by_event[r['event']]))
    by_event[r['event']] = r['step']
print('resumes %d' % sum(1 for line in open(os.path.join(run, 'metrics.jsonl')) if '"resume"' in line))
)";

CliResult check(const std::string& run) { return run_program({"/usr/bin/python3", "-c", check_logs, run}); }

}  // namespace

TEST_CASE("TensorBoard and CSV logs decode, and steps only increase after a kill and --resume",
          "[metrics][tensorboard]") {
  TempDir dir;
  write_dataset_file(dir.file("data.h5"), synthesize({.kind = "blobs", .n = 600, .seed = 3, .classes = 3, .dim = 4}));
  const int64_t steps = 90, every = 10, kill_step = 47;
  write_text(dir.file("c.toml"), "seed = 2\n[data]\ntrain = \"" + dir.file("data.h5") +
                                     "\"\nvalidation_fraction = 0.1\ntest_fraction = 0.1\n[model]\nkind = \"mlp\"\n"
                                     "hidden = [16]\n[train]\nbatch_size = 16\nepochs = 10\nmax_steps = " +
                                     std::to_string(steps) +
                                     "\nlog_every = 5\nprogress = false\n[log]\n"
                                     "tensorboard = true\ncsv = true\n[checkpoint]\nevery_steps = " +
                                     std::to_string(every) + "\n");
  const std::string run = dir.file("run");
  // Killed at step 47: it logged steps 45 and 47's epoch records past its checkpoint at step 40.
  CHECK(train_until_killed(dir.file("c.toml"), run, kill_step, kill_step / every * every) == 128 + SIGKILL);
  // What the killed run logged: steps beyond the checkpoint it will resume from.
  int64_t beyond = 0;
  for (const auto& e : std::filesystem::directory_iterator(run + "/tensorboard"))
    for (const ScalarEvent& ev : read_event_file(e.path().string(), true)) beyond += ev.step > 40;
  CHECK(beyond > 0);
  CliResult before = check(run);  // a killed run's logs are valid too (no test record yet)
  CHECK(before.err.find("missing tag test/accuracy") != std::string::npos);

  CliResult resumed = run_cli({"train", dir.file("c.toml"), "--set", "out_dir=\"" + run + "\"", "--resume"});
  INFO(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  CliResult after = check(run);
  INFO(after.out << after.err);
  REQUIRE(after.exit_code == 0);
  CHECK(after.out.find("steps 90") != std::string::npos);
  CHECK(after.out.find("resumes 1") != std::string::npos);
  const auto resume = metrics_events(run + "/metrics.jsonl", "resume");
  REQUIRE(resume.size() == 1);
  CHECK(resume[0]["step"] == 40);

  // A fresh run in the same out_dir starts its logs over.
  REQUIRE(run_cli({"train", dir.file("c.toml"), "--set", "out_dir=\"" + run + "\""}).exit_code == 0);
  CliResult fresh = check(run);
  INFO(fresh.err);
  CHECK(fresh.exit_code == 0);
  CHECK(fresh.out.find("resumes 0") != std::string::npos);
}

TEST_CASE("A damaged event frame is named with its file and byte offset", "[metrics][tensorboard]") {
  TempDir dir;
  std::string path;
  {
    EventFileWriter w(dir.file("tb"));
    w.scalar("train/loss", 1, 0.0, 0.5f);
    w.scalar("train/loss", 2, 0.0, 0.25f);
    path = w.path();
  }
  REQUIRE(read_event_file(path, false).size() == 3);
  std::string bytes = read_text(path);
  bytes[bytes.size() - 6] ^= 1;  // inside the last event's data
  write_text(path, bytes);
  CHECK_THROWS_WITH(read_event_file(path, false), Catch::Contains(path) && Catch::Contains("bad data CRC at byte"));
  CHECK(read_event_file(path, true).size() == 2);  // a resume keeps what precedes the damage
  CHECK(drop_events_after(dir.file("tb"), 1) == 0);
  CHECK(read_event_file(path, false).size() == 2);
}

TEST_CASE("A rank slowed by a hook is named a straggler on /status, and the trace has a track per rank",
          "[metrics][trace][mpi]") {
  TempDir dir;
  write_dataset_file(dir.file("data.h5"), synthesize({.kind = "blobs", .n = 1200, .seed = 3, .dim = 8}));
  write_text(dir.file("c.toml"), "seed = 2\nthreads = 1\n[data]\ntrain = \"" + dir.file("data.h5") +
                                     "\"\n[model]\nkind = \"mlp\"\nhidden = [32]\n[train]\nbatch_size = 32\n"
                                     "epochs = 8\nlog_every = 5\nprogress = false\n");
  const std::string trace = dir.file("trace.json"), log = dir.file("run.log");
  // Rank 1's compute phase takes 25 ms more every step: about twice the others' step.
  std::string line;
  for (const std::string& a :
       {std::string("mpirun"), std::string("-np"), std::string("2"), std::string("--oversubscribe"),
        std::string("--bind-to"), std::string("none"), std::string("-x"), std::string("DPTRAIN_TEST_SLOW=1:25"),
        dptrain_binary(), std::string("train"), dir.file("c.toml"), std::string("--set"),
        "out_dir=\"" + dir.file("run") + "\"", std::string("--trace"), trace})
    line += "'" + a + "' ";
  BackgroundProcess run({"sh", "-c", "exec " + line + " > " + log + " 2>&1"});
  // /status names it within 30 s (3 log intervals of 5 steps after the start).
  nlohmann::json status;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    const int port = status_port(read_text(log));
    if (port > 0) status = nlohmann::json::parse(http_get(port, "/status"), nullptr, false);
    if (status.is_object() && status["stragglers"] == nlohmann::json::array({1})) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  INFO(status.dump());
  CHECK(status["stragglers"] == nlohmann::json::array({1}));
  if (status.is_object() && status["ranks"].size() == 2) {
    CHECK(status["ranks"][1]["straggler"] == true);
    CHECK(status["ranks"][1]["compute_ms"].get<double>() > 20.0);
    CHECK(http_get(status_port(read_text(log)), "/metrics")
              .find("dptrain_step_phase_seconds{rank=\"1\",phase=\"compute\"}") != std::string::npos);
  }
  const int code = run.wait();
  const std::string out = read_text(log);
  INFO(out);
  REQUIRE(code == 0);
  CHECK(out.find("straggler: rank 1 is busy") != std::string::npos);
  const auto steps = metrics_events(dir.file("run/metrics.jsonl"), "step");
  REQUIRE(!steps.empty());
  CHECK(steps.back()["stragglers"] == "1");
  CHECK(steps.back()["slowest_rank"] == 1);
  CHECK(steps.back()["allreduce_ms"].get<double>() > 15.0);  // rank 0 waits for rank 1 in the all-reduce
  CliResult py = run_program({"/usr/bin/python3", "-c",
                              "import json, sys\n"
                              "t = json.load(open(sys.argv[1]))['traceEvents']\n"
                              "tracks = {e['tid'] for e in t if e['ph'] == 'X'}\n"
                              "names = {e['args']['name'] for e in t if e['ph'] == 'M'}\n"
                              "phases = {e['name'] for e in t if e['ph'] == 'X'}\n"
                              "slow = sum(e['dur'] for e in t if e['ph'] == 'X' and e['tid'] == 1 and "
                              "e['name'] == 'compute')\n"
                              "fast = sum(e['dur'] for e in t if e['ph'] == 'X' and e['tid'] == 0 and "
                              "e['name'] == 'compute')\n"
                              "print(sorted(tracks), sorted(names), sorted(phases), slow > 10 * fast)\n",
                              trace});
  INFO(py.err);
  REQUIRE(py.exit_code == 0);
  CHECK(py.out.find("[0, 1] ['rank 0', 'rank 1'] ['allreduce', 'compute', 'data', 'optimizer'] True") !=
        std::string::npos);
}
