// Synthetic datasets (shapes, balance, determinism, the geometry each kind promises), CSV, .npy and
// text import with their rejections, per-step labels [N, T] through file and reader, and the inspect
// report. The .npy files are built byte by byte here so the parser is checked against the format,
// not against our own writer.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "models/core/Error.h"
#include "storage/dataset/DatasetFile.h"
#include "storage/dataset/Import.h"
#include "storage/dataset/Synthesize.h"
#include "storage/reader/ShardedReader.h"
#include "support/TestSupport.h"
#include "trainer/DataSplits.h"

using namespace dptrain;
using dptrain::test::run_cli;
using dptrain::test::TempDir;
using dptrain::test::write_text;

namespace {

DatasetContents synth(const std::string& kind, int64_t n = 1000, uint64_t seed = 1) {
  SynthOptions o;
  o.kind = kind;
  o.n = n;
  o.seed = seed;
  return synthesize(o);
}

std::vector<int64_t> class_counts(const DatasetContents& c) {
  std::vector<int64_t> counts(static_cast<size_t>(c.num_classes), 0);
  for (int32_t l : c.labels) ++counts[l];
  return counts;
}

// Solves the small dense system a x = b (row-major, n x n) by Gaussian elimination with pivoting.
std::vector<double> solve(std::vector<double> a, std::vector<double> b) {
  const size_t n = b.size();
  for (size_t k = 0; k < n; ++k) {
    size_t p = k;
    for (size_t i = k + 1; i < n; ++i)
      if (std::fabs(a[i * n + k]) > std::fabs(a[p * n + k])) p = i;
    for (size_t j = 0; j < n; ++j) std::swap(a[k * n + j], a[p * n + j]);
    std::swap(b[k], b[p]);
    for (size_t i = k + 1; i < n; ++i) {
      double f = a[i * n + k] / a[k * n + k];
      for (size_t j = k; j < n; ++j) a[i * n + j] -= f * a[k * n + j];
      b[i] -= f * b[k];
    }
  }
  std::vector<double> x(n);
  for (size_t k = n; k-- > 0;) {
    double s = b[k];
    for (size_t j = k + 1; j < n; ++j) s -= a[k * n + j] * x[j];
    x[k] = s / a[k * n + k];
  }
  return x;
}

// A .npy file: magic, version, little-endian header length, the header dict padded to 64 bytes.
std::string npy_bytes(const std::string& descr, const std::string& shape, const std::string& data, int version = 1,
                      const std::string& fortran = "False") {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }";
  const size_t prefix = version == 1 ? 10 : 12;
  while ((prefix + dict.size() + 1) % 64 != 0) dict += ' ';
  dict += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(version);
  out += '\0';
  const size_t len = dict.size();
  out += static_cast<char>(len & 0xff);
  out += static_cast<char>((len >> 8) & 0xff);
  if (version > 1) out += std::string(2, '\0');
  return out + dict + data;
}

template <class T>
std::string raw_bytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

void write_binary(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

struct KindExpectation {
  std::string kind;
  Shape sample;
  int64_t num_classes;  // 0: regression
};

}  // namespace

TEST_CASE("every synth kind builds with its defaults, balanced and deterministic", "[storage]") {
  const std::vector<KindExpectation> kinds = {
      {"blobs", Shape{2}, 3},      {"moons", Shape{2}, 2},   {"xor", Shape{2}, 2},      {"spirals", Shape{2}, 2},
      {"linear", Shape{5}, 0},     {"ring", Shape{2}, 8},    {"grid", Shape{2}, 25},    {"shapes", Shape{1, 28, 28}, 4},
      {"parity", Shape{20, 1}, 2}, {"sum", Shape{10, 1}, 0}, {"sine", Shape{20, 1}, 0},
  };
  for (const auto& k : kinds) {
    INFO("kind " << k.kind);
    const int64_t n = 1001;
    DatasetContents a = synth(k.kind, n, 7);
    REQUIRE(a.sample_shape == k.sample);
    REQUIRE(a.rows() == n);
    REQUIRE(static_cast<int64_t>(a.x.size()) == n * k.sample.numel());
    REQUIRE(std::all_of(a.x.begin(), a.x.end(), [](float v) { return std::isfinite(v); }));
    if (k.num_classes > 0) {
      REQUIRE(a.label_kind == LabelKind::classes);
      REQUIRE(a.num_classes == k.num_classes);
      REQUIRE(a.labels.size() == static_cast<size_t>(n));
      REQUIRE(std::all_of(a.labels.begin(), a.labels.end(), [&](int32_t l) { return l >= 0 && l < k.num_classes; }));
      std::vector<int64_t> counts = class_counts(a);
      auto [lo, hi] = std::minmax_element(counts.begin(), counts.end());
      REQUIRE(*hi - *lo <= 1);
      REQUIRE(*lo > 0);
    } else {
      REQUIRE(a.label_kind == LabelKind::values);
      REQUIRE(a.target_dim == 1);
      REQUIRE(a.targets.size() == static_cast<size_t>(n));
    }
    DatasetContents same = synth(k.kind, n, 7);
    REQUIRE(same.x == a.x);
    REQUIRE(same.labels == a.labels);
    REQUIRE(same.targets == a.targets);
    DatasetContents other = synth(k.kind, n, 8);
    REQUIRE(other.x != a.x);
  }
}

TEST_CASE("synthetic classification rows are shuffled, not grouped by class", "[storage]") {
  DatasetContents c = synth("blobs", 300);
  int64_t changes = 0;
  for (size_t i = 1; i < c.labels.size(); ++i) changes += c.labels[i] != c.labels[i - 1];
  // Round-robin order would change every row (299); sorted order twice; random order about 2/3.
  REQUIRE(changes > 150);
  REQUIRE(changes < 250);
}

