// Synthetic datasets, each a pure function of (options, seed): every draw comes from Philox streams
// keyed by the seed, so the same options give the same bytes on any machine. Classification kinds
// label rows round-robin (balanced classes), draw each row from its class, then shuffle the rows.
#include "storage/dataset/Synthesize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <sstream>

#include "models/core/Error.h"
#include "models/core/Philox.h"

namespace dptrain {

namespace {

constexpr double pi = 3.14159265358979323846;
constexpr int64_t max_synth_rows = 100'000'000;
constexpr int64_t max_synth_dim = int64_t{1} << 20;
constexpr int64_t max_synth_floats = int64_t{1} << 31;  // 8 GiB of features: beyond that, a typo
constexpr int image_side = 28;

// Separate streams so that changing n leaves the centres and weights of a seed unchanged.
enum StreamId : uint32_t { params_stream = 0, rows_stream = 1, shuffle_stream = 2 };

// Draws from one Philox stream. Normals come in Box-Muller pairs from one 64-bit draw because
// "shapes" needs 784 of them per image.
class Draws {
 public:
  Draws(uint64_t seed, StreamId id) : rng_(seed, RandomPurpose::synth, id) {}
  double uniform(double lo, double hi) { return lo + (hi - lo) * rng_.uniform_double(); }
  uint64_t below(uint64_t n) { return rng_.below(n); }
  uint64_t bits() { return rng_.bits(); }
  float normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    uint64_t b = rng_.bits();
    float radius = std::sqrt(-2.0f * std::log(uniform_from_bits(static_cast<uint32_t>(b >> 32))));
    float angle = 6.28318530717958647692f * uniform_from_bits(static_cast<uint32_t>(b));
    spare_ = radius * std::sin(angle);
    has_spare_ = true;
    return radius * std::cos(angle);
  }

 private:
  Philox rng_;
  float spare_ = 0.0f;
  bool has_spare_ = false;
};

// Hands out random bits one at a time, 64 per Philox draw.
class BitDraws {
 public:
  explicit BitDraws(Draws& draws) : draws_(draws) {}
  int next() {
    if (left_ == 0) {
      word_ = draws_.bits();
      left_ = 64;
    }
    int bit = static_cast<int>(word_ & 1u);
    word_ >>= 1;
    --left_;
    return bit;
  }

 private:
  Draws& draws_;
  uint64_t word_ = 0;
  int left_ = 0;
};

// Resolved options: defaults filled in and validated.
struct Params {
  int64_t n = 0, classes = 0, dim = 0;
  float noise = 0.0f;
  uint64_t seed = 0;
};

struct KindSpec {
  const char* name;
  int64_t classes, min_classes, max_classes;  // all 0 for regression kinds
  int64_t dim;                                // the default; fixed unless dim_option
  bool dim_option;
  double noise;  // the default; < 0: the kind has no noise option
  void (*generate)(const Params&, DatasetContents&);
  const char* about;
};

// --- shared row bookkeeping ---------------------------------------------------------------------

// Labels i % classes before the rows are drawn; shuffle_rows mixes the order afterwards.
void start_classes(const Params& p, const Shape& sample, DatasetContents& c) {
  c.sample_shape = sample;
  c.label_kind = LabelKind::classes;
  c.num_classes = p.classes;
  c.x.assign(static_cast<size_t>(p.n * sample.numel()), 0.0f);
  c.labels.resize(static_cast<size_t>(p.n));
  for (int64_t i = 0; i < p.n; ++i) c.labels[i] = static_cast<int32_t>(i % p.classes);
}

void start_values(const Params& p, const Shape& sample, DatasetContents& c) {
  c.sample_shape = sample;
  c.label_kind = LabelKind::values;
  c.target_dim = 1;
  c.x.assign(static_cast<size_t>(p.n * sample.numel()), 0.0f);
  c.targets.assign(static_cast<size_t>(p.n), 0.0f);
}

// Position in [0, 1] of round-robin row i among the rows of its class (numpy's linspace(0, 1)).
double class_position(const Params& p, int64_t i) {
  int64_t label = i % p.classes;
  int64_t count = (p.n - 1 - label) / p.classes + 1;
  return count > 1 ? static_cast<double>(i / p.classes) / static_cast<double>(count - 1) : 0.0;
}

void shuffle_rows(uint64_t seed, DatasetContents& c) {
  const int64_t n = c.rows(), row = c.sample_shape.numel();
  Draws draws(seed, shuffle_stream);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[draws.below(static_cast<uint64_t>(i + 1))]);
  std::vector<float> x(c.x.size());
  std::vector<int32_t> labels(c.labels.size());
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(&x[i * row], &c.x[order[i] * row], static_cast<size_t>(row) * sizeof(float));
    labels[i] = c.labels[order[i]];
  }
  c.x.swap(x);
  c.labels.swap(labels);
}

