// Synthetic datasets (shapes, balance, determinism, the geometry each kind promises), CSV and .npy
// import with their rejections, and the inspect report. The .npy files are built byte by byte here
// so the parser is checked against the format, not against our own writer.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>

#include "models/core/Error.h"
#include "storage/dataset/DatasetFile.h"
#include "storage/dataset/Import.h"
#include "storage/dataset/Synthesize.h"
#include "support/TestSupport.h"

using namespace dptrain;
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