TEST_CASE("moons, xor and spirals have the promised geometry", "[storage]") {
  DatasetContents m = synth("moons", 2000);
  for (int64_t i = 0; i < m.rows(); ++i) {
    REQUIRE(m.x[2 * i] >= -1.5f);
    REQUIRE(m.x[2 * i] <= 2.5f);
    REQUIRE(m.x[2 * i + 1] >= -1.0f);
    REQUIRE(m.x[2 * i + 1] <= 1.5f);
  }
  // The upper moon (class 0) lies mostly above y = 0.25, the lower one mostly below.
  double mean_y[2] = {0, 0};
  for (int64_t i = 0; i < m.rows(); ++i) mean_y[m.labels[i]] += m.x[2 * i + 1] / 1000.0;
  REQUIRE(mean_y[0] > 0.5);
  REQUIRE(mean_y[1] < 0.0);

  DatasetContents x = synth("xor", 2000);
  for (int64_t i = 0; i < x.rows(); ++i) {
    float a = x.x[2 * i], b = x.x[2 * i + 1];
    REQUIRE(std::fabs(a) >= 0.05f);
    REQUIRE(std::fabs(b) >= 0.05f);
    REQUIRE(std::fabs(a) <= 1.0f);
    REQUIRE(x.labels[i] == static_cast<int32_t>((a > 0) != (b > 0)));
  }

  DatasetContents s = synth("spirals", 1000);
  for (int64_t i = 0; i < s.rows(); ++i) REQUIRE(std::hypot(s.x[2 * i], s.x[2 * i + 1]) <= 1.0001f);
}

TEST_CASE("ring and grid modes sit at their centres", "[storage]") {
  DatasetContents r = synth("ring", 4000);
  std::vector<double> sx(8, 0.0), sy(8, 0.0), cnt(8, 0.0);
  for (int64_t i = 0; i < r.rows(); ++i) {
    float a = r.x[2 * i], b = r.x[2 * i + 1];
    REQUIRE(std::fabs(std::hypot(a, b) - 2.0f) < 0.2f);
    sx[r.labels[i]] += a;
    sy[r.labels[i]] += b;
    cnt[r.labels[i]] += 1;
  }
  for (int k = 0; k < 8; ++k) {
    double angle = 2.0 * M_PI * k / 8.0;
    REQUIRE(std::fabs(sx[k] / cnt[k] - 2.0 * std::cos(angle)) < 0.05);
    REQUIRE(std::fabs(sy[k] / cnt[k] - 2.0 * std::sin(angle)) < 0.05);
  }

  SynthOptions o;
  o.kind = "grid";
  o.classes = 9;  // a 3 x 3 grid at {-2, 0, 2}^2
  o.n = 900;
  DatasetContents g = synthesize(o);
  REQUIRE(g.num_classes == 9);
  for (int64_t i = 0; i < g.rows(); ++i) {
    int32_t mode = g.labels[i];
    REQUIRE(std::fabs(g.x[2 * i] - 2.0f * (mode % 3 - 1)) < 0.5f);
    REQUIRE(std::fabs(g.x[2 * i + 1] - 2.0f * (mode / 3 - 1)) < 0.5f);
  }
}

TEST_CASE("linear data: least squares recovers the true weights", "[storage]") {
  DatasetContents c = synth("linear", 2000);
  REQUIRE(c.extras.size() == 1);
  REQUIRE(c.extras[0].first == "true_weights");
  const std::vector<float>& truth = c.extras[0].second;
  const size_t d = 5, m = d + 1;  // features plus a constant column for the bias
  REQUIRE(truth.size() == m);
  std::vector<double> ata(m * m, 0.0), aty(m, 0.0), row(m, 1.0);
  for (int64_t i = 0; i < c.rows(); ++i) {
    for (size_t j = 0; j < d; ++j) row[j] = c.x[i * d + j];
    for (size_t p = 0; p < m; ++p) {
      aty[p] += row[p] * c.targets[i];
      for (size_t q = 0; q < m; ++q) ata[p * m + q] += row[p] * row[q];
    }
  }
  std::vector<double> w = solve(ata, aty);
  for (size_t j = 0; j < m; ++j) {
    INFO("weight " << j);
    REQUIRE(std::fabs(w[j] - truth[j]) < 0.05);
  }
  REQUIRE(std::all_of(truth.begin(), truth.end() - 1, [](float v) { return std::fabs(v) <= 2.0f; }));
  REQUIRE(std::fabs(truth.back()) <= 1.0f);
}

TEST_CASE("shapes images are in [0, 1], differ per class and per image", "[storage]") {
  SynthOptions o;
  o.kind = "shapes";
  o.n = 600;
  o.classes = 6;
  DatasetContents c = synthesize(o);
  REQUIRE(c.num_classes == 6);
  REQUIRE(std::all_of(c.x.begin(), c.x.end(), [](float v) { return v >= 0.0f && v <= 1.0f; }));
  std::vector<double> mean(6, 0.0);
  for (int64_t i = 0; i < c.rows(); ++i) {
    double s = 0.0;
    for (int j = 0; j < 784; ++j) s += c.x[i * 784 + j];
    mean[c.labels[i]] += s / 784.0 / 100.0;
  }
  // Areas for size s: square 4s^2, disc pi s^2, triangle 2s^2, plus about 1.7s^2, ring about 4(s-1).
  REQUIRE(mean[1] > mean[4]);         // square > disc
  REQUIRE(mean[4] > mean[2]);         // disc > triangle
  REQUIRE(mean[1] > mean[3] + 0.05);  // square > plus
  REQUIRE(mean[2] > mean[0]);         // triangle > circle outline
  REQUIRE(std::equal(c.x.begin(), c.x.begin() + 784, c.x.begin() + 784) == false);

  o.noise = 0.0;  // without noise the background is exactly 0 and the shapes exactly 1
  DatasetContents clean = synthesize(o);
  REQUIRE(std::all_of(clean.x.begin(), clean.x.end(), [](float v) { return v == 0.0f || v == 1.0f; }));
  // Every image holds a visible shape (a circle outline of radius 5 already lights ~50 pixels).
  for (int64_t i = 0; i < clean.rows(); ++i) {
    const float* img = &clean.x[i * 784];
    REQUIRE(std::count(img, img + 784, 1.0f) > 20);
  }
}