// The first `per_class` rows of each class, in final row order, count as labelled.
void mark_labeled(int64_t per_class, DatasetContents& c) {
  std::vector<int64_t> taken(static_cast<size_t>(c.num_classes), 0);
  c.labeled.assign(c.labels.size(), 0);
  for (size_t i = 0; i < c.labels.size(); ++i)
    if (taken[c.labels[i]] < per_class) {
      c.labeled[i] = 1;
      ++taken[c.labels[i]];
    }
}

// --- 2-D classification ---------------------------------------------------------------------------

void gen_blobs(const Params& p, DatasetContents& c) {
  start_classes(p, Shape{p.dim}, c);
  Draws params(p.seed, params_stream), rows(p.seed, rows_stream);
  std::vector<float> centres(static_cast<size_t>(p.classes * p.dim));
  for (float& v : centres) v = static_cast<float>(params.uniform(-10.0, 10.0));
  for (int64_t i = 0; i < p.n; ++i) {
    const float* centre = &centres[c.labels[i] * p.dim];
    float* x = &c.x[i * p.dim];
    for (int64_t j = 0; j < p.dim; ++j) x[j] = centre[j] + p.noise * rows.normal();
  }
}

// sklearn's make_moons: an upper half circle (class 0) and a lower one shifted right (class 1).
void gen_moons(const Params& p, DatasetContents& c) {
  start_classes(p, Shape{2}, c);
  Draws rows(p.seed, rows_stream);
  for (int64_t i = 0; i < p.n; ++i) {
    double t = pi * class_position(p, i);
    bool outer = c.labels[i] == 0;
    double x0 = outer ? std::cos(t) : 1.0 - std::cos(t);
    double x1 = outer ? std::sin(t) : 0.5 - std::sin(t);
    c.x[2 * i] = static_cast<float>(x0) + p.noise * rows.normal();
    c.x[2 * i + 1] = static_cast<float>(x1) + p.noise * rows.normal();
  }
}

// Drawing |x_j| from [margin, 1] and the quadrant from the label is the same distribution as
// resampling points inside the margin bands, conditioned on the class, without a retry loop.
void gen_xor(const Params& p, DatasetContents& c) {
  constexpr double margin = 0.05;
  start_classes(p, Shape{2}, c);
  Draws rows(p.seed, rows_stream);
  for (int64_t i = 0; i < p.n; ++i) {
    double a0 = rows.uniform(margin, 1.0), a1 = rows.uniform(margin, 1.0);
    bool positive0 = rows.below(2) == 1;
    bool positive1 = positive0 != (c.labels[i] == 1);
    c.x[2 * i] = static_cast<float>(positive0 ? a0 : -a0) + p.noise * rows.normal();
    c.x[2 * i + 1] = static_cast<float>(positive1 ? a1 : -a1) + p.noise * rows.normal();
  }
}

// cs231n's spiral data: radius r = linspace(0, 1), angle = 4 * class + 4r + noise * N(0, 1).
void gen_spirals(const Params& p, DatasetContents& c) {
  start_classes(p, Shape{2}, c);
  Draws rows(p.seed, rows_stream);
  for (int64_t i = 0; i < p.n; ++i) {
    double r = class_position(p, i);
    double theta = 4.0 * c.labels[i] + 4.0 * r + p.noise * rows.normal();
    c.x[2 * i] = static_cast<float>(r * std::sin(theta));
    c.x[2 * i + 1] = static_cast<float>(r * std::cos(theta));
  }
}

void gen_ring(const Params& p, DatasetContents& c) {
  start_classes(p, Shape{2}, c);
  Draws rows(p.seed, rows_stream);
  for (int64_t i = 0; i < p.n; ++i) {
    double angle = 2.0 * pi * c.labels[i] / static_cast<double>(p.classes);
    c.x[2 * i] = static_cast<float>(2.0 * std::cos(angle)) + p.noise * rows.normal();
    c.x[2 * i + 1] = static_cast<float>(2.0 * std::sin(angle)) + p.noise * rows.normal();
  }
}

