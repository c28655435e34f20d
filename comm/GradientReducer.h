// All-reduces the flat gradient buffer in buckets (docs/design.md rule 6). Buckets are contiguous
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
  struct Bucket {
    int64_t begin, end;  // floats
  };
  // `param_offsets` are the start offsets of every parameter, ascending; n is the buffer length.
  GradientReducer(Communicator& comm, float* grads, int64_t n, const std::vector<int64_t>& param_offsets,
                  int64_t bucket_bytes);
  // Only the parameters in `params` (one range each, ascending) are summed: a bucket never spans
  // the gap of a parameter left out (a frozen layer's), and nothing outside them is sent.
  GradientReducer(Communicator& comm, float* grads, const std::vector<Bucket>& params, int64_t bucket_bytes);
  const std::vector<Bucket>& buckets() const { return buckets_; }

  // Call before forward. It also starts the sum of the step's control lane: `control` values set
  // by each rank (a stop request, rank 0's "checkpoint now") that every rank reads after finish(),
  // so decisions taken on one rank's clock or signal reach all ranks at the same step boundary
  // without a collective of their own.
  static constexpr int control_lanes = 2;
  void begin_step(int64_t step, const float (&control)[control_lanes]);
  void begin_step(int64_t step) { begin_step(step, {0.0f, 0.0f}); }
  // The control lanes summed over all ranks (valid after finish()).
  float control(int lane) const { return control_[lane]; }
  // Gradients in [offset, n) are final: start every bucket that lies wholly inside.
  void ready_from(int64_t offset);
  // Starts the remaining buckets and waits for all of them.
  void finish();
  // Seconds finish() spent waiting in the last step (communication not hidden behind backward).
  double last_wait_seconds() const { return last_wait_; }

 private:
  static std::vector<Bucket> from_offsets(const std::vector<int64_t>& offsets, int64_t n);
  void launch_next();
  Communicator& comm_;
  float* grads_;
  int64_t n_;
  std::vector<Bucket> buckets_;  // in launch order: highest offsets first
  std::vector<std::unique_ptr<CommRequest>> requests_;
  std::unique_ptr<CommRequest> control_request_;
  float control_[control_lanes] = {};
  size_t launched_ = 0;
  int64_t step_ = 0;
  double last_wait_ = 0.0;
};

}  // namespace dptrain