TEST_CASE("labeled_per_class marks the first rows of each class", "[storage]") {
  SynthOptions o;
  o.kind = "blobs";
  o.n = 300;
  o.labeled_per_class = 10;
  DatasetContents c = synthesize(o);
  REQUIRE(c.labeled.size() == 300);
  std::vector<int64_t> seen(3, 0), marked(3, 0);
  for (size_t i = 0; i < c.labels.size(); ++i) {
    int32_t l = c.labels[i];
    REQUIRE(c.labeled[i] == (seen[l] < 10 ? 1 : 0));
    ++seen[l];
    marked[l] += c.labeled[i];
  }
  REQUIRE(marked == std::vector<int64_t>{10, 10, 10});

  o.labeled_per_class = 0;
  DatasetContents none = synthesize(o);
  REQUIRE(none.labeled.size() == 300);
  REQUIRE(std::count(none.labeled.begin(), none.labeled.end(), 1) == 0);
  o.labeled_per_class = -1;
  REQUIRE(synthesize(o).labeled.empty());
  o.kind = "linear";
  o.labeled_per_class = 5;
  REQUIRE_THROWS_WITH(synthesize(o), Catch::Contains("linear") && Catch::Contains("labeled_per_class"));
}

TEST_CASE("bad synth options are rejected naming the kind and option", "[storage]") {
  auto with = [](std::string kind, int64_t n, int64_t classes, int64_t dim) {
    SynthOptions o;
    o.kind = std::move(kind);
    o.n = n;
    o.classes = classes;
    o.dim = dim;
    return o;
  };
  REQUIRE_THROWS_WITH(synthesize(with("cubes", 10, 0, 0)), Catch::Contains("unknown synth kind 'cubes'"));
  REQUIRE_THROWS_WITH(synthesize(with("blobs", 0, 0, 0)), Catch::Contains("blobs") && Catch::Contains("n = 0"));
  REQUIRE_THROWS_WITH(synthesize(with("blobs", 100'000'001, 0, 0)), Catch::Contains("option n"));
  REQUIRE_THROWS_WITH(synthesize(with("moons", 10, 3, 0)), Catch::Contains("moons") && Catch::Contains("classes = 3"));
  REQUIRE_THROWS_WITH(synthesize(with("blobs", 10, 1, 0)), Catch::Contains("blobs") && Catch::Contains("classes = 1"));
  REQUIRE_THROWS_WITH(synthesize(with("blobs", 10, 0, -1)), Catch::Contains("blobs") && Catch::Contains("dim = -1"));
  REQUIRE_THROWS_WITH(synthesize(with("moons", 10, 0, 3)), Catch::Contains("moons") && Catch::Contains("dim = 3"));
  REQUIRE_THROWS_WITH(synthesize(with("shapes", 10, 7, 0)),
                      Catch::Contains("shapes") && Catch::Contains("classes = 7"));
  REQUIRE_THROWS_WITH(synthesize(with("grid", 10, 10, 0)), Catch::Contains("perfect square"));
  REQUIRE_THROWS_WITH(synthesize(with("linear", 10, 3, 0)), Catch::Contains("linear") && Catch::Contains("classes"));
  SynthOptions noisy_bits = with("parity", 10, 0, 0);
  noisy_bits.noise = 0.1;
  REQUIRE_THROWS_WITH(synthesize(noisy_bits), Catch::Contains("parity") && Catch::Contains("noise"));
  try {
    synthesize(with("moons", 10, 3, 0));
    FAIL("no error");
  } catch (const Error& e) {
    REQUIRE(e.exit_code() == 2);
  }
  std::string help = synth_kinds_help();
  for (const char* kind : {"blobs", "moons", "xor", "spirals", "linear", "ring", "grid", "shapes", "parity",
                           "parity_varlen", "sum", "sine"})
    REQUIRE(help.find(std::string(kind) + " ") != std::string::npos);
  REQUIRE(help.find("parity_varlen  classes=2") != std::string::npos);  // the name never runs into its defaults
  REQUIRE(help.find("noise=0.02") != std::string::npos);                // ring's default
}

TEST_CASE("synthesized sets round-trip through a dataset file", "[storage]") {
  TempDir dir;
  SynthOptions o;
  o.kind = "shapes";
  o.n = 200;
  o.labeled_per_class = 5;
  DatasetContents c = synthesize(o);
  write_dataset_file(dir.file("shapes.h5"), c);
  DatasetFile f(dir.file("shapes.h5"));
  REQUIRE(f.rows() == 200);
  REQUIRE(f.sample_shape() == Shape{1, 28, 28});
  REQUIRE(f.num_classes() == 4);
  REQUIRE(f.labels() == c.labels);
  REQUIRE(f.labeled_mask() == c.labeled);
  std::vector<float> x(c.x.size());
  f.read_rows(0, 200, x.data());
  REQUIRE(x == c.x);

  DatasetContents lin = synth("linear", 100);
  write_dataset_file(dir.file("linear.h5"), lin);
  DatasetFile g(dir.file("linear.h5"));
  REQUIRE(g.task() == "regression");
  REQUIRE(g.targets() == lin.targets);
  REQUIRE(g.read_extra("true_weights") == lin.extras[0].second);
}