// Mode k sits at column k % m, row k / m of an m x m grid spaced 2 apart and centred at 0.
void gen_grid(const Params& p, DatasetContents& c) {
  start_classes(p, Shape{2}, c);
  Draws rows(p.seed, rows_stream);
  const int64_t m = std::llround(std::sqrt(static_cast<double>(p.classes)));
  const double half = static_cast<double>(m - 1) / 2.0;
  for (int64_t i = 0; i < p.n; ++i) {
    int64_t mode = c.labels[i];
    c.x[2 * i] = static_cast<float>(2.0 * (mode % m - half)) + p.noise * rows.normal();
    c.x[2 * i + 1] = static_cast<float>(2.0 * (mode / m - half)) + p.noise * rows.normal();
  }
}

// --- images ---------------------------------------------------------------------------------------

enum ShapeClass { circle = 0, square = 1, triangle = 2, plus = 3, disc = 4, diagonal_cross = 5 };

// Whether a pixel centre at offset (dx, dy) from the shape's centre is inside a shape of size s
// (radius or half-size); every shape stays within s of its centre on both axes.
bool inside_shape(int kind, float dx, float dy, float s) {
  const float ax = std::fabs(dx), ay = std::fabs(dy), bar = 0.2f * s + 0.5f;
  const float d2 = dx * dx + dy * dy;
  switch (kind) {
    case circle:
      return d2 <= s * s && d2 >= (s - 2.0f) * (s - 2.0f);
    case square:
      return ax <= s && ay <= s;
    case triangle:
      return dy >= -s && dy <= s && ax <= 0.5f * (dy + s);  // apex up, base 2s wide
    case plus:
      return (ax <= bar && ay <= s) || (ay <= bar && ax <= s);
    case disc:
      return d2 <= s * s;
    default:
      return ax <= s && ay <= s && (std::fabs(dx - dy) <= bar * 1.41421356f || std::fabs(dx + dy) <= bar * 1.41421356f);
  }
}

void gen_shapes(const Params& p, DatasetContents& c) {
  start_classes(p, Shape{1, image_side, image_side}, c);
  Draws rows(p.seed, rows_stream);
  const int64_t pixels = image_side * image_side;
  for (int64_t i = 0; i < p.n; ++i) {
    const float s = static_cast<float>(rows.uniform(5.0, 11.0));
    const float cx = static_cast<float>(rows.uniform(s, image_side - s));
    const float cy = static_cast<float>(rows.uniform(s, image_side - s));
    float* image = &c.x[i * pixels];
    for (int y = 0; y < image_side; ++y)
      for (int x = 0; x < image_side; ++x) {
        float v = inside_shape(c.labels[i], x + 0.5f - cx, y + 0.5f - cy, s) ? 1.0f : 0.0f;
        image[y * image_side + x] = std::clamp(v + p.noise * rows.normal(), 0.0f, 1.0f);
      }
  }
}

// --- sequences and regression ---------------------------------------------------------------------

// The first dim - 1 bits are free and the last one sets the row's parity: the same distribution as
// uniform bit strings split by parity, with balanced classes.
void gen_parity(const Params& p, DatasetContents& c) {
  start_classes(p, Shape{p.dim, 1}, c);
  Draws rows(p.seed, rows_stream);
  BitDraws bits(rows);
  for (int64_t i = 0; i < p.n; ++i) {
    float* x = &c.x[i * p.dim];
    int ones = 0;
    for (int64_t t = 0; t + 1 < p.dim; ++t) {
      int b = bits.next();
      x[t] = static_cast<float>(b);
      ones += b;
    }
    x[p.dim - 1] = static_cast<float>((ones & 1) ^ c.labels[i]);
  }
}

// Parity of strings with a random effective length L in [1, dim], zero-padded on the left (zeros do
// not change parity). The short strings are a built-in curriculum: a recurrent net trained on these
// solves full-length parity, while training on fixed-length strings stays at chance (the gradient
// carries no signal until it already computes the parity of all bits).
void gen_parity_varlen(const Params& p, DatasetContents& c) {
  start_classes(p, Shape{p.dim, 1}, c);
  Draws rows(p.seed, rows_stream);
  BitDraws bits(rows);
  for (int64_t i = 0; i < p.n; ++i) {
    float* x = &c.x[i * p.dim];
    const int64_t first = static_cast<int64_t>(rows.below(static_cast<uint64_t>(p.dim)));
    int ones = 0;
    for (int64_t t = first; t + 1 < p.dim; ++t) {
      int b = bits.next();
      x[t] = static_cast<float>(b);
      ones += b;
    }
    x[p.dim - 1] = static_cast<float>((ones & 1) ^ c.labels[i]);
  }
}

