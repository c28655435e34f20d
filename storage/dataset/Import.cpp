// CSV, NumPy .npy and text import into DatasetContents, and a report on a dataset file. The parsers
// are small and written here (the formats are simple) and treat the input as untrusted: every
// defect is reported with the file and the line, column, header field or byte offset at fault.
#include "storage/dataset/Import.h"
#include "storage/hdf5/SealedFile.h"

#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>

#include "models/core/Error.h"

namespace dptrain {

static_assert(std::endian::native == std::endian::little, ".npy import reads little-endian data in place");

namespace {

constexpr int64_t max_classes = int64_t{1} << 24;  // the same bound DatasetFile enforces

std::string read_whole_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail_input(path + ": cannot open: " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) fail_input(path + ": is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_input(path + ": cannot open: " + std::strerror(errno));
  std::string text(static_cast<size_t>(st.st_size), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.gcount() != static_cast<std::streamsize>(text.size())) fail_input(path + ": read failed");
  return text;
}

// "path:line", built only when a message needs it so that parsing a row allocates nothing.
std::string at_line(const std::string& path, int64_t line) { return path + ":" + std::to_string(line); }

std::string format_number(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// ---- CSV -------------------------------------------------------------------------------------------

// The cells of one CSV line; strings keep their capacity from line to line so parsing a large file
// does not allocate per row.
struct CsvCells {
  std::vector<std::string> cells;
  size_t size = 0;
  std::string& next() {
    if (size == cells.size()) cells.emplace_back();
    cells[size].clear();
    return cells[size++];
  }
};

// Reads a quoted field starting after its opening quote; "" inside stands for one quote.
size_t read_quoted(std::string_view line, size_t i, std::string& cell, const std::string& path, int64_t number) {
  while (true) {
    if (i >= line.size()) fail_input(at_line(path, number) + ": unterminated quoted field");
    if (line[i] == '"') {
      if (i + 1 < line.size() && line[i + 1] == '"') {
        cell += '"';
        i += 2;
        continue;
      }
      return i + 1;
    }
    cell += line[i++];
  }
}

void split_csv_line(std::string_view line, const std::string& path, int64_t number, CsvCells& out) {
  out.size = 0;
  size_t i = 0;
  while (true) {
    std::string& cell = out.next();
    while (i < line.size() && line[i] == ' ') ++i;
    if (i < line.size() && line[i] == '"') {
      i = read_quoted(line, i + 1, cell, path, number);
      while (i < line.size() && line[i] == ' ') ++i;
      if (i < line.size() && line[i] != ',') fail_input(at_line(path, number) + ": text after a closing quote");
    } else {
      size_t end = std::min(line.find(',', i), line.size());
      cell.assign(line.substr(i, end - i));
      i = end;
    }
    if (i >= line.size()) return;
    ++i;  // past the comma
  }
}

std::string trimmed(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// Parses a whole cell (surrounding blanks allowed) as a number.
bool parse_number(const std::string& cell, double& value) {
  const char* s = cell.c_str();
  while (*s == ' ' || *s == '\t') ++s;
  if (*s == '\0') return false;
  char* end = nullptr;
  value = std::strtod(s, &end);
  if (end == s) return false;
  while (*end == ' ' || *end == '\t') ++end;
  return *end == '\0';
}

bool is_blank(std::string_view line) { return line.find_first_not_of(" \t") == std::string_view::npos; }

// Calls f(line_number, line) for each non-blank line, CR of CRLF removed.
template <class F>
void for_each_line(const std::string& text, F&& f) {
  size_t pos = 0;
  int64_t number = 0;
  while (pos < text.size()) {
    size_t end = std::min(text.find('\n', pos), text.size());
    std::string_view line(text.data() + pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    ++number;
    if (!is_blank(line)) f(number, line);
    pos = end + 1;
  }
}

// The label column's index, or -1 without one: a header name first, then a (negative: from the
// end) integer index.
int64_t label_index(const CsvImportOptions& o, const std::vector<std::string>& header, int64_t columns) {
  const std::string& want = o.label_column;
  if (want.empty()) return -1;
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == want) return static_cast<int64_t>(i);
  char* end = nullptr;
  long long v = std::strtoll(want.c_str(), &end, 10);
  if (end == want.c_str() || *end != '\0') {
    if (header.empty())
      fail_input(o.path + ": label column '" + want + "' is not an index, and without a header row there are no names");
    std::string names;
    for (const std::string& h : header) names += (names.empty() ? "" : ", ") + h;
    fail_input(o.path + ": label column '" + want + "' is not in the header (columns: " + names + ")");
  }
  int64_t index = v < 0 ? columns + v : v;
  if (index < 0 || index >= columns)
    fail_input(o.path + ": label column " + want + " is out of range for " + std::to_string(columns) + " columns");
  if (columns < 2) fail_input(o.path + ": the label column is the only column; there are no features");
  return index;
}

struct CsvTable {
  std::vector<std::string> header;
  std::vector<float> x;
  std::vector<double> labels;
  std::vector<int64_t> label_lines;  // the line each label came from, for error messages
  int64_t columns = 0, label = -1;
};

std::string column_name(const CsvTable& t, size_t j) {
  return "column " + (t.header.empty() ? std::to_string(j) : t.header[j]);
}

void parse_csv_row(const CsvImportOptions& o, int64_t line_number, const CsvCells& row, CsvTable& t) {
  if (static_cast<int64_t>(row.size) != t.columns)
    fail_input(at_line(o.path, line_number) + ": expected " + std::to_string(t.columns) + " columns, found " +
               std::to_string(row.size));
  for (size_t j = 0; j < row.size; ++j) {
    double v = 0.0;
    if (!parse_number(row.cells[j], v))
      fail_input(at_line(o.path, line_number) + ": " + column_name(t, j) + ": '" + row.cells[j] + "' is not a number");
    if (!std::isfinite(v) || (static_cast<int64_t>(j) != t.label && !std::isfinite(static_cast<float>(v))))
      fail_input(at_line(o.path, line_number) + ": " + column_name(t, j) + ": '" + trimmed(row.cells[j]) +
                 "' is NaN, infinite or beyond float32");
    if (static_cast<int64_t>(j) == t.label) {
      t.labels.push_back(v);
      t.label_lines.push_back(line_number);
    } else {
      t.x.push_back(static_cast<float>(v));
    }
  }
}

CsvTable read_csv_table(const CsvImportOptions& o) {
  const std::string text = read_whole_file(o.path);
  CsvTable t;
  CsvCells row;
  bool first = true;
  for_each_line(text, [&](int64_t number, std::string_view line) {
    split_csv_line(line, o.path, number, row);
    if (first) {
      first = false;
      t.columns = static_cast<int64_t>(row.size);
      if (o.header)
        for (size_t j = 0; j < row.size; ++j) t.header.push_back(trimmed(row.cells[j]));
      t.label = label_index(o, t.header, t.columns);
      if (o.header) return;
    }
    parse_csv_row(o, number, row, t);
  });
  if (first) fail_input(o.path + ": empty file (no header and no data rows)");
  if (t.x.empty()) fail_input(o.path + ": no data rows");
  return t;
}

// Integer labels become class ids (task auto or classification), anything else regression targets.
void set_csv_labels(const CsvImportOptions& o, const CsvTable& t, DatasetContents& c) {
  bool integral = std::all_of(t.labels.begin(), t.labels.end(), [](double v) { return v == std::floor(v); });
  bool classify = o.task == "classification" || (o.task == "auto" && integral);
  if (!classify) {
    c.label_kind = LabelKind::values;
    c.target_dim = 1;
    c.targets.assign(t.labels.begin(), t.labels.end());
    return;
  }
  c.label_kind = LabelKind::classes;
  c.labels.resize(t.labels.size());
  int64_t max_label = 0;
  for (size_t i = 0; i < t.labels.size(); ++i) {
    double v = t.labels[i];
    if (v != std::floor(v) || v < 0 || v >= static_cast<double>(max_classes))
      fail_input(at_line(o.path, t.label_lines[i]) + ": label " + format_number(v) +
                 " is not a class id (an integer in [0, " + std::to_string(max_classes) + "))" +
                 (o.task == "auto" ? "; use task regression for numeric targets" : ""));
    c.labels[i] = static_cast<int32_t>(v);
    max_label = std::max<int64_t>(max_label, c.labels[i]);
  }
  c.num_classes = max_label + 1;
}

// ---- NPY -------------------------------------------------------------------------------------------

struct NpyDtype {
  const char* descr;
  size_t size;
  bool floating;
};

const NpyDtype npy_dtypes[] = {
    {"<f4", 4, true},  {"<f8", 8, true},  {"|i1", 1, false}, {"<i2", 2, false}, {"<i4", 4, false}, {"<i8", 8, false},
    {"|u1", 1, false}, {"<u2", 2, false}, {"<u4", 4, false}, {"<u8", 8, false}, {"|b1", 1, false},
};

struct NpyArray {
  std::string path;
  const NpyDtype* dtype = nullptr;
  std::vector<int64_t> shape;
  std::string bytes;  // the whole file
  size_t data_offset = 0;
  int64_t count = 1;  // elements
};

// The text after "'key':" in the header dict.
std::string_view dict_value(std::string_view header, const std::string& key, const std::string& path) {
  size_t at = header.find("'" + key + "'");
  if (at == std::string_view::npos) at = header.find("\"" + key + "\"");
  if (at == std::string_view::npos) fail_input(path + ": .npy header has no '" + key + "' entry");
  size_t colon = header.find(':', at + key.size() + 2);
  if (colon == std::string_view::npos) fail_input(path + ": .npy header entry '" + key + "' has no value");
  size_t start = header.find_first_not_of(' ', colon + 1);
  return start == std::string_view::npos ? std::string_view() : header.substr(start);
}

const NpyDtype& parse_descr(std::string_view header, const std::string& path) {
  std::string_view v = dict_value(header, "descr", path);
  if (v.empty() || (v[0] != '\'' && v[0] != '"'))
    fail_input(path + ": structured (record) dtypes are not supported; save a plain numeric array");
  size_t close = v.find(v[0], 1);
  if (close == std::string_view::npos) fail_input(path + ": .npy header has an unterminated 'descr'");
  std::string descr(v.substr(1, close - 1));
  for (const NpyDtype& d : npy_dtypes)
    if (descr == d.descr) return d;
  if (!descr.empty() && descr[0] == '>')
    fail_input(path + ": big-endian dtype '" + descr + "' is not supported; save with arr.astype('<" + descr.substr(1) +
               "')");
  if (descr.find('O') != std::string::npos)
    fail_input(path + ": object dtype '" + descr + "' is not supported; save a numeric array");
  fail_input(path + ": unsupported dtype '" + descr + "' (supported: f4, f8, i1, i2, i4, i8, u1, u2, u4, u8, b1)");
}

std::vector<int64_t> parse_shape(std::string_view header, const std::string& path) {
  std::string_view v = dict_value(header, "shape", path);
  size_t close = v.find(')');
  if (v.empty() || v[0] != '(' || close == std::string_view::npos)
    fail_input(path + ": .npy header has a malformed 'shape'");
  std::vector<int64_t> shape;
  std::string inner(v.substr(1, close - 1));
  const char* s = inner.c_str();
  while (true) {
    while (*s == ' ' || *s == ',') ++s;
    if (*s == '\0') break;
    char* end = nullptr;
    errno = 0;
    long long d = std::strtoll(s, &end, 10);
    if (end == s || d < 0 || errno == ERANGE)
      fail_input(path + ": .npy header has a malformed 'shape' (" + inner + ")");
    shape.push_back(d);
    s = end;
    if (*s == 'L') ++s;  // written by Python 2
  }
  return shape;
}

// Reads and checks the header; the data must be exactly what the shape and dtype claim.
NpyArray read_npy(const std::string& path) {
  NpyArray a;
  a.path = path;
  a.bytes = read_whole_file(path);
  const std::string& b = a.bytes;
  if (b.size() < 10 || b.compare(0, 6, "\x93NUMPY") != 0) fail_input(path + ": not a NumPy .npy file (bad magic)");
  const int major = static_cast<unsigned char>(b[6]);
  if (major < 1 || major > 3) fail_input(path + ": unsupported .npy format version " + std::to_string(major));
  const size_t prefix = major == 1 ? 10 : 12;
  if (b.size() < prefix) fail_input(path + ": truncated .npy header");
  size_t header_len = static_cast<unsigned char>(b[8]) | (static_cast<size_t>(static_cast<unsigned char>(b[9])) << 8);
  if (major > 1)
    header_len |= (static_cast<size_t>(static_cast<unsigned char>(b[10])) << 16) |
                  (static_cast<size_t>(static_cast<unsigned char>(b[11])) << 24);
  if (header_len > b.size() - prefix) fail_input(path + ": truncated .npy header");
  std::string_view header(b.data() + prefix, header_len);
  a.data_offset = prefix + header_len;
  a.dtype = &parse_descr(header, path);
  if (dict_value(header, "fortran_order", path).substr(0, 4) == "True")
    fail_input(path + ": fortran_order arrays are not supported; save np.ascontiguousarray(arr)");
  a.shape = parse_shape(header, path);
  const size_t available = b.size() - a.data_offset;
  double claimed = static_cast<double>(a.dtype->size);
  for (int64_t d : a.shape) claimed *= static_cast<double>(d);
  if (claimed > static_cast<double>(available))
    fail_input(path + ": truncated: shape needs " + std::to_string(static_cast<int64_t>(claimed)) +
               " bytes of data but the file has " + std::to_string(available));
  for (int64_t d : a.shape) a.count *= d;
  if (static_cast<size_t>(a.count) * a.dtype->size != available)
    fail_input(path + ": " + std::to_string(available - static_cast<size_t>(a.count) * a.dtype->size) +
               " bytes after the data that the shape does not account for (corrupt file?)");
  return a;
}

template <class T, class Out>
void widen(const char* src, int64_t count, Out* out) {
  for (int64_t i = 0; i < count; ++i) {
    T v;
    std::memcpy(&v, src + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
    out[i] = static_cast<Out>(v);
  }
}

// Converts the array's elements to float or double.
template <class Out>
std::vector<Out> npy_values(const NpyArray& a) {
  std::vector<Out> out(static_cast<size_t>(a.count));
  const char* src = a.bytes.data() + a.data_offset;
  const std::string d = a.dtype->descr;
  if (d == "<f4")
    widen<float>(src, a.count, out.data());
  else if (d == "<f8")
    widen<double>(src, a.count, out.data());
  else if (d == "|i1")
    widen<int8_t>(src, a.count, out.data());
  else if (d == "<i2")
    widen<int16_t>(src, a.count, out.data());
  else if (d == "<i4")
    widen<int32_t>(src, a.count, out.data());
  else if (d == "<i8")
    widen<int64_t>(src, a.count, out.data());
  else if (d == "<u2")
    widen<uint16_t>(src, a.count, out.data());
  else if (d == "<u4")
    widen<uint32_t>(src, a.count, out.data());
  else if (d == "<u8")
    widen<uint64_t>(src, a.count, out.data());
  else
    widen<uint8_t>(src, a.count, out.data());  // |u1 and |b1
  return out;
}

void set_npy_features(const NpyArray& a, DatasetContents& c) {
  if (a.shape.empty()) fail_input(a.path + ": X is a scalar; need shape [N, features...]");
  if (a.shape.size() > Shape::max_rank + 1)
    fail_input(a.path + ": X has rank " + std::to_string(a.shape.size()) + ", more than " +
               std::to_string(Shape::max_rank + 1));
  if (a.shape[0] == 0) fail_input(a.path + ": X has no rows");
  std::vector<int64_t> sample(a.shape.begin() + 1, a.shape.end());
  if (sample.empty()) sample.push_back(1);  // rank-1 X: one feature per row
  c.sample_shape = Shape(sample);
  if (c.sample_shape.numel() == 0) fail_input(a.path + ": X has an empty feature dimension");
  c.x = npy_values<float>(a);
  const int64_t row = c.sample_shape.numel();
  for (int64_t i = 0; i < a.shape[0]; ++i)
    for (int64_t j = 0; j < row; ++j)
      if (!std::isfinite(c.x[i * row + j])) fail_input(a.path + ": row " + std::to_string(i) + " contains NaN or Inf");
}

void set_npy_labels(const NpyArray& a, int64_t rows, DatasetContents& c) {
  if (a.shape.empty() || a.shape.size() > 2)
    fail_input(a.path + ": Y must have shape [N] or [N, k], found rank " + std::to_string(a.shape.size()));
  if (a.shape[0] != rows)
    fail_input(a.path + ": Y has " + std::to_string(a.shape[0]) + " rows but X has " + std::to_string(rows));
  const int64_t k = a.shape.size() == 2 ? a.shape[1] : 1;
  std::vector<double> v = npy_values<double>(a);
  if (a.dtype->floating) {
    c.label_kind = LabelKind::values;
    c.target_dim = k;
    c.targets.assign(v.begin(), v.end());
    for (size_t i = 0; i < v.size(); ++i)
      if (!std::isfinite(c.targets[i]))
        fail_input(a.path + ": Y row " + std::to_string(i / static_cast<size_t>(k)) + " is NaN or infinite");
    return;
  }
  if (k != 1) fail_input(a.path + ": integer Y holds class ids and must be [N], found [N, " + std::to_string(k) + "]");
  c.label_kind = LabelKind::classes;
  c.labels.resize(v.size());
  int64_t max_label = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] < 0 || v[i] >= static_cast<double>(max_classes))
      fail_input(a.path + ": Y row " + std::to_string(i) + " has class id " + format_number(v[i]) + ", outside [0, " +
                 std::to_string(max_classes) + ")");
    c.labels[i] = static_cast<int32_t>(v[i]);
    max_label = std::max<int64_t>(max_label, c.labels[i]);
  }
  c.num_classes = max_label + 1;
}

// ---- text ------------------------------------------------------------------------------------------

constexpr int64_t max_context = int64_t{1} << 20;  // a longer window is a typo, not a model

std::string byte_at(std::string_view t, size_t i) {
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned>(static_cast<unsigned char>(t[i])));
  return "byte offset " + std::to_string(i) + " (" + hex + ")";
}

// Length of the well-formed UTF-8 sequence at t[i] (RFC 3629: no overlong forms, surrogates or code
// points past U+10FFFF), or 0 with `bad` set to the offset of the first byte that breaks it.
size_t utf8_length(std::string_view t, size_t i, size_t& bad) {
  const auto at = [&](size_t k) { return static_cast<unsigned char>(t[k]); };
  const unsigned char c = at(i);
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // the range of the second byte
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;  // overlong
    if (c == 0xed) hi = 0x9f;  // surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;  // overlong
    if (c == 0xf4) hi = 0x8f;  // past U+10FFFF
  } else {
    bad = i;  // a continuation byte without a lead, or a lead byte UTF-8 never uses
    return 0;
  }
  for (size_t k = 1; k < n; ++k) {
    if (i + k >= t.size()) {
      bad = i;  // cut short by the end of the file
      return 0;
    }
    const unsigned char b = at(i + k);
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf)) {
      bad = i + k;
      return 0;
    }
  }
  return n;
}