TEST_CASE("CSV import: label by name, index and negative index", "[storage]") {
  TempDir dir;
  const std::string path = dir.file("d.csv");
  write_text(path, "a,label,\"b\"\r\n1.5,0,2\r\n\r\n-1,2,\"3e1\"\r\n 4 , 1 , 5\r\n");
  CsvImportOptions o;
  o.path = path;
  o.header = true;
  o.label_column = "label";
  DatasetContents c = import_csv(o);
  REQUIRE(c.sample_shape == Shape{2});
  REQUIRE(c.x == std::vector<float>{1.5f, 2.0f, -1.0f, 30.0f, 4.0f, 5.0f});
  REQUIRE(c.label_kind == LabelKind::classes);
  REQUIRE(c.labels == std::vector<int32_t>{0, 2, 1});
  REQUIRE(c.num_classes == 3);

  o.label_column = "1";
  REQUIRE(import_csv(o).labels == std::vector<int32_t>{0, 2, 1});
  o.label_column = "-1";  // the last column, b
  DatasetContents last = import_csv(o);
  REQUIRE(last.labels == std::vector<int32_t>{2, 30, 5});
  REQUIRE(last.num_classes == 31);
  REQUIRE(last.x == std::vector<float>{1.5f, 0.0f, -1.0f, 2.0f, 4.0f, 1.0f});

  o.label_column = "missing";
  REQUIRE_THROWS_WITH(import_csv(o), Catch::Contains("'missing' is not in the header"));
  o.label_column = "5";
  REQUIRE_THROWS_WITH(import_csv(o), Catch::Contains("out of range"));

  // Without a header the first row is data and columns have numbers, not names.
  write_text(path, "1,2,0\n3,4,1\n");
  CsvImportOptions plain;
  plain.path = path;
  plain.label_column = "-1";
  DatasetContents p = import_csv(plain);
  REQUIRE(p.rows() == 2);
  REQUIRE(p.labels == std::vector<int32_t>{0, 1});
  plain.label_column = "";
  DatasetContents unlabelled = import_csv(plain);
  REQUIRE(unlabelled.label_kind == LabelKind::none);
  REQUIRE(unlabelled.sample_shape == Shape{3});
}

TEST_CASE("CSV import: regression autodetect and forced tasks", "[storage]") {
  TempDir dir;
  const std::string path = dir.file("r.csv");
  write_text(path, "x,y\n1,0.5\n2,1.5\n3,-2\n");
  CsvImportOptions o;
  o.path = path;
  o.header = true;
  o.label_column = "y";
  DatasetContents c = import_csv(o);
  REQUIRE(c.label_kind == LabelKind::values);
  REQUIRE(c.target_dim == 1);
  REQUIRE(c.targets == std::vector<float>{0.5f, 1.5f, -2.0f});
  o.task = "classification";
  REQUIRE_THROWS_WITH(import_csv(o), Catch::Contains(path + ":2") && Catch::Contains("not a class id"));

  write_text(path, "x,y\n1,0\n2,1\n3,1\n");
  o.task = "regression";
  DatasetContents r = import_csv(o);
  REQUIRE(r.label_kind == LabelKind::values);
  REQUIRE(r.targets == std::vector<float>{0.0f, 1.0f, 1.0f});
  o.task = "auto";
  REQUIRE(import_csv(o).label_kind == LabelKind::classes);
  o.task = "guess";
  REQUIRE_THROWS_WITH(import_csv(o), Catch::Contains("task 'guess'"));

  write_text(path, "x,y\n1,-1\n2,1\n");
  o.task = "auto";
  REQUIRE_THROWS_WITH(import_csv(o), Catch::Contains(path + ":2: label -1"));
}

TEST_CASE("CSV import: bad cells, ragged rows, NaN and empty files are named", "[storage]") {
  TempDir dir;
  const std::string path = dir.file("bad.csv");
  CsvImportOptions o;
  o.path = path;
  o.header = true;
  o.label_column = "y";

  write_text(path, "a,b,y\n1,2,0\n\n3,abc,1\n");
  REQUIRE_THROWS_WITH(import_csv(o), Catch::Contains(path + ":4: column b: 'abc' is not a number"));
  write_text(path, "a,b,y\n1,2,0\n3,4\n");
  REQUIRE_THROWS_WITH(import_csv(o), Catch::Contains(path + ":3: expected 3 columns, found 2"));
  write_text(path, "a,b,y\n1,nan,0\n");
  REQUIRE_THROWS_WITH(import_csv(o), Catch::Contains(path + ":2: column b") && Catch::Contains("NaN"));
  write_text(path, "a,b,y\n1,inf,0\n");
  REQUIRE_THROWS_WITH(import_csv(o), Catch::Contains(path + ":2: column b"));
  write_text(path, "a,b,y\n1,\"2,0\n");
  REQUIRE_THROWS_WITH(import_csv(o), Catch::Contains(path + ":2: unterminated"));
  write_text(path, "a,b,y\n");
  REQUIRE_THROWS_WITH(import_csv(o), Catch::Contains("no data rows"));
  write_text(path, "\n\n");
  REQUIRE_THROWS_WITH(import_csv(o), Catch::Contains("empty file"));
  o.header = false;
  o.label_column = "0";
  write_text(path, "1,2\nx,3\n");
  REQUIRE_THROWS_WITH(import_csv(o), Catch::Contains(path + ":2: column 0: 'x' is not a number"));
  o.path = dir.file("absent.csv");
  REQUIRE_THROWS_WITH(import_csv(o), Catch::Contains("absent.csv: cannot open"));
}

