// All-reduces the flat gradient buffer in buckets (DESIGN.md rule 6). Buckets are contiguous
// ranges whose edges fall on parameter boundaries, built from the end of the buffer because
// backward finishes the last layers first. The model's backward reports, after each layer, the
// offset from which gradients are final; every bucket lying wholly above it starts its
// non-blocking all-reduce at once, so communication overlaps the rest of backward. finish()
// starts whatever is left and waits for all; the optimizer runs after it.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "comm/Communicator.h"

namespace dptrain {

class GradientReducer {
 public:
  // `param_offsets` are the start offsets of every parameter, ascending; n is the buffer length.
  GradientReducer(Communicator& comm, float* grads, int64_t n, const std::vector<int64_t>& param_offsets,
                  int64_t bucket_bytes);

  struct Bucket {
    int64_t begin, end;  // floats
  };
  const std::vector<Bucket>& buckets() const { return buckets_; }

  // Call before backward.
  void begin_step(int64_t step);
  // Gradients in [offset, n) are final: start every bucket that lies wholly inside.
  void ready_from(int64_t offset);
  // Starts the remaining buckets and waits for all of them.
  void finish();
  // Seconds finish() spent waiting in the last step (communication not hidden behind backward).
  double last_wait_seconds() const { return last_wait_; }

 private:
  void launch_next();
  Communicator& comm_;
  float* grads_;
  int64_t n_;
  std::vector<Bucket> buckets_;  // in launch order: highest offsets first
  std::vector<std::unique_ptr<CommRequest>> requests_;
  size_t launched_ = 0;
  int64_t step_ = 0;
  double last_wait_ = 0.0;
};

}  // namespace dptrain