// Refuses what is not text: a NUL byte, invalid UTF-8, or more than 1 % control characters other
// than the whitespace ones (\t \n \v \f \r).
void check_text(const std::string& path, std::string_view t) {
  int64_t controls = 0;
  size_t first_control = 0;
  for (size_t i = 0; i < t.size();) {
    const unsigned char c = static_cast<unsigned char>(t[i]);
    if (c == 0) fail_input(path + ": NUL byte at " + byte_at(t, i) + ": binary data, not text");
    if (c < 0x80) {
      if ((c < 0x20 && (c < '\t' || c > '\r')) || c == 0x7f) {
        if (controls++ == 0) first_control = i;
      }
      ++i;
      continue;
    }
    size_t bad = 0;
    const size_t n = utf8_length(t, i, bad);
    if (n == 0)
      fail_input(path + ": invalid UTF-8 at " + byte_at(t, bad) +
                 ": binary data or another encoding (convert the text to UTF-8)");
    i += n;
  }
  if (controls * 100 > static_cast<int64_t>(t.size()))
    fail_input(path + ": " + std::to_string(controls) + " of " + std::to_string(t.size()) +
               " bytes are control characters (more than 1 %), the first at " + byte_at(t, first_control) +
               ": binary data, not text");
}

// `count` windows of T bytes starting at `begin`, each with its next-byte targets.
DatasetContents text_windows(std::string_view t, int64_t begin, int64_t count, int64_t T) {
  DatasetContents c;
  c.sample_shape = Shape{T};
  c.label_kind = LabelKind::classes;
  c.num_classes = 256;
  c.label_width = T;
  c.x.resize(static_cast<size_t>(count * T));
  c.labels.resize(static_cast<size_t>(count * T));
  for (int64_t i = 0; i < count * T; ++i) {
    const size_t at = static_cast<size_t>(begin + i);
    c.x[static_cast<size_t>(i)] = static_cast<float>(static_cast<unsigned char>(t[at]));
    c.labels[static_cast<size_t>(i)] = static_cast<unsigned char>(t[at + 1]);
  }
  return c;
}