TEST_CASE("NPY import: float features, integer and float labels", "[storage]") {
  TempDir dir;
  std::vector<float> xs = {1, 2, 3, 4, 5, 6};
  write_binary(dir.file("x.npy"), npy_bytes("<f4", "(3, 2)", raw_bytes(xs)));
  write_binary(dir.file("y.npy"), npy_bytes("<i8", "(3,)", raw_bytes(std::vector<int64_t>{2, 0, 1})));
  DatasetContents c = import_npy(dir.file("x.npy"), dir.file("y.npy"));
  REQUIRE(c.sample_shape == Shape{2});
  REQUIRE(c.x == xs);
  REQUIRE(c.labels == std::vector<int32_t>{2, 0, 1});
  REQUIRE(c.num_classes == 3);

  // Version 2 header, float64 images [2, 1, 2, 2], uint8 rank-1 X, float targets [N, 2].
  std::vector<double> img = {0, 1, 2, 3, 4, 5, 6, 7};
  write_binary(dir.file("img.npy"), npy_bytes("<f8", "(2, 1, 2, 2)", raw_bytes(img), 2));
  write_binary(dir.file("t.npy"), npy_bytes("<f4", "(2, 2)", raw_bytes(std::vector<float>{0.5f, 1, 2, -3})));
  DatasetContents d = import_npy(dir.file("img.npy"), dir.file("t.npy"));
  REQUIRE(d.sample_shape == Shape{1, 2, 2});
  REQUIRE(d.x[7] == 7.0f);
  REQUIRE(d.label_kind == LabelKind::values);
  REQUIRE(d.target_dim == 2);
  REQUIRE(d.targets == std::vector<float>{0.5f, 1, 2, -3});

  write_binary(dir.file("u8.npy"), npy_bytes("|u1", "(4,)", std::string("\x00\x01\xff\x02", 4)));
  DatasetContents e = import_npy(dir.file("u8.npy"), "");
  REQUIRE(e.sample_shape == Shape{1});
  REQUIRE(e.x == std::vector<float>{0, 1, 255, 2});
  REQUIRE(e.label_kind == LabelKind::none);
}

TEST_CASE("NPY import rejects what it cannot read, naming the file and the problem", "[storage]") {
  TempDir dir;
  const std::string x = dir.file("x.npy");
  std::vector<float> xs = {1, 2, 3, 4, 5, 6};
  write_binary(x, npy_bytes("<f4", "(3, 2)", raw_bytes(xs).substr(0, 20)));
  REQUIRE_THROWS_WITH(import_npy(x, ""), Catch::Contains(x) && Catch::Contains("truncated"));
  write_binary(x, npy_bytes("<f4", "(3000000000, 2000000000)", raw_bytes(xs)));
  REQUIRE_THROWS_WITH(import_npy(x, ""), Catch::Contains("truncated"));
  write_binary(x, npy_bytes(">f4", "(3, 2)", raw_bytes(xs)));
  REQUIRE_THROWS_WITH(import_npy(x, ""), Catch::Contains(x) && Catch::Contains("big-endian dtype '>f4'"));
  write_binary(x, npy_bytes("<f4", "(3, 2)", raw_bytes(xs), 1, "True"));
  REQUIRE_THROWS_WITH(import_npy(x, ""), Catch::Contains("fortran_order"));
  write_binary(x, npy_bytes("|O", "(3, 2)", raw_bytes(xs)));
  REQUIRE_THROWS_WITH(import_npy(x, ""), Catch::Contains("object dtype"));
  write_binary(x, npy_bytes("<c8", "(3,)", raw_bytes(xs)));
  REQUIRE_THROWS_WITH(import_npy(x, ""), Catch::Contains("unsupported dtype '<c8'"));
  write_binary(x, "PK\x03\x04 not numpy at all");
  REQUIRE_THROWS_WITH(import_npy(x, ""), Catch::Contains("not a NumPy .npy file"));
  std::vector<float> with_nan = {1, 2, NAN, 4};
  write_binary(x, npy_bytes("<f4", "(2, 2)", raw_bytes(with_nan)));
  REQUIRE_THROWS_WITH(import_npy(x, ""), Catch::Contains("row 1 contains NaN"));

  write_binary(x, npy_bytes("<f4", "(3, 2)", raw_bytes(xs)));
  const std::string y = dir.file("y.npy");
  write_binary(y, npy_bytes("<i4", "(2,)", raw_bytes(std::vector<int32_t>{0, 1})));
  REQUIRE_THROWS_WITH(import_npy(x, y), Catch::Contains("Y has 2 rows but X has 3"));
  write_binary(y, npy_bytes("<i4", "(3,)", raw_bytes(std::vector<int32_t>{0, -1, 1})));
  REQUIRE_THROWS_WITH(import_npy(x, y), Catch::Contains(y) && Catch::Contains("row 1 has class id -1"));
}

