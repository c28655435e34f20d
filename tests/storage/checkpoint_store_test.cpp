// The checkpoint directory: atomic files and a latest pointer, only the newest K kept, a damaged
// newest checkpoint skipped in favour of the previous good one (reported), and loads that name
// what does not match the model being resumed.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "models/core/Hash.h"
#include "storage/checkpoint/CheckpointFile.h"
#include "storage/checkpoint/CheckpointStore.h"
#include "storage/checkpoint/StateFields.h"
#include "storage/dataset/Synthesize.h"
#include "support/TestSupport.h"

using namespace dptrain;
using namespace dptrain::test;

namespace {

std::string setup(const TempDir& dir, const std::string& model = "kind = \"mlp\"\nhidden = [8]") {
  SynthOptions s;
  s.kind = "blobs";
  s.n = 400;
  write_dataset_file(dir.file("data.h5"), synthesize(s));
  std::string cfg = "seed = 2\nout_dir = \"" + dir.file("run") + "\"\n[data]\ntrain = \"" + dir.file("data.h5") +
                    "\"\n[model]\n" + model +
                    "\n[optim]\nkind = \"momentum\"\n[train]\nbatch_size = 20\nepochs = 3\nprogress = false\n" +
                    "[checkpoint]\nevery_steps = 10\nkeep = 2\n";
  write_text(dir.file("c.toml"), cfg);
  return dir.file("c.toml");
}

}  // namespace

TEST_CASE("checkpoints: every K steps, the last K kept, latest points at the newest", "[checkpoint]") {
  TempDir dir;
  std::string cfg = setup(dir);
  CliResult r = run_cli({"train", cfg});
  REQUIRE(r.exit_code == 0);
  CheckpointStore store(dir.file("run/checkpoints"), 2);
  auto files = store.list();
  REQUIRE(files.size() == 2);  // 60 steps, every 10, keep 2
  CHECK(files[0].find(CheckpointStore::file_name(60)) != std::string::npos);
  CHECK(files[1].find(CheckpointStore::file_name(50)) != std::string::npos);
  CHECK(read_text(dir.file("run/checkpoints/latest")) == CheckpointStore::file_name(60) + "\n");
  for (const auto& e : std::filesystem::directory_iterator(dir.file("run/checkpoints")))
    CHECK(e.path().filename().string().find(".tmp") == std::string::npos);  // no temporaries left
  CliResult inspect = run_cli({"checkpoint", "inspect", files[0]});
  CHECK(inspect.exit_code == 0);
  CHECK(inspect.out.find("step 60") != std::string::npos);
  CHECK(inspect.out.find("/params/00_dense/weight [8, 2]") != std::string::npos);
  CHECK(inspect.out.find("/optimizer/momentum/00_dense/weight") != std::string::npos);
  CHECK(inspect.out.find("all checksums verified") != std::string::npos);
}