// ---- inspect ---------------------------------------------------------------------------------------

// The stored HDF5 type in numpy's words (float32, int64, uint8, ...).
std::string stored_type(hid_t dataset, const std::string& what) {
  H5Id type = h5_datatype(H5Dget_type(dataset), what);
  const size_t bits = H5Tget_size(type) * 8;
  switch (H5Tget_class(type)) {
    case H5T_FLOAT:
      return "float" + std::to_string(bits);
    case H5T_INTEGER:
      return (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(bits);
    default:
      return "non-numeric";
  }
}

std::string dims_text(const std::vector<hsize_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// Counts NaN/Inf in /x, reading about 4 MiB at a time; read directly, not through
// DatasetFile::read_rows, which stops at the first bad row.
int64_t count_non_finite(hid_t x, const std::vector<hsize_t>& dims, const std::string& what) {
  hsize_t row = 1;
  for (size_t i = 1; i < dims.size(); ++i) row *= dims[i];
  const hsize_t chunk_rows = std::max<hsize_t>(1, (hsize_t{1} << 20) / row);
  std::vector<float> buffer(static_cast<size_t>(chunk_rows * row));
  std::vector<hsize_t> start(dims.size(), 0), count = dims;
  H5Id file_space = h5_dataspace(H5Dget_space(x), what);
  int64_t bad = 0;
  for (hsize_t begin = 0; begin < dims[0]; begin += chunk_rows) {
    start[0] = begin;
    count[0] = std::min(chunk_rows, dims[0] - begin);
    DPT_H5(H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr), what);
    H5Id mem_space = h5_dataspace(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), what);
    DPT_H5(H5Dread(x, H5T_NATIVE_FLOAT, mem_space, file_space, H5P_DEFAULT, buffer.data()), what);
    const size_t n = static_cast<size_t>(count[0] * row);
    for (size_t i = 0; i < n; ++i) bad += !std::isfinite(buffer[i]);
  }
  return bad;
}