void gen_sum(const Params& p, DatasetContents& c) {
  start_values(p, Shape{p.dim, 1}, c);
  Draws rows(p.seed, rows_stream);
  BitDraws bits(rows);
  for (int64_t i = 0; i < p.n; ++i) {
    int ones = 0;
    for (int64_t t = 0; t < p.dim; ++t) {
      int b = bits.next();
      c.x[i * p.dim + t] = static_cast<float>(b);
      ones += b;
    }
    c.targets[i] = static_cast<float>(ones);
  }
}

void gen_sine(const Params& p, DatasetContents& c) {
  start_values(p, Shape{p.dim, 1}, c);
  Draws rows(p.seed, rows_stream);
  for (int64_t i = 0; i < p.n; ++i) {
    double omega = rows.uniform(0.1, 0.5), phase = rows.uniform(0.0, 2.0 * pi);
    for (int64_t t = 0; t < p.dim; ++t)
      c.x[i * p.dim + t] = static_cast<float>(std::sin(omega * t + phase)) + p.noise * rows.normal();
    c.targets[i] = static_cast<float>(std::sin(omega * p.dim + phase));
  }
}

// y = x.w + b + noise; the truth is kept as /true_weights = [w_0 .. w_{dim-1}, b].
void gen_linear(const Params& p, DatasetContents& c) {
  start_values(p, Shape{p.dim}, c);
  Draws params(p.seed, params_stream), rows(p.seed, rows_stream);
  std::vector<float> truth(static_cast<size_t>(p.dim + 1));
  for (int64_t j = 0; j < p.dim; ++j) truth[j] = static_cast<float>(params.uniform(-2.0, 2.0));
  truth[p.dim] = static_cast<float>(params.uniform(-1.0, 1.0));
  for (int64_t i = 0; i < p.n; ++i) {
    double y = truth[p.dim];
    for (int64_t j = 0; j < p.dim; ++j) {
      float v = rows.normal();
      c.x[i * p.dim + j] = v;
      y += static_cast<double>(v) * truth[j];
    }
    c.targets[i] = static_cast<float>(y) + p.noise * rows.normal();
  }
  c.extras.emplace_back("true_weights", std::move(truth));
}

// --- the table of kinds -----------------------------------------------------------------------------

const KindSpec kinds[] = {
    {"blobs", 3, 2, 1 << 16, 2, true, 1.0, gen_blobs, "isotropic Gaussian clusters, centres uniform in [-10,10]^dim"},
    {"moons", 2, 2, 2, 2, false, 0.1, gen_moons, "two interleaving half circles (sklearn make_moons)"},
    {"xor", 2, 2, 2, 2, false, 0.0, gen_xor, "uniform in [-1,1]^2, label (x0>0) xor (x1>0), margin 0.05"},
    {"spirals", 2, 2, 1 << 10, 2, false, 0.2, gen_spirals,
     "one Archimedean spiral arm per class (cs231n), angle noise"},
    {"linear", 0, 0, 0, 5, true, 0.1, gen_linear, "regression y = x.w + b + noise, x ~ N(0,1); /true_weights = [w, b]"},
    {"ring", 8, 2, 1 << 16, 2, false, 0.02, gen_ring, "2-D Gaussian mixture, modes on a circle of radius 2"},
    {"grid", 25, 4, 1 << 16, 2, false, 0.05, gen_grid,
     "2-D Gaussian mixture on an m x m grid spaced 2 (classes = m*m)"},
    {"shapes", 4, 4, 6, 0, false, 0.1, gen_shapes,
     "28x28 grey images: circle, square, triangle, plus; classes 5 adds a disc, 6 an X"},
    {"parity", 2, 2, 2, 20, true, -1.0, gen_parity, "bit sequences [dim, 1], label = number of ones mod 2"},
    {"parity_varlen", 2, 2, 2, 20, true, -1.0, gen_parity_varlen,
     "parity of [dim, 1] bit strings of random length 1..dim, zero-padded left (a curriculum)"},
    {"sum", 0, 0, 0, 10, true, -1.0, gen_sum, "bit sequences [dim, 1], regression target = number of ones"},
    {"sine", 0, 0, 0, 20, true, 0.05, gen_sine,
     "noisy sine [dim, 1] (random frequency, phase), target = next clean value"},
};

const KindSpec& find_kind(const std::string& name) {
  for (const KindSpec& k : kinds)
    if (name == k.name) return k;
  std::string known;
  for (const KindSpec& k : kinds) known += std::string(known.empty() ? "" : ", ") + k.name;
  fail_input("unknown synth kind '" + name + "' (known: " + known + ")");
}

