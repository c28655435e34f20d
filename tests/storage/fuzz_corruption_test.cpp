// Hundreds of damaged dataset and checkpoint files — truncated, bit-flipped, overwritten with
// garbage, wrong types, missing datasets, absurd shapes, huge claimed sizes — are each rejected
// by the CLI with exit code 2 and one message naming the file, never a crash (CI also runs this
// under AddressSanitizer and UBSan), and nothing is written next to them.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "models/core/Philox.h"
#include "storage/checkpoint/CheckpointFile.h"
#include "storage/dataset/Synthesize.h"
#include "storage/hdf5/H5.h"
#include "support/TestSupport.h"

using namespace dptrain;
using namespace dptrain::test;

namespace {

std::string read_bytes(const std::string& path) { return read_text(path); }

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

struct Outcome {
  int rejected = 0;
  int total = 0;
};

// Runs `args` (with FILE replaced) on a damaged file in its own directory and checks the outcome.
void expect_rejected(const std::string& label, const std::string& bytes, const std::vector<std::string>& args,
                     Outcome& outcome) {
  TempDir dir;
  const std::string file = dir.file("damaged.h5");
  write_bytes(file, bytes);
  std::vector<std::string> argv;
  for (const auto& a : args) argv.push_back(a == "FILE" ? file : a);
  auto before = dir.entries();
  CliResult r = run_cli(argv, dir.path(), 60);
  INFO(label << ": exit " << r.exit_code << ", stderr: " << r.err);
  ++outcome.total;
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("damaged.h5") != std::string::npos);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(dir.entries() == before);  // nothing written next to it
  outcome.rejected += r.exit_code == 2;
}

// Byte-level damage of a good file: truncations, bit flips, garbage runs.
void damage_bytes(const std::string& good, const std::vector<std::string>& args, uint32_t seed, Outcome& outcome) {
  Philox rng(seed, RandomPurpose::synth, 1);
  const size_t n = good.size();
  for (size_t cut : {size_t{0}, size_t{1}, size_t{8}, size_t{511}, size_t{512}, size_t{520}, n / 2, n - 1})
    expect_rejected("truncated to " + std::to_string(cut), good.substr(0, cut), args, outcome);
  for (int i = 0; i < 52; ++i) {
    size_t cut = 1 + static_cast<size_t>(rng.below(n - 1));
    expect_rejected("truncated to " + std::to_string(cut), good.substr(0, cut), args, outcome);
  }
  for (int i = 0; i < 100; ++i) {
    std::string b = good;
    int flips = 1 + static_cast<int>(rng.below(4));
    std::string where;
    for (int f = 0; f < flips; ++f) {
      size_t pos = static_cast<size_t>(rng.below(n));
      b[pos] = static_cast<char>(b[pos] ^ (1 << rng.below(8)));
      where += " " + std::to_string(pos);
    }
    expect_rejected("bits flipped at" + where, b, args, outcome);
  }
  for (int i = 0; i < 20; ++i) {
    std::string b = good;
    size_t pos = static_cast<size_t>(rng.below(n)), len = 1 + static_cast<size_t>(rng.below(64));
    for (size_t k = pos; k < std::min(n, pos + len); ++k) b[k] = static_cast<char>(rng.below(256));
    if (b == good) continue;
    expect_rejected("garbage at " + std::to_string(pos), b, args, outcome);
  }
}

// A dataset file whose /x and /y are written by hand to break one rule.
std::string crafted_dataset(const TempDir& dir, const std::function<void(hid_t)>& write) {
  const std::string path = dir.file("crafted.h5");
  {
    h5_quiet();
    H5Id f = h5_file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), path);
    write(f);
  }
  return read_bytes(path);
}

// A dataset with `dims` declared but never written (chunked: no storage is allocated).
void declare_only(hid_t f, const char* name, std::vector<hsize_t> dims, hid_t type) {
  H5Id space = h5_dataspace(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), name);
  H5Id dcpl = h5_plist(H5Pcreate(H5P_DATASET_CREATE), name);
  std::vector<hsize_t> chunk(dims.size(), 1);
  H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data());
  H5Id ds = h5_dataset(H5Dcreate2(f, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT), name);
}

}  // namespace