TEST_CASE("a damaged latest checkpoint is reported and the previous good one is used", "[checkpoint]") {
  TempDir dir;
  std::string cfg = setup(dir);
  REQUIRE(run_cli({"train", cfg, "--set", "train.epochs=2"}).exit_code == 0);  // checkpoints at 30 and 40
  const std::string newest = dir.file("run/checkpoints/" + CheckpointStore::file_name(40));
  std::string bytes = read_text(newest);
  bytes[bytes.size() / 3] = static_cast<char>(bytes[bytes.size() / 3] ^ 0x01);
  write_text(newest, bytes);
  CliResult r = run_cli({"train", cfg, "--resume"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("warning: skipping a damaged checkpoint") != std::string::npos);
  CHECK(r.out.find(CheckpointStore::file_name(40)) != std::string::npos);
  CHECK(r.out.find("resumed from " + dir.file("run/checkpoints/" + CheckpointStore::file_name(30)) + " at step 30") !=
        std::string::npos);
}

TEST_CASE("resuming names what does not match", "[checkpoint]") {
  TempDir dir;
  std::string cfg = setup(dir);
  REQUIRE(run_cli({"train", cfg, "--set", "train.epochs=1"}).exit_code == 0);
  CliResult other = run_cli({"train", cfg, "--resume", "--set", "model.hidden=[9]"});
  CHECK(other.exit_code == 2);
  CHECK(other.err.find("saved from a different model") != std::string::npos);
  CliResult optim = run_cli({"train", cfg, "--resume", "--set", "optim.kind=\"adam\""});
  CHECK(optim.exit_code == 2);
  CHECK(optim.err.find("has no optimizer/adam_m state: it was saved with another optimizer") != std::string::npos);
  CliResult seed = run_cli({"train", cfg, "--resume", "--set", "seed=3"});
  CHECK(seed.exit_code == 2);
  CHECK(seed.err.find("saved with seed 2, the config has seed 3") != std::string::npos);
  CliResult batch = run_cli({"train", cfg, "--resume", "--set", "train.batch_size=7"});
  CHECK(batch.exit_code == 2);
  CHECK(batch.err.find("does not fit this data and batch size") != std::string::npos);
  CliResult missing = run_cli({"train", cfg, "--resume", dir.file("nope.h5")});
  CHECK(missing.exit_code == 2);
  CHECK(missing.err.find("nope.h5") != std::string::npos);
  // Extending the run is allowed: the config differs only in the number of epochs.
  CliResult longer = run_cli({"train", cfg, "--resume", "--set", "train.epochs=2"});
  INFO(longer.err);
  CHECK(longer.exit_code == 0);
  CHECK(longer.out.find("note: the config differs") != std::string::npos);
  CHECK(longer.out.find("epoch 2/2") != std::string::npos);
}

TEST_CASE("saves back to back: the newest K survive the background removal, latest resolves", "[checkpoint]") {
  TempDir dir;
  CheckpointState s;
  s.config_text = "x";
  s.config_hash = stable_hash(s.config_text);
  ParamInfo p{"w", Shape{300, 200}, 0};
  s.flats.push_back({"params", {p}, std::vector<float>(60000, 0.25f)});
  s.scalars.emplace_back("cursor_epoch", 0.0);
  std::string last;
  {
    CheckpointStore store(dir.file("ckpt"), 2);
    for (int64_t step = 1; step <= 6; ++step) {
      s.step = step;
      last = store.save(s);
    }
    auto files = store.list();  // waits for the removal still running
    REQUIRE(files.size() == 2);
    CHECK(files[0] == last);
    CHECK(files[1].find(CheckpointStore::file_name(5)) != std::string::npos);
    CHECK(store.resolve("latest").path == last);
  }
  // What was written reads back whole.
  CheckpointState back = read_checkpoint_file(last, {{"params", {p}, 60000, true}});
  CHECK(back.step == 6);
  CHECK(back.flat("params").data == s.flats[0].data);
}

namespace {

// A piece of saved state of every field type, declared once.
struct Piece {
  int64_t count = 0;
  uint64_t seed = 0;
  bool flag = false;
  double real = 0.0;
  double sums[3] = {};
  std::vector<float> floats;
  std::vector<int64_t> rows;
  std::vector<int32_t> labels;
  std::string text;

  template <class Fields>
  void fields(Fields& f) {
    f("count", count);
    f("seed", seed);
    f("flag", flag);
    f("real", real);
    f("sums", sums);
    f("floats", floats);
    f("rows", rows);
    f("labels", labels);
    f("text", text);
  }
};

CheckpointState minimal_state() {
  CheckpointState s;
  s.config_text = "x";
  s.config_hash = stable_hash(s.config_text);
  return s;
}

}  // namespace

TEST_CASE("saved fields: one declaration writes and reads every type exactly, integers as int64", "[checkpoint]") {
  TempDir dir;
  for (uint64_t seed : {uint64_t{0}, ~uint64_t{0}, (uint64_t{1} << 53) + 1, (uint64_t{1} << 63) - 1}) {
    INFO("seed " << seed);
    Piece out{INT64_MIN, seed, true, -0.1, {1.5, -2.0, 1e300}, {0.5f, -1.0f}, {3, INT64_MAX}, {-7, 9}, "gan"};
    CheckpointState s = minimal_state();
    save_fields(s, out);
    write_checkpoint_file(dir.file("f.h5"), s, false);
    const CheckpointState back = read_checkpoint_file(dir.file("f.h5"), {});
    Piece in;
    restore_fields(back, in);
    CHECK(in.count == INT64_MIN);
    CHECK(in.seed == seed);
    CHECK(in.flag);
    CHECK(in.real == -0.1);
    CHECK((in.sums[0] == 1.5 && in.sums[1] == -2.0 && in.sums[2] == 1e300));
    CHECK(in.floats == out.floats);
    CHECK(in.rows == out.rows);
    CHECK(in.labels == out.labels);
    CHECK(in.text == "gan");
    CHECK(back.has_int_array("seed"));  // an integer, not a double
    CHECK(!back.has_scalar("seed"));
  }
}

TEST_CASE("saved fields: a missing field names the checkpoint and the field", "[checkpoint]") {
  CheckpointState s = minimal_state();
  s.source = "old.h5";
  s.ints.emplace_back("count", std::vector<int64_t>{4});
  Piece in;
  try {
    restore_fields(s, in);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("old.h5") != std::string::npos);
    CHECK(std::string(e.what()).find("'seed'") != std::string::npos);
  }
}

TEST_CASE("checkpoint format versions: version 1 (numbers as doubles) loads, an unknown version is refused",
          "[checkpoint]") {
  TempDir dir;
  // Version 1 kept integers in /scalars as doubles.
  CheckpointState old = minimal_state();
  old.version = 1;
  old.scalars = {{"count", 42.0}, {"seed", 7.0},   {"flag", 1.0},  {"real", 0.25},
                 {"sums_0", 1.0}, {"sums_1", 2.0}, {"sums_2", 3.0}};
  old.floats.emplace_back("floats", std::vector<float>{1.0f});
  old.ints.emplace_back("rows", std::vector<int64_t>{1, 2});
  old.ints.emplace_back("labels", std::vector<int64_t>{0, 1});
  old.strings.emplace_back("text", "t");
  write_checkpoint_file(dir.file("v1.h5"), old, false);
  const CheckpointState back = read_checkpoint_file(dir.file("v1.h5"), {});
  CHECK(back.version == 1);
  Piece in;
  restore_fields(back, in);
  CHECK(in.count == 42);
  CHECK(in.seed == 7);
  CHECK(in.flag);
  CHECK(in.real == 0.25);
  // Fields added late in format 1's life are absent from its older files: 0 and empty.
  CheckpointState older = old;
  older.source = "older.h5";
  older.scalars.erase(older.scalars.begin());  // count
  older.floats.clear();
  Piece from_older;
  restore_fields(older, from_older);
  CHECK(from_older.count == 0);
  CHECK(from_older.floats.empty());

  CheckpointState future = minimal_state();
  future.version = 99;
  write_checkpoint_file(dir.file("v99.h5"), future, false);
  try {
    read_checkpoint_file(dir.file("v99.h5"), {});
    FAIL("no error");
  } catch (const Error& e) {
    const std::string m = e.what();
    CHECK(m.find("v99.h5") != std::string::npos);
    CHECK(m.find("version 99") != std::string::npos);
    CHECK(m.find("newer dptrain") != std::string::npos);
  }
}