std::string class_counts(const DatasetFile& f) {
  std::vector<int64_t> counts(static_cast<size_t>(f.num_classes()), 0);
  for (int32_t l : f.labels()) ++counts[l];
  constexpr size_t shown = 32;  // a long tail of classes would drown the report
  std::string s;
  for (size_t k = 0; k < std::min(counts.size(), shown); ++k)
    s += (k ? "  " : "") + std::to_string(k) + ": " + std::to_string(counts[k]);
  if (counts.size() > shown) s += "  ... (" + std::to_string(counts.size() - shown) + " more)";
  return s;
}

// Per-step labels: a class table of, say, 256 byte values says little; count what matters.
std::string step_label_summary(const DatasetFile& f) {
  std::vector<char> used(static_cast<size_t>(f.num_classes()), 0);
  int64_t padding = 0;
  for (int32_t l : f.labels()) {
    if (l < 0)
      ++padding;
    else
      used[static_cast<size_t>(l)] = 1;
  }
  return std::to_string(std::count(used.begin(), used.end(), 1)) + " used, " + std::to_string(padding) + " of " +
         std::to_string(f.labels().size()) + " positions padding (-1)";
}

std::string target_summary(const DatasetFile& f) {
  const std::vector<float>& t = f.targets();
  auto [lo, hi] = std::minmax_element(t.begin(), t.end());
  double sum = 0.0;
  for (float v : t) sum += v;
  return "min " + format_number(*lo) + ", max " + format_number(*hi) + ", mean " +
         format_number(sum / static_cast<double>(t.size()));
}