TEST_CASE("inspect reports shapes, stored dtypes, class counts and NaN/Inf", "[storage]") {
  TempDir dir;
  SynthOptions o;
  o.kind = "shapes";
  o.n = 1000;
  o.labeled_per_class = 10;
  write_dataset_file(dir.file("s.h5"), synthesize(o));
  std::string report = inspect_dataset(dir.file("s.h5"));
  INFO(report);
  REQUIRE(report.find("(format dptrain-dataset/1)") != std::string::npos);
  REQUIRE(report.find("x: float32 [1000, 1, 28, 28] (784 features per row), 0 NaN/Inf") != std::string::npos);
  REQUIRE(report.find("y: int32 class ids [1000], 4 classes: 0: 250  1: 250  2: 250  3: 250") != std::string::npos);
  REQUIRE(report.find("labeled: 40 of 1000 rows") != std::string::npos);
  REQUIRE(report.find("task: classification") != std::string::npos);

  DatasetContents bad = synth("blobs", 10);
  bad.x[3] = NAN;
  bad.x[8] = INFINITY;
  write_dataset_file(dir.file("nan.h5"), bad);
  std::string nan_report = inspect_dataset(dir.file("nan.h5"));
  INFO(nan_report);
  REQUIRE(nan_report.find("2 NaN/Inf") != std::string::npos);

  write_dataset_file(dir.file("lin.h5"), synth("linear", 50));
  std::string lin = inspect_dataset(dir.file("lin.h5"));
  INFO(lin);
  REQUIRE(lin.find("y: float32 targets [50]") != std::string::npos);
  REQUIRE(lin.find("extra: /true_weights float32 [6]") != std::string::npos);
  REQUIRE(lin.find("task: regression") != std::string::npos);

  // A float64 /x as h5py writes by default is reported as stored.
  {
    hid_t f = H5Fcreate(dir.file("f64.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[2] = {3, 2};
    hid_t space = H5Screate_simple(2, dims, nullptr);
    hid_t ds = H5Dcreate2(f, "x", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    double v[6] = {1, 2, 3, 4, 5, 6};
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Dclose(ds);
    H5Sclose(space);
    H5Fclose(f);
  }
  std::string f64 = inspect_dataset(dir.file("f64.h5"));
  INFO(f64);
  REQUIRE(f64.find("x: float64 [3, 2]") != std::string::npos);
  REQUIRE(f64.find("format attribute missing") != std::string::npos);
  REQUIRE(f64.find("y: none") != std::string::npos);

  write_text(dir.file("junk.h5"), "not hdf5");
  REQUIRE_THROWS_WITH(inspect_dataset(dir.file("junk.h5")),
                      Catch::Contains("junk.h5") && Catch::Contains("not an HDF5"));
}

namespace {

// Rows of T positions: x[i, j] = 100 i + j, labels (3 i + j) % 6, and padding (-1) at the end of
// every third row, as a batch of sequences of different lengths has.
DatasetContents per_step_data(int64_t rows, int64_t T) {
  DatasetContents c;
  c.sample_shape = Shape{T};
  c.label_kind = LabelKind::classes;
  c.num_classes = 6;
  c.label_width = T;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < T; ++j) {
      c.x.push_back(static_cast<float>(100 * i + j));
      c.labels.push_back(i % 3 == 2 && j >= T - 2 ? -1 : static_cast<int32_t>((3 * i + j) % 6));
    }
  return c;
}

std::vector<float> byte_floats(const std::string& s) {
  std::vector<float> v;
  for (char ch : s) v.push_back(static_cast<float>(static_cast<unsigned char>(ch)));
  return v;
}

std::vector<int32_t> byte_ids(const std::string& s) {
  std::vector<int32_t> v;
  for (char ch : s) v.push_back(static_cast<unsigned char>(ch));
  return v;
}

std::vector<int64_t> all_rows_of(const DatasetFile& f) {
  std::vector<int64_t> rows(static_cast<size_t>(f.rows()));
  for (int64_t i = 0; i < f.rows(); ++i) rows[static_cast<size_t>(i)] = i;
  return rows;
}

// Row `row` of a row-major buffer with `width` values per row.
template <class T>
std::vector<T> row_of(const std::vector<T>& v, int64_t row, int64_t width) {
  return std::vector<T>(v.begin() + row * width, v.begin() + (row + 1) * width);
}

TextImport import_text_of(const std::string& path, int64_t context, double fraction = 0.0) {
  TextImportOptions o;
  o.path = path;
  o.context = context;
  o.validation_fraction = fraction;
  return import_text(o);
}

}  // namespace

TEST_CASE("per-step labels [N, T] round-trip through a dataset file and the reader's rank slices", "[storage]") {
  TempDir dir;
  const int64_t N = 11, T = 5;
  DatasetContents c = per_step_data(N, T);
  const std::string path = dir.file("seq.h5");
  write_dataset_file(path, c);
  auto file = std::make_shared<const DatasetFile>(path);
  REQUIRE(file->label_width() == T);
  REQUIRE(file->labels() == c.labels);
  REQUIRE(file->num_classes() == 6);
  REQUIRE(file->sample_shape() == Shape{T});
  std::string report = inspect_dataset(path);
  INFO(report);
  REQUIRE(report.find("y: int32 per-step class ids [11, 5] (5 per row), 6 classes: 6 used, 6 of 55 positions "
                      "padding (-1)") != std::string::npos);

  // One rank's batches define the global batches; each of 2 ranks must get its slice of them with
  // the T labels of each of its rows, read from memory or streamed from the file.
  for (int64_t budget : {int64_t{1} << 30, int64_t{0}}) {
    INFO("memory budget " << budget);
    ReaderOptions o;
    o.global_batch = 4;
    o.seed = 9;
    o.memory_budget_bytes = budget;
    ShardedReader whole(file, all_rows_of(*file), o);
    std::vector<std::unique_ptr<ShardedReader>> ranks;
    for (int r = 0; r < 2; ++r) {
      ReaderOptions ro = o;
      ro.rank = r;
      ro.world = 2;
      ranks.push_back(std::make_unique<ShardedReader>(file, all_rows_of(*file), ro));
    }
    for (int step = 0; step < 2 * whole.steps_per_epoch(); ++step) {
      const Batch& g = whole.next();
      std::vector<int64_t> global_rows(g.file_rows, g.file_rows + g.rows());
      std::vector<int64_t> from_ranks;
      for (auto& reader : ranks) {
        const Batch& b = reader->next();
        REQUIRE(b.label_width == T);
        REQUIRE(b.labels != nullptr);
        for (int64_t i = 0; i < b.rows(); ++i) {
          const int64_t row = b.file_rows[i];
          from_ranks.push_back(row);
          REQUIRE(std::vector<int32_t>(b.labels + i * T, b.labels + (i + 1) * T) == row_of(c.labels, row, T));
          REQUIRE(std::vector<float>(b.x.data() + i * T, b.x.data() + (i + 1) * T) == row_of(c.x, row, T));
        }
      }
      REQUIRE(from_ranks == global_rows);
    }
  }

  // Pseudo-labels are one per row: refused for per-step labels, naming the file.
  ReaderOptions pseudo;
  pseudo.labels = std::make_shared<const std::vector<int32_t>>(static_cast<size_t>(N), 0);
  REQUIRE_THROWS_WITH(ShardedReader(file, all_rows_of(*file), pseudo),
                      Catch::Contains(path) && Catch::Contains("per-step labels"));

  // Out-of-range labels name row and position; -1 is padding only in per-step labels.
  DatasetContents bad = per_step_data(N, T);
  bad.labels[2 * T + 1] = 6;
  write_dataset_file(dir.file("bad.h5"), bad);
  REQUIRE_THROWS_WITH(DatasetFile(dir.file("bad.h5")),
                      Catch::Contains(dir.file("bad.h5") + ": /y row 2 position 1 has label 6, outside [0, 6)"));
  bad.labels[2 * T + 1] = -2;
  write_dataset_file(dir.file("bad.h5"), bad);
  REQUIRE_THROWS_WITH(DatasetFile(dir.file("bad.h5")), Catch::Contains("row 2 position 1 has label -2"));
  DatasetContents rowwise = test::small_classification(4, 3, 2);
  rowwise.labels[1] = -1;
  write_dataset_file(dir.file("rowwise.h5"), rowwise);
  REQUIRE_THROWS_WITH(DatasetFile(dir.file("rowwise.h5")),
                      Catch::Contains(dir.file("rowwise.h5") + ": /y row 1 has label -1, outside [0, 2)"));
}

TEST_CASE("per-step labels are refused where one class per row is needed", "[storage]") {
  // Self-training (trainer/DataSplits.cpp) selects and stores one pseudo-label per row.
  TempDir dir;
  DatasetContents seq = per_step_data(6, 4);
  write_dataset_file(dir.file("seq.h5"), seq);
  write_dataset_file(dir.file("rows.h5"), test::small_classification(6, 4, 3));
  REQUIRE_THROWS_WITH(
      merge_for_self_training(dir.file("seq.h5"), dir.file("rows.h5"), dir.file("m.h5")),
      Catch::Contains(dir.file("seq.h5") + ": self-training needs one class per row") && Catch::Contains("4 per row"));
  REQUIRE_THROWS_WITH(merge_for_self_training(dir.file("rows.h5"), dir.file("seq.h5"), dir.file("m.h5")),
                      Catch::Contains(dir.file("seq.h5") + ": self-training needs one class per row"));
  seq.labeled.assign(6, 1);
  seq.labeled[4] = 0;
  write_dataset_file(dir.file("masked.h5"), seq);
  DataConfig masked;
  masked.train = dir.file("masked.h5");
  REQUIRE_THROWS_WITH(make_splits(masked), Catch::Contains(dir.file("masked.h5") + ": a /labeled mask"));

  // Training and validation files must agree on the labels per row.
  write_dataset_file(dir.file("seq_rows.h5"), test::small_classification(6, 4, 6));
  DataConfig mixed;
  mixed.train = dir.file("seq.h5");
  mixed.validation = dir.file("seq_rows.h5");
  REQUIRE_THROWS_WITH(make_splits(mixed),
                      Catch::Contains(dir.file("seq_rows.h5") + ": validation data has 1 class ids per row in /y, "
                                                                "training data 4"));
  mixed.validation = dir.file("seq.h5");
  REQUIRE(make_splits(mixed).validation.file->label_width() == 4);
}

TEST_CASE("text import: byte windows with next-byte targets, split at the tail", "[storage]") {
  TempDir dir;
  const std::string path = dir.file("abc.txt");
  write_text(path, "abcdefghijklmnopqrstuvwxyz");  // 26 bytes
  TextImport all = import_text_of(path, 4);
  const DatasetContents& c = all.train;
  REQUIRE(all.validation.rows() == 0);
  REQUIRE(c.rows() == 6);  // (26 - 1) / 4: the last window's last target is 'y'
  REQUIRE(c.sample_shape == Shape{4});
  REQUIRE(c.label_kind == LabelKind::classes);
  REQUIRE(c.label_width == 4);
  REQUIRE(c.num_classes == 256);
  REQUIRE(row_of(c.x, 0, 4) == byte_floats("abcd"));
  REQUIRE(row_of(c.labels, 0, 4) == byte_ids("bcde"));
  REQUIRE(row_of(c.x, 1, 4) == byte_floats("efgh"));
  REQUIRE(row_of(c.labels, 1, 4) == byte_ids("fghi"));
  REQUIRE(row_of(c.x, 5, 4) == byte_floats("uvwx"));
  REQUIRE(row_of(c.labels, 5, 4) == byte_ids("vwxy"));

  // Fraction 0.25: the last floor(6.5) = 6 bytes "uvwxyz" are validation text, the first 20 make
  // (20 - 1) / 4 = 4 training windows whose targets stay before 'u'.
  TextImport split = import_text_of(path, 4, 0.25);
  REQUIRE(split.train.rows() == 4);
  REQUIRE(row_of(split.train.x, 3, 4) == byte_floats("mnop"));
  REQUIRE(row_of(split.train.labels, 3, 4) == byte_ids("nopq"));
  REQUIRE(split.validation.rows() == 1);
  REQUIRE(split.validation.x == byte_floats("uvwx"));
  REQUIRE(split.validation.labels == byte_ids("vwxy"));

  // Multi-byte UTF-8 characters are bytes like any other.
  write_text(dir.file("utf8.txt"), "h\xc3\xa9llo \xe2\x82\xac!\n");
  TextImport u = import_text_of(dir.file("utf8.txt"), 3);
  REQUIRE(row_of(u.train.x, 0, 3) == std::vector<float>{104, 195, 169});
  REQUIRE(row_of(u.train.labels, 0, 3) == std::vector<int32_t>{195, 169, 108});

  // Both files written and readable; the validation file first, removed when the training file fails.
  write_train_validation_files(dir.file("train.h5"), split.train, dir.file("val.h5"), split.validation);
  DatasetFile train(dir.file("train.h5")), val(dir.file("val.h5"));
  REQUIRE(train.rows() == 4);
  REQUIRE(train.label_width() == 4);
  REQUIRE(train.num_classes() == 256);
  REQUIRE(train.labels() == split.train.labels);
  REQUIRE(val.rows() == 1);
  REQUIRE(val.labels() == split.validation.labels);
  std::string report = inspect_dataset(dir.file("train.h5"));
  INFO(report);
  REQUIRE(report.find("per-step class ids [4, 4] (4 per row), 256 classes") != std::string::npos);
  REQUIRE(report.find("0: ") == std::string::npos);  // no table of 256 class counts

  const std::string lost = dir.file("missing-dir/train.h5");
  REQUIRE_THROWS_WITH(write_train_validation_files(lost, split.train, dir.file("val2.h5"), split.validation),
                      Catch::Contains("missing-dir"));
  REQUIRE_FALSE(std::filesystem::exists(dir.file("val2.h5")));
  REQUIRE_THROWS_WITH(
      write_train_validation_files(dir.file("same.h5"), split.train, dir.file("./same.h5"), split.validation),
      Catch::Contains("must differ"));
  REQUIRE_FALSE(std::filesystem::exists(dir.file("same.h5")));
}

TEST_CASE("text import refuses bad input, naming the file and the byte at fault", "[storage]") {
  TempDir dir;
  const std::string path = dir.file("t.txt");
  const std::string alphabet = "abcdefghijklmnopqrstuvwxyz";
  auto fails_with = [&](const std::string& text, int64_t context, double fraction, const std::string& message) {
    write_text(path, text);
    INFO("expecting: " << message);
    REQUIRE_THROWS_WITH(import_text_of(path, context, fraction), Catch::Contains(path + ": " + message));
  };
  REQUIRE_THROWS_WITH(import_text_of(dir.file("absent.txt"), 4), Catch::Contains("absent.txt: cannot open"));
  REQUIRE_THROWS_WITH(import_text_of(dir.path(), 4), Catch::Contains(dir.path() + ": is a directory"));
  fails_with("", 4, 0.0, "empty file");
  fails_with(alphabet, 1, 0.0, "context 1 is out of range [2, 1048576]");
  fails_with(alphabet, int64_t{1} << 40, 0.0, "context 1099511627776 is out of range");
  fails_with(alphabet, 4, 1.0, "validation fraction 1 is outside [0, 1)");
  fails_with("abcd", 4, 0.0, "too short: 4 bytes of training text, one window of context 4 needs 5");
  fails_with(alphabet, 4, 0.1, "too short for validation: the last 2 bytes");
  fails_with(alphabet, 4, 0.9, "too short: 3 bytes of training text (after the validation tail)");
  fails_with(std::string("ab\0cdefgh", 9), 2, 0.0, "NUL byte at byte offset 2 (0x00)");
  fails_with(
      "abc\xff"
      "defgh",
      2, 0.0, "invalid UTF-8 at byte offset 3 (0xff)");
  fails_with(
      "ab\xc0\xaf"
      "cdefgh",
      2, 0.0, "invalid UTF-8 at byte offset 2 (0xc0)");  // overlong '/'
  fails_with(
      "ab\xe2\x28\xa1"
      "cdefgh",
      2, 0.0, "invalid UTF-8 at byte offset 3 (0x28)");  // bad continuation
  fails_with(
      "ab\xed\xa0\x80"
      "cdefgh",
      2, 0.0, "invalid UTF-8 at byte offset 3 (0xa0)");                             // a surrogate
  fails_with("abcdefgh\xe2\x82", 2, 0.0, "invalid UTF-8 at byte offset 8 (0xe2)");  // cut short
  fails_with("abcdefgh\xa9", 2, 0.0, "invalid UTF-8 at byte offset 8 (0xa9)");      // no lead byte
  // Control characters: 3 escapes in 200 bytes (1.5 %) is binary; one in 200 is text.
  std::string text(200, 'x');
  text[10] = text[50] = text[90] = '\x1b';
  fails_with(text, 4, 0.0, "3 of 200 bytes are control characters (more than 1 %), the first at byte offset 10 (0x1b)");
  text[50] = text[90] = '\t';
  write_text(path, text + "\r\n\f\v");
  REQUIRE(import_text_of(path, 4).train.rows() == 50);
}

TEST_CASE("dptrain data import --text writes training and validation files", "[cli]") {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 40; ++i) text += "line " + std::to_string(i) + " of some text\n";
  write_text(dir.file("t.txt"), text);
  auto r = run_cli({"data", "import", "--text", dir.file("t.txt"), "--context", "16", "--out", dir.file("train.h5"),
                    "--validation-out", dir.file("val.h5"), "--validation-fraction", "0.2"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  DatasetFile train(dir.file("train.h5")), val(dir.file("val.h5"));
  const int64_t n = static_cast<int64_t>(text.size());
  const int64_t tail = static_cast<int64_t>(std::floor(0.2 * static_cast<double>(n)));
  REQUIRE(train.rows() == (n - tail - 1) / 16);
  REQUIRE(val.rows() == (tail - 1) / 16);
  REQUIRE(train.label_width() == 16);
  REQUIRE(r.out.find("16 labels per row") != std::string::npos);

  auto alone = run_cli({"data", "import", "--text", dir.file("t.txt"), "--context", "16", "--out", dir.file("a.h5"),
                        "--validation-fraction", "0.2"});
  REQUIRE(alone.exit_code == 2);
  REQUIRE(alone.err.find("--validation-fraction needs --validation-out") != std::string::npos);
  auto no_context = run_cli({"data", "import", "--text", dir.file("t.txt"), "--out", dir.file("a.h5")});
  REQUIRE(no_context.exit_code == 2);
  REQUIRE(no_context.err.find("--context") != std::string::npos);
  auto junk = run_cli({"data", "import", "--text", dir.file("train.h5"), "--context", "16", "--out", dir.file("a.h5")});
  REQUIRE(junk.exit_code == 2);
  REQUIRE(junk.err.find(dir.file("train.h5") + ": ") != std::string::npos);
  REQUIRE_FALSE(std::filesystem::exists(dir.file("a.h5")));
  auto help = run_cli({"data", "import", "--help"});
  REQUIRE(help.exit_code == 0);
  for (const char* option : {"--text FILE", "--context T", "--validation-out FILE", "--validation-fraction F"})
    REQUIRE(help.out.find(option) != std::string::npos);
}