TEST_CASE("damaged dataset files are rejected with exit code 2", "[fuzz][storage]") {
  TempDir dir;
  SynthOptions s;
  s.kind = "blobs";
  s.n = 64;
  s.dim = 8;
  write_dataset_file(dir.file("good.h5"), synthesize(s));
  const std::string good = read_bytes(dir.file("good.h5"));
  REQUIRE(run_cli({"data", "inspect", dir.file("good.h5")}).exit_code == 0);
  Outcome o;
  damage_bytes(good, {"data", "inspect", "FILE"}, 11, o);

  std::vector<float> x(64 * 8, 0.5f);
  std::vector<int32_t> y(64, 1);
  const std::vector<std::pair<std::string, std::function<void(hid_t)>>> crafted = {
      {"x of integers",
       [&](hid_t f) {
         std::vector<int32_t> xi(64 * 8, 1);
         h5_write_ints(f, "x", {64, 8}, xi.data());
         h5_write_ints(f, "y", {64}, y.data());
       }},
      {"x of strings",
       [&](hid_t f) {
         H5Id t = h5_datatype(H5Tcopy(H5T_C_S1), "t");
         H5Tset_size(t, 8);
         declare_only(f, "x", {64, 8}, t);
       }},
      {"no x", [&](hid_t f) { h5_write_ints(f, "y", {64}, y.data()); }},
      {"x of rank 1", [&](hid_t f) { h5_write_floats(f, "x", {512}, x.data()); }},
      {"x of rank 7",
       [&](hid_t f) {
         h5_write_floats(f, "x", {2, 2, 2, 2, 2, 2, 8}, x.data());
       }},
      {"y shorter than x",
       [&](hid_t f) {
         h5_write_floats(f, "x", {64, 8}, x.data());
         h5_write_ints(f, "y", {32}, y.data());
       }},
      {"y of rank 3",
       [&](hid_t f) {
         h5_write_floats(f, "x", {8, 8, 8}, x.data());
         h5_write_floats(f, "y", {8, 4, 2}, x.data());
       }},
      {"huge claimed rows",
       [&](hid_t f) {
         declare_only(f, "x", {hsize_t{1} << 38, 8}, H5T_IEEE_F32LE);
       }},
      {"absurd feature dimension",
       [&](hid_t f) {
         declare_only(f, "x", {4, hsize_t{1} << 33}, H5T_IEEE_F32LE);
       }},
      {"huge claimed labels",
       [&](hid_t f) {
         h5_write_floats(f, "x", {64, 8}, x.data());
         declare_only(f, "y", {64, hsize_t{1} << 32}, H5T_IEEE_F32LE);
       }},
      {"zero rows",
       [&](hid_t f) {
         declare_only(f, "x", {0, 8}, H5T_IEEE_F32LE);
       }},
      {"negative num_classes",
       [&](hid_t f) {
         h5_write_floats(f, "x", {64, 8}, x.data());
         h5_write_ints(f, "y", {64}, y.data());
         h5_write_int_attribute(f, "num_classes", -3);
       }},
      {"wrong format tag",
       [&](hid_t f) {
         h5_write_floats(f, "x", {64, 8}, x.data());
         h5_write_string_attribute(f, "format", "dptrain-dataset/9");
       }},
      {"labeled mask of the wrong length",
       [&](hid_t f) {
         h5_write_floats(f, "x", {64, 8}, x.data());
         std::vector<uint8_t> m(10, 1);
         h5_write_bytes(f, "labeled", {10}, m.data());
       }},
      {"x as a group", [&](hid_t f) { h5_make_groups(f, "x"); }},
  };
  for (const auto& [label, write] : crafted) {
    std::string bytes = crafted_dataset(dir, write);
    expect_rejected(label + " (inspect)", bytes, {"data", "inspect", "FILE"}, o);
  }
  CHECK(o.rejected == o.total);
  CHECK(o.total >= 190);
}

TEST_CASE("damaged checkpoint files are rejected with exit code 2", "[fuzz][checkpoint]") {
  TempDir dir;
  SynthOptions s;
  s.kind = "blobs";
  s.n = 200;
  write_dataset_file(dir.file("data.h5"), synthesize(s));
  write_text(dir.file("c.toml"),
             "seed = 1\nout_dir = \"" + dir.file("run") + "\"\n[data]\ntrain = \"" + dir.file("data.h5") +
                 "\"\n[model]\nkind = \"mlp\"\nhidden = [8]\n" +
                 "[optim]\nkind = \"adam\"\n[train]\nepochs = 1\nbatch_size = 20\nprogress = false\n");
  REQUIRE(run_cli({"train", dir.file("c.toml")}).exit_code == 0);
  const std::string ckpt = dir.file("run/checkpoints/ckpt-0000000010.h5");
  const std::string good = read_bytes(ckpt);
  REQUIRE(run_cli({"checkpoint", "inspect", ckpt}).exit_code == 0);
  Outcome o;
  damage_bytes(good, {"checkpoint", "inspect", "FILE"}, 12, o);
  // Resuming from a damaged file named on the command line is refused too.
  std::string flipped = good;
  flipped[good.size() / 2] = static_cast<char>(flipped[good.size() / 2] ^ 0x10);
  expect_rejected("resume from a flipped file", flipped, {"train", dir.file("c.toml"), "--resume", "FILE"}, o);

  // Well-formed checkpoints that do not fit the model: each named on resume.
  CheckpointState base = read_checkpoint_file(ckpt, {});
  const auto layout_of = [&](std::vector<int64_t> shape) {
    return std::vector<ParamInfo>{{"00_dense/weight", Shape(shape), 0}};
  };
  std::vector<std::pair<std::string, CheckpointState>> wrong;
  {
    CheckpointState c = base;
    c.flats.push_back({"params", layout_of({8, 3}), std::vector<float>(24, 0.0f)});
    wrong.emplace_back("a parameter of another shape", c);
  }
  {
    CheckpointState c = base;
    c.layout_hash ^= 1;
    wrong.emplace_back("another model's layout", c);
  }
  {
    CheckpointState c = base;
    c.config_text += "\n# edited";  // the stored hash no longer matches the text
    wrong.emplace_back("config text that does not match its hash", c);
  }
  for (auto& [label, c] : wrong) {
    write_checkpoint_file(dir.file("wrong.h5"), c);
    expect_rejected(label, read_bytes(dir.file("wrong.h5")), {"train", dir.file("c.toml"), "--resume", "FILE"}, o);
  }
  CHECK(o.rejected == o.total);
  CHECK(o.total >= 180);
}