herr_t collect_name(hid_t, const char* name, const H5L_info_t*, void* out) {
  static_cast<std::vector<std::string>*>(out)->push_back(name);
  return 0;
}

// Datasets other than x, y and labeled (such as /true_weights), with their type and shape.
std::string extras_text(hid_t file, const std::string& path) {
  std::vector<std::string> names;
  DPT_H5(H5Literate(file, H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_name, &names), path + ": listing datasets");
  std::string s;
  for (const std::string& name : names) {
    if (name == "x" || name == "y" || name == "labeled") continue;
    H5Id ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
    if (!ds.valid()) {  // a group, not a dataset
      H5Eclear2(H5E_DEFAULT);
      continue;
    }
    s += "extra: /" + name + " " + stored_type(ds, path + ": /" + name) + " " + dims_text(h5_dims(ds, path)) + "\n";
  }
  return s;
}

}  // namespace

DatasetContents import_csv(const CsvImportOptions& options) {
  const std::string& t = options.task;
  if (t != "auto" && t != "classification" && t != "regression")
    fail_input(options.path + ": task '" + t + "' must be auto, classification or regression");
  if (options.label_column.empty() && t != "auto") fail_input(options.path + ": task " + t + " needs a label column");
  CsvTable table = read_csv_table(options);
  DatasetContents c;
  c.sample_shape = Shape{table.columns - (table.label >= 0 ? 1 : 0)};
  c.x = std::move(table.x);
  if (table.label >= 0) set_csv_labels(options, table, c);
  return c;
}

