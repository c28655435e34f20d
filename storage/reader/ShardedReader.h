// Produces each rank's slice of every global minibatch (docs/design.md rule 3). With shuffle =
// "global", epoch e visits the rows in one permutation drawn from (seed, e); step t takes
// perm[tB, (t+1)B) and rank r of N its contiguous share, so any N sees the same global batches.
// With "shard", rank r owns a fixed contiguous shard and shuffles it locally (for data that must
// not be read by every rank); "none" keeps file order (evaluation).
// Rows come from memory when the subset fits `memory_budget_bytes`, else straight from the file
// with one hyperslab per run of neighbouring rows. A background thread prepares the next
// `prefetch` batches into reusable slots, so a training step should never wait on I/O.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "models/core/Tensor.h"
#include "storage/dataset/DatasetFile.h"

namespace dptrain {

enum class Shuffle { global, shard, none };

struct ReaderOptions {
  int64_t global_batch = 128;
  int rank = 0, world = 1;
  uint64_t seed = 0;
  Shuffle shuffle = Shuffle::global;
  bool drop_last = false;
  int prefetch = 2;
  int64_t memory_budget_bytes = int64_t{1} << 30;
  // z-score normalization applied to every row when both are set (row_size values each).
  std::vector<float> mean, inv_std;
  // Class ids to use instead of the file's /y (indexed by file row), e.g. pseudo-labels; one per
  // row, so not for files with per-step labels.
  std::shared_ptr<const std::vector<int32_t>> labels;
  // Soft targets per file row (num_classes floats each), overriding labels where given.
  std::shared_ptr<const std::vector<float>> soft_targets;
  int64_t soft_target_dim = 0;
  // Gradient accumulation (train.accumulate): each global batch is handed out as this many
  // micro-batches, consecutive slices of it, each split across the ranks as a batch would be. A
  // micro-batch's rows keep their positions in the global batch (row0), so per-sample draws and
  // the augmentation's counters are the same as without accumulation; steps count global batches.
  int64_t accumulate = 1;
  // Per-batch transform on the host, e.g. augmentation: (x, rows, global step, row0 = the global
  // sample index of the first row).
  std::function<void(float* x, int64_t rows, int64_t step, int64_t row0)> transform;
};

// Where the reader stands: the next batch it will hand out.
struct ReaderCursor {
  int64_t epoch = 0;
  int64_t step_in_epoch = 0;
  int64_t micro = 0;  // the micro-batch within the step (accumulation); 0 between steps
  // Its saved fields (storage/checkpoint/StateFields.h): <prefix>epoch, <prefix>step. Checkpoints
  // are taken between steps, where micro is 0.
  template <class Fields>
  void fields(Fields& f, const std::string& prefix) {
    f(prefix + "epoch", epoch);
    f(prefix + "step", step_in_epoch);
  }
};

struct Batch {
  int64_t epoch = 0, step_in_epoch = 0;
  int64_t global_rows = 0;          // rows in the whole global batch (all its micro-batches)
  int64_t row0 = 0;                 // position of local row 0 within the global batch
  int64_t micro = 0;                // which micro-batch of the global batch (accumulation)
  int64_t micro_rows = 0;           // rows of this micro-batch on all ranks (global_rows without accumulation)
  Tensor x;                         // [rows, ...sample shape], host memory
  const int32_t* labels = nullptr;  // label_width per row (> 1: per-step class ids, -1 = padding)
  int64_t label_width = 1;
  const float* targets = nullptr;
  const int64_t* file_rows = nullptr;  // the file row of each local row
  int64_t rows() const { return x.rows(); }
};

struct ReaderStats {
  double wait_seconds = 0.0;  // time next() spent waiting for the prefetch thread
  int64_t batches = 0;
  int64_t bytes_read = 0;
};

class ShardedReader {
 public:
  // `rows` are the file rows this reader draws from (a split); they are visited in this order
  // when shuffle is none.
  ShardedReader(std::shared_ptr<const DatasetFile> file, std::vector<int64_t> rows, ReaderOptions options);
  ~ShardedReader();
  ShardedReader(const ShardedReader&) = delete;
  ShardedReader& operator=(const ShardedReader&) = delete;

  int64_t size() const { return static_cast<int64_t>(rows_.size()); }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  bool in_memory() const { return !memory_.empty(); }
  const DatasetFile& file() const { return *file_; }

  // Positions the reader so that next() returns batch (epoch, step_in_epoch, micro).
  void seek(const ReaderCursor& cursor);
  ReaderCursor cursor() const { return next_; }
  // The next batch (micro-batch with accumulation) of this rank, valid until the following call;
  // advances the cursor.
  const Batch& next();
  ReaderStats stats() const { return stats_; }

  // Global-batch slice [begin, end) of rank r among `world` for a batch of `batch_rows` rows.
  static std::pair<int64_t, int64_t> rank_slice(int64_t batch_rows, int rank, int world);

 private:
  struct Slot {
    Batch batch;
    Tensor x;
    std::vector<int32_t> labels;
    std::vector<float> targets;
    std::vector<int64_t> file_rows;
    bool ready = false;
    ReaderCursor cursor;
  };

  void start();
  void stop();
  void produce();
  void fill(Slot& slot, const ReaderCursor& c);
  const std::vector<int64_t>& permutation(int64_t epoch);
  ReaderCursor advance(ReaderCursor c) const;

  std::shared_ptr<const DatasetFile> file_;
  std::vector<int64_t> rows_;
  ReaderOptions o_;
  int64_t row_size_;
  int64_t label_width_;  // class ids per row in batches
  int64_t steps_per_epoch_ = 0;
  int64_t shard_begin_ = 0, shard_end_ = 0;  // shard mode: this rank's positions in rows_
  std::vector<float> memory_;                // in-memory rows in rows_ order (normalized)

  // producer state (touched by the prefetch thread only while it runs)
  int64_t perm_epoch_ = -1;
  std::vector<int64_t> perm_;
  std::vector<std::pair<int64_t, int64_t>> order_;  // (file row, slot position) for streamed reads
  std::vector<int64_t> sorted_rows_;
  std::vector<float> scratch_;

  std::vector<Slot> slots_;
  size_t consumer_slot_ = 0, producer_slot_ = 0;
  ReaderCursor next_, produce_from_;
  bool stopping_ = false, consumer_holds_ = false;
  std::exception_ptr error_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
  ReaderStats stats_;
};

}  // namespace dptrain
