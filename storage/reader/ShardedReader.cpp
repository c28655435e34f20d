#include "storage/reader/ShardedReader.h"

#include <algorithm>
#include <chrono>

#include "models/core/Error.h"
#include "models/core/Philox.h"

namespace dptrain {

std::pair<int64_t, int64_t> ShardedReader::rank_slice(int64_t batch_rows, int rank, int world) {
  return {batch_rows * rank / world, batch_rows * (rank + 1) / world};
}

ShardedReader::ShardedReader(std::shared_ptr<const DatasetFile> file, std::vector<int64_t> rows, ReaderOptions options)
    : file_(std::move(file)),
      rows_(std::move(rows)),
      o_(std::move(options)),
      row_size_(file_->row_size()),
      label_width_(file_->label_width()) {
  const std::string& p = file_->path();
  const int64_t m = size(), b = o_.global_batch;
  if (m == 0) fail_input(p + ": the split has no rows");
  if (b <= 0) fail_input("batch_size must be positive, got " + std::to_string(b));
  if (o_.world < 1 || o_.rank < 0 || o_.rank >= o_.world) fail_internal("reader: bad rank/world");
  if (o_.prefetch < 1) o_.prefetch = 1;
  if (o_.accumulate < 1 || o_.accumulate > b)
    fail_input("train.accumulate must be between 1 and batch_size " + std::to_string(b) + ", got " +
               std::to_string(o_.accumulate));
  if (o_.shuffle == Shuffle::shard && o_.accumulate > b / o_.world)
    fail_input("train.accumulate = " + std::to_string(o_.accumulate) + ": with shuffle = \"shard\" each rank splits " +
               "its share of batch_size (" + std::to_string(b / o_.world) + " rows) into the micro-batches");
  if (!o_.mean.empty() && (static_cast<int64_t>(o_.mean.size()) != row_size_ || o_.inv_std.size() != o_.mean.size()))
    fail_input(p + ": normalization statistics have " + std::to_string(o_.mean.size()) + " features, the data " +
               std::to_string(row_size_));
  if ((o_.labels || o_.soft_targets) && label_width_ > 1)
    fail_input(p + ": /y holds " + std::to_string(label_width_) +
               " class ids per row (per-step labels); pseudo-labels and soft targets are one per row");

  if (o_.shuffle == Shuffle::shard) {
    auto [sb, se] = rank_slice(m, o_.rank, o_.world);
    shard_begin_ = sb;
    shard_end_ = se;
    steps_per_epoch_ = -1;
    for (int r = 0; r < o_.world; ++r) {  // every rank computes the same epoch length
      auto [s0, s1] = rank_slice(b, r, o_.world);
      auto [m0, m1] = rank_slice(m, r, o_.world);
      if (s1 - s0 == 0) continue;
      int64_t steps = (m1 - m0) / (s1 - s0);
      steps_per_epoch_ = steps_per_epoch_ < 0 ? steps : std::min(steps_per_epoch_, steps);
    }
    if (steps_per_epoch_ <= 0)
      fail_input(p + ": with shuffle = \"shard\" each rank's shard of " + std::to_string(m / o_.world) +
                 " rows is smaller than its share of batch_size " + std::to_string(b));
  } else {
    steps_per_epoch_ = o_.drop_last ? m / b : (m + b - 1) / b;
    if (steps_per_epoch_ == 0)
      fail_input(p + ": batch_size " + std::to_string(b) + " exceeds the " + std::to_string(m) +
                 " rows of the split (with drop_last)");
  }

  if (m * row_size_ * static_cast<int64_t>(sizeof(float)) <= o_.memory_budget_bytes) {
    // Load the split in chunks of file order, then place each row at its split position.
    memory_.resize(static_cast<size_t>(m * row_size_));
    std::vector<std::pair<int64_t, int64_t>> order(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) order[static_cast<size_t>(i)] = {rows_[static_cast<size_t>(i)], i};
    std::sort(order.begin(), order.end());
    const int64_t chunk = std::max<int64_t>(1, (int64_t{64} << 20) / (row_size_ * 4));
    std::vector<int64_t> ids;
    std::vector<float> buf;
    for (int64_t c = 0; c < m; c += chunk) {
      int64_t n = std::min(chunk, m - c);
      ids.resize(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        ids[static_cast<size_t>(i)] = order[static_cast<size_t>(c + i)].first;
        if (i > 0 && ids[static_cast<size_t>(i)] == ids[static_cast<size_t>(i - 1)])
          fail_input(p + ": row " + std::to_string(ids[static_cast<size_t>(i)]) + " appears twice in a split");
      }
      buf.resize(static_cast<size_t>(n * row_size_));
      file_->read_row_list(ids.data(), n, buf.data());
      for (int64_t i = 0; i < n; ++i)
        std::copy_n(buf.data() + i * row_size_, row_size_,
                    memory_.data() + order[static_cast<size_t>(c + i)].second * row_size_);
    }
    if (!o_.mean.empty())
      for (int64_t r = 0; r < m; ++r)
        for (int64_t j = 0; j < row_size_; ++j) {
          float& v = memory_[static_cast<size_t>(r * row_size_ + j)];
          v = (v - o_.mean[static_cast<size_t>(j)]) * o_.inv_std[static_cast<size_t>(j)];
        }
    stats_.bytes_read += m * row_size_ * 4;
  }

  const int64_t max_local = (b + o_.world - 1) / o_.world;
  slots_.resize(static_cast<size_t>(o_.prefetch + 1));
  for (auto& s : slots_) {
    s.x.resize(file_->sample_shape().with_batch(max_local));
    s.labels.resize(static_cast<size_t>(max_local * label_width_));
    int64_t tdim = o_.soft_targets ? o_.soft_target_dim : file_->target_dim();
    s.targets.resize(static_cast<size_t>(max_local * std::max<int64_t>(1, tdim)));
    s.file_rows.resize(static_cast<size_t>(max_local));
  }
  order_.reserve(static_cast<size_t>(max_local));
  sorted_rows_.reserve(static_cast<size_t>(max_local));
  scratch_.resize(static_cast<size_t>(max_local * row_size_));
  start();
}

ShardedReader::~ShardedReader() { stop(); }

ReaderCursor ShardedReader::advance(ReaderCursor c) const {
  if (++c.micro < o_.accumulate) return c;
  c.micro = 0;
  if (++c.step_in_epoch >= steps_per_epoch_) {
    c.step_in_epoch = 0;
    ++c.epoch;
  }
  return c;
}

const std::vector<int64_t>& ShardedReader::permutation(int64_t epoch) {
  if (perm_epoch_ == epoch) return perm_;
  const bool shard = o_.shuffle == Shuffle::shard;
  const int64_t n = shard ? shard_end_ - shard_begin_ : size();
  perm_.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm_[static_cast<size_t>(i)] = (shard ? shard_begin_ : 0) + i;
  if (o_.shuffle != Shuffle::none) {
    // Fisher-Yates from a stream keyed by (seed, epoch) (and the rank for local shuffles).
    Philox rng(o_.seed, RandomPurpose::permutation, static_cast<uint32_t>(epoch),
               shard ? static_cast<uint64_t>(o_.rank) + 1 : 0);
    for (int64_t i = n - 1; i > 0; --i)
      std::swap(perm_[static_cast<size_t>(i)], perm_[static_cast<size_t>(rng.below(static_cast<uint64_t>(i + 1)))]);
  }
  perm_epoch_ = epoch;
  return perm_;
}

void ShardedReader::fill(Slot& slot, const ReaderCursor& c) {
  const int64_t b = o_.global_batch;
  const std::vector<int64_t>& perm = permutation(c.epoch);
  int64_t first, begin, end, global_rows;
  if (o_.shuffle == Shuffle::shard) {
    auto [s0, s1] = rank_slice(b, o_.rank, o_.world);
    first = c.step_in_epoch * (s1 - s0) - s0;  // perm index of global-batch position 0
    begin = s0;
    end = s1;
    global_rows = b;
  } else {
    first = c.step_in_epoch * b;
    global_rows = std::min(b, size() - first);
    std::tie(begin, end) = rank_slice(global_rows, o_.rank, o_.world);
  }
  int64_t micro_rows = global_rows;
  if (o_.accumulate > 1) {
    // Micro-batch m is the m-th of `accumulate` consecutive slices of the global batch (shard:
    // of each rank's share of it), split across the ranks like a whole batch. A last partial batch
    // of fewer rows than micro-batches leaves some of them empty on every rank.
    const int64_t k = o_.accumulate, m = c.micro;
    if (o_.shuffle == Shuffle::shard) {
      const int64_t share = end - begin;
      end = begin + share * (m + 1) / k;
      begin += share * m / k;
      micro_rows = 0;
      for (int r = 0; r < o_.world; ++r) {
        auto [s0, s1] = rank_slice(b, r, o_.world);
        micro_rows += (s1 - s0) * (m + 1) / k - (s1 - s0) * m / k;
      }
    } else {
      const int64_t m0 = global_rows * m / k, m1 = global_rows * (m + 1) / k;
      std::tie(begin, end) = rank_slice(m1 - m0, o_.rank, o_.world);
      begin += m0, end += m0;
      micro_rows = m1 - m0;
    }
  }
  const int64_t n = end - begin;
  for (int64_t i = 0; i < n; ++i) {
    int64_t pos = perm[static_cast<size_t>(first + begin + i)];
    slot.file_rows[static_cast<size_t>(i)] = rows_[static_cast<size_t>(pos)];
    if (in_memory()) std::copy_n(memory_.data() + pos * row_size_, row_size_, slot.x.data() + i * row_size_);
  }
  if (!in_memory() && n > 0) {
    order_.clear();
    for (int64_t i = 0; i < n; ++i) order_.emplace_back(slot.file_rows[static_cast<size_t>(i)], i);
    std::sort(order_.begin(), order_.end());
    sorted_rows_.clear();
    for (auto& [row, at] : order_) sorted_rows_.push_back(row);
    file_->read_row_list(sorted_rows_.data(), n, scratch_.data());
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(scratch_.data() + i * row_size_, row_size_,
                  slot.x.data() + order_[static_cast<size_t>(i)].second * row_size_);
    stats_.bytes_read += n * row_size_ * 4;
    if (!o_.mean.empty())
      for (int64_t r = 0; r < n; ++r) {
        float* v = slot.x.data() + r * row_size_;
        for (int64_t j = 0; j < row_size_; ++j)
          v[j] = (v[j] - o_.mean[static_cast<size_t>(j)]) * o_.inv_std[static_cast<size_t>(j)];
      }
  }

  Batch& bt = slot.batch;
  bt.epoch = c.epoch;
  bt.step_in_epoch = c.step_in_epoch;
  bt.micro = c.micro;
  bt.micro_rows = micro_rows;
  bt.global_rows = global_rows;
  bt.row0 = begin;
  bt.x = slot.x.rows_view(0, n);
  bt.file_rows = slot.file_rows.data();
  bt.labels = nullptr;
  bt.label_width = label_width_;
  bt.targets = nullptr;
  const std::vector<int32_t>* labels = o_.labels ? o_.labels.get() : &file_->labels();
  if (!labels->empty()) {
    const int64_t w = label_width_;
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(labels->data() + slot.file_rows[static_cast<size_t>(i)] * w, w, slot.labels.data() + i * w);
    bt.labels = slot.labels.data();
  }
  const std::vector<float>* targets = o_.soft_targets ? o_.soft_targets.get() : &file_->targets();
  int64_t tdim = o_.soft_targets ? o_.soft_target_dim : file_->target_dim();
  if (!targets->empty()) {
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(targets->data() + slot.file_rows[static_cast<size_t>(i)] * tdim, tdim,
                  slot.targets.data() + i * tdim);
    bt.targets = slot.targets.data();
  }
  if (o_.transform && n > 0) o_.transform(slot.x.data(), n, c.epoch * steps_per_epoch_ + c.step_in_epoch, begin);
}

void ShardedReader::produce() {
  while (true) {
    ReaderCursor c;
    Slot* slot;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !slots_[producer_slot_].ready; });
      if (stopping_) return;
      c = produce_from_;
      slot = &slots_[producer_slot_];
    }
    try {
      fill(*slot, c);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
      cv_.notify_all();
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    slot->cursor = c;
    slot->ready = true;
    produce_from_ = advance(c);
    producer_slot_ = (producer_slot_ + 1) % slots_.size();
    cv_.notify_all();
  }
}

const Batch& ShardedReader::next() {
  std::unique_lock<std::mutex> lock(mu_);
  if (consumer_holds_) {
    slots_[consumer_slot_].ready = false;
    consumer_slot_ = (consumer_slot_ + 1) % slots_.size();
    consumer_holds_ = false;
    cv_.notify_all();
  }
  Slot& slot = slots_[consumer_slot_];
  if (!slot.ready && !error_) {
    auto t0 = std::chrono::steady_clock::now();
    cv_.wait(lock, [&] { return slot.ready || error_; });
    stats_.wait_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  if (!slot.ready && error_) std::rethrow_exception(error_);
  consumer_holds_ = true;
  next_ = advance(slot.cursor);
  ++stats_.batches;
  return slot.batch;
}

void ShardedReader::start() {
  stopping_ = false;
  error_ = nullptr;
  for (auto& s : slots_) s.ready = false;
  consumer_slot_ = producer_slot_ = 0;
  consumer_holds_ = false;
  produce_from_ = next_;
  thread_ = std::thread([this] { produce(); });
}

void ShardedReader::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void ShardedReader::seek(const ReaderCursor& cursor) {
  stop();
  next_ = cursor;
  start();
}

}  // namespace dptrain
