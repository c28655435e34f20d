#include "trainer/DataSplits.h"

#include <algorithm>
#include <cmath>

#include "models/core/Philox.h"

namespace dptrain {

namespace {

// Pseudo-labels, confidence selection and /labeled masks are per row: a sequence's per-step labels
// have no place there (padding positions, -1, already mark what carries no label).
void require_row_labels(const DatasetFile& f, const std::string& what) {
  if (f.label_kind() == LabelKind::classes && f.label_width() > 1)
    fail_input(f.path() + ": " + what + " needs one class per row, but /y holds " + std::to_string(f.label_width()) +
               " per row (per-step labels)");
}

}  // namespace

void merge_for_self_training(const std::string& labelled, const std::string& unlabelled, const std::string& out) {
  DatasetFile a(labelled), b(unlabelled);
  if (a.label_kind() != LabelKind::classes)
    fail_input(labelled + ": self-training needs class labels in /y (integer class ids)");
  require_row_labels(a, "self-training");
  require_row_labels(b, "self-training");
  if (b.sample_shape() != a.sample_shape())
    fail_input(unlabelled + ": rows are " + b.sample_shape().str() + ", the labelled rows " + a.sample_shape().str());
  DatasetContents c;
  c.sample_shape = a.sample_shape();
  c.label_kind = LabelKind::classes;
  c.num_classes = std::max(a.num_classes(), b.label_kind() == LabelKind::classes ? b.num_classes() : 0);
  const int64_t row = a.row_size();
  c.x.resize(static_cast<size_t>((a.rows() + b.rows()) * row));
  a.read_rows(0, a.rows(), c.x.data());
  b.read_rows(0, b.rows(), c.x.data() + a.rows() * row);
  c.labels = a.labels();
  c.labeled.assign(static_cast<size_t>(a.rows()), 1);
  for (int64_t i = 0; i < b.rows(); ++i) {
    // Unlabelled rows keep a known true label only for reporting; 0 stands in when there is none.
    c.labels.push_back(b.label_kind() == LabelKind::classes ? b.labels()[static_cast<size_t>(i)] : 0);
    c.labeled.push_back(0);
  }
  write_dataset_file(out, c);
}

std::vector<int64_t> all_rows(const DatasetFile& file) {
  std::vector<int64_t> rows(static_cast<size_t>(file.rows()));
  for (int64_t i = 0; i < file.rows(); ++i) rows[static_cast<size_t>(i)] = i;
  return rows;
}

DataSplits make_splits(const DataConfig& c) {
  if (c.train.empty()) fail_input("config: [data] train = \"FILE\" is required");
  DataSplits s;
  auto train = std::make_shared<const DatasetFile>(c.train);
  if (train->label_kind() == LabelKind::none) fail_input(c.train + ": training data needs labels or targets in /y");
  if (train->has_labeled_mask()) require_row_labels(*train, "a /labeled mask (semi-supervised data, self-training)");
  std::vector<int64_t> rows = all_rows(*train);
  const int64_t n = train->rows();
  const int64_t n_test = static_cast<int64_t>(std::floor(c.test_fraction * static_cast<double>(n)));
  const int64_t n_val = static_cast<int64_t>(std::floor(c.validation_fraction * static_cast<double>(n)));
  if (n_test || n_val || c.folds > 0) {
    Philox rng(c.split_seed, RandomPurpose::split);
    for (int64_t i = n - 1; i > 0; --i)
      std::swap(rows[static_cast<size_t>(i)], rows[static_cast<size_t>(rng.below(static_cast<uint64_t>(i + 1)))]);
  }
  auto take = [&](int64_t begin, int64_t count) {
    std::vector<int64_t> part(rows.begin() + begin, rows.begin() + begin + count);
    std::sort(part.begin(), part.end());
    return part;
  };
  s.test = {train, take(0, n_test)};
  s.validation = {train, take(n_test, n_val)};
  s.train = {train, take(n_test + n_val, n - n_test - n_val)};
  if (c.folds > 0) {  // cross-validation: fold `fold` of the rows after the test split validates
    const int64_t m = n - n_test;
    if (m < c.folds)
      fail_input("data.folds = " + std::to_string(c.folds) + ": " + c.train + " has " + std::to_string(m) +
                 " rows after the test split, fewer than the folds");
    const int64_t begin = n_test + m * c.fold / c.folds, end = n_test + m * (c.fold + 1) / c.folds;
    s.validation = {train, take(begin, end - begin)};
    std::vector<int64_t> rest(rows.begin() + n_test, rows.begin() + begin);
    rest.insert(rest.end(), rows.begin() + end, rows.end());
    std::sort(rest.begin(), rest.end());
    s.train = {train, std::move(rest)};
  }
  s.unlabeled = {train, {}};
  if (train->has_labeled_mask()) {
    std::vector<int64_t> labelled;
    for (int64_t r : s.train.rows)
      (train->labeled_mask()[static_cast<size_t>(r)] ? labelled : s.unlabeled.rows).push_back(r);
    s.train.rows = std::move(labelled);
  }
  if (s.train.rows.empty())
    fail_input(c.train + ": no labelled rows left for training after the validation/test split");

  auto open_other = [&](const std::string& path, const char* what) -> DataSplit {
    auto f = std::make_shared<const DatasetFile>(path);
    if (f->sample_shape() != train->sample_shape())
      fail_input(path + ": " + what + " rows are " + f->sample_shape().str() + ", training rows " +
                 train->sample_shape().str());
    if (f->label_kind() != train->label_kind())
      fail_input(path + ": " + what + " data must have the same kind of /y as the training data");
    if (f->label_width() != train->label_width())
      fail_input(path + ": " + what + " data has " + std::to_string(f->label_width()) +
                 " class ids per row in /y, training data " + std::to_string(train->label_width()));
    if (f->label_kind() == LabelKind::classes && f->num_classes() > train->num_classes())
      fail_input(path + ": " + what + " data has " + std::to_string(f->num_classes()) + " classes, training data " +
                 std::to_string(train->num_classes()));
    return {f, all_rows(*f)};
  };
  if (!c.validation.empty()) s.validation = open_other(c.validation, "validation");
  if (!c.test.empty()) s.test = open_other(c.test, "test");
  return s;
}

}  // namespace dptrain