DatasetContents import_npy(const std::string& x_path, const std::string& y_path) {
  DatasetContents c;
  {
    NpyArray x = read_npy(x_path);  // scoped: the file's bytes go once converted
    set_npy_features(x, c);
  }
  if (!y_path.empty()) set_npy_labels(read_npy(y_path), c.rows(), c);
  return c;
}

TextImport import_text(const TextImportOptions& o) {
  const std::string& p = o.path;
  const int64_t T = o.context;
  if (T < 2 || T > max_context)
    fail_input(p + ": context " + std::to_string(T) + " is out of range [2, " + std::to_string(max_context) + "]");
  const double f = o.validation_fraction;
  if (!(f >= 0.0 && f < 1.0)) fail_input(p + ": validation fraction " + format_number(f) + " is outside [0, 1)");
  const std::string text = read_whole_file(p);
  if (text.empty()) fail_input(p + ": empty file");
  check_text(p, text);
  // Windows need T + 1 bytes (the last target is the byte after the window) and stay inside
  // their part: [0, split) for training, [split, n) for validation.
  const int64_t n = static_cast<int64_t>(text.size());
  const int64_t tail = static_cast<int64_t>(std::floor(f * static_cast<double>(n)));
  const int64_t split = n - tail;
  const int64_t train_windows = (split - 1) / T, validation_windows = tail > 0 ? (tail - 1) / T : 0;
  if (train_windows == 0)
    fail_input(p + ": too short: " + std::to_string(split) + " bytes of training text" +
               (tail > 0 ? " (after the validation tail)" : "") + ", one window of context " + std::to_string(T) +
               " needs " + std::to_string(T + 1));
  if (f > 0.0 && validation_windows == 0)
    fail_input(p + ": too short for validation: the last " + std::to_string(tail) + " bytes (fraction " +
               format_number(f) + ") make no window of context " + std::to_string(T) + ", which needs " +
               std::to_string(T + 1) + " bytes; give more text, a larger fraction or a smaller context");
  TextImport out;
  out.train = text_windows(text, 0, train_windows, T);
  if (validation_windows > 0) out.validation = text_windows(text, split, validation_windows, T);
  return out;
}