bool is_perfect_square(int64_t v) {
  int64_t m = std::llround(std::sqrt(static_cast<double>(v)));
  return m * m == v;
}

int64_t resolve_classes(const KindSpec& k, const SynthOptions& o, const std::string& at) {
  if (k.classes == 0) {
    if (o.classes != 0) fail_input(at + "option classes does not apply (regression)");
    return 0;
  }
  int64_t classes = o.classes == 0 ? k.classes : o.classes;
  if (classes < k.min_classes || classes > k.max_classes)
    fail_input(at + "option classes = " + std::to_string(classes) + " must be in [" + std::to_string(k.min_classes) +
               ", " + std::to_string(k.max_classes) + "]");
  if (std::string(k.name) == "grid" && !is_perfect_square(classes))
    fail_input(at + "option classes = " + std::to_string(classes) + " must be a perfect square m*m (an m x m grid)");
  return classes;
}

int64_t resolve_dim(const KindSpec& k, const SynthOptions& o, const std::string& at) {
  if (!k.dim_option) {
    if (o.dim != 0 && o.dim != k.dim)
      fail_input(at + "option dim = " + std::to_string(o.dim) + " is fixed for this kind" +
                 (k.dim ? " (always " + std::to_string(k.dim) + ")" : " (28x28 images)"));
    return k.dim;
  }
  int64_t dim = o.dim == 0 ? k.dim : o.dim;
  if (dim < 1 || dim > max_synth_dim)
    fail_input(at + "option dim = " + std::to_string(dim) + " must be in [1, " + std::to_string(max_synth_dim) + "]");
  return dim;
}

Params resolve(const KindSpec& k, const SynthOptions& o) {
  const std::string at = "synth kind '" + std::string(k.name) + "': ";
  if (o.n <= 0 || o.n > max_synth_rows)
    fail_input(at + "option n = " + std::to_string(o.n) + " must be in [1, " + std::to_string(max_synth_rows) + "]");
  if (!std::isfinite(o.noise)) fail_input(at + "option noise must be a finite number");
  if (k.noise < 0 && o.noise >= 0) fail_input(at + "option noise does not apply (the bits are exact)");
  if (o.labeled_per_class >= 0 && k.classes == 0)
    fail_input(at + "option labeled_per_class needs a classification kind; this one is regression");
  Params p;
  p.n = o.n;
  p.seed = o.seed;
  p.classes = resolve_classes(k, o, at);
  p.dim = resolve_dim(k, o, at);
  p.noise = static_cast<float>(o.noise < 0 ? std::max(k.noise, 0.0) : o.noise);
  const int64_t row = std::string(k.name) == "shapes" ? image_side * image_side : p.dim;
  if (static_cast<double>(p.n) * static_cast<double>(row) > static_cast<double>(max_synth_floats))
    fail_input(at + "n = " + std::to_string(p.n) + " rows of " + std::to_string(row) + " features is more than " +
               std::to_string(max_synth_floats) + " floats");
  return p;
}

std::string option_text(const KindSpec& k) {
  std::ostringstream s;
  if (k.classes) s << "classes=" << k.classes << ' ';
  if (k.dim_option) s << "dim=" << k.dim << ' ';
  if (k.noise >= 0) s << "noise=" << k.noise;
  return s.str();
}

}  // namespace

DatasetContents synthesize(const SynthOptions& options) {
  const KindSpec& kind = find_kind(options.kind);
  Params p = resolve(kind, options);
  DatasetContents c;
  kind.generate(p, c);
  if (c.label_kind == LabelKind::classes) shuffle_rows(p.seed, c);
  if (options.labeled_per_class >= 0) mark_labeled(options.labeled_per_class, c);
  return c;
}

std::string synth_kinds_help() {
  // Columns as wide as their widest entry plus two spaces, so no name runs into its defaults.
  size_t name_width = 0, opts_width = 0;
  for (const KindSpec& k : kinds) {
    name_width = std::max(name_width, std::string(k.name).size() + 2);
    opts_width = std::max(opts_width, option_text(k).size() + 2);
  }
  std::ostringstream out;
  for (const KindSpec& k : kinds) {
    std::string name = k.name, opts = option_text(k);
    name.resize(name_width, ' ');
    opts.resize(opts_width, ' ');
    out << name << opts << k.about << '\n';
  }
  out << "all kinds: n=1000 seed=0; classification kinds also labeled_per_class=K (a /labeled mask)\n";
  return out.str();
}

}  // namespace dptrain