void write_train_validation_files(const std::string& train_path, const DatasetContents& train,
                                  const std::string& validation_path, const DatasetContents& validation) {
  if (validation.rows() == 0) {
    write_dataset_file(train_path, train);
    return;
  }
  std::error_code e1, e2;
  const auto a = std::filesystem::weakly_canonical(train_path, e1),
             b = std::filesystem::weakly_canonical(validation_path, e2);
  if (e1 || e2 ? train_path == validation_path : a == b)
    fail_input(validation_path + ": the validation file must differ from the training file " + train_path);
  write_dataset_file(validation_path, validation);
  try {
    write_dataset_file(train_path, train);
  } catch (...) {
    std::remove(validation_path.c_str());  // one file without the other is half an import
    throw;
  }
}

std::string inspect_dataset(const std::string& path) {
  const bool sealed = verify_seal(path);  // before HDF5 parses anything of a damaged file
  DatasetFile f(path);
  H5Id file = h5_open_read(path);
  H5Id x = h5_dataset(H5Dopen2(file, "x", H5P_DEFAULT), path + ": /x");
  std::vector<hsize_t> x_dims = h5_dims(x, path + ": /x");
  std::ostringstream out;
  std::string format = h5_has_attribute(file, "format") ? h5_read_string_attribute(file, "format", path) : "";
  out << "file: " << path << " (format " << (format.empty() ? "attribute missing" : format) << ")"
      << (sealed ? ", file checksum verified" : ", no file checksum (written by another tool)") << "\n";
  out << "x: " << stored_type(x, path + ": /x") << " " << dims_text(x_dims) << " (" << f.row_size()
      << " features per row), " << count_non_finite(x, x_dims, path + ": scanning /x") << " NaN/Inf\n";
  if (f.label_kind() == LabelKind::none) {
    out << "y: none (unlabelled)\n";
  } else {
    H5Id y = h5_dataset(H5Dopen2(file, "y", H5P_DEFAULT), path + ": /y");
    out << "y: " << stored_type(y, path + ": /y");
    if (f.label_kind() == LabelKind::classes && f.label_width() > 1)
      out << " per-step class ids " << dims_text(h5_dims(y, path)) << " (" << f.label_width() << " per row), "
          << f.num_classes() << " classes: " << step_label_summary(f);
    else if (f.label_kind() == LabelKind::classes)
      out << " class ids " << dims_text(h5_dims(y, path)) << ", " << f.num_classes() << " classes: " << class_counts(f);
    else
      out << " targets " << dims_text(h5_dims(y, path)) << ", " << target_summary(f);
    out << "\n";
  }
  if (f.has_labeled_mask()) {
    const auto& mask = f.labeled_mask();
    out << "labeled: " << std::count_if(mask.begin(), mask.end(), [](uint8_t m) { return m != 0; }) << " of "
        << f.rows() << " rows\n";
  }
  out << extras_text(file, path);
  out << "task: " << f.task() << "\n";
  return out.str();
}

}  // namespace dptrain
