#include "comm/GradientReducer.h"

#include <chrono>

#include "models/core/Error.h"

namespace dptrain {

std::vector<GradientReducer::Bucket> GradientReducer::from_offsets(const std::vector<int64_t>& offsets, int64_t n) {
  std::vector<Bucket> params;
  for (size_t i = 0; i < offsets.size(); ++i)
    params.push_back({i == 0 ? 0 : offsets[i], i + 1 < offsets.size() ? offsets[i + 1] : n});
  if (offsets.empty() && n > 0) params.push_back({0, n});
  return params;
}

GradientReducer::GradientReducer(Communicator& comm, float* grads, int64_t n, const std::vector<int64_t>& param_offsets,
                                 int64_t bucket_bytes)
    : GradientReducer(comm, grads, from_offsets(param_offsets, n), bucket_bytes) {}

GradientReducer::GradientReducer(Communicator& comm, float* grads, const std::vector<Bucket>& params,
                                 int64_t bucket_bytes)
    : comm_(comm), grads_(grads), n_(params.empty() ? 0 : params.back().end) {
  const int64_t target = std::max<int64_t>(1, bucket_bytes / static_cast<int64_t>(sizeof(float)));
  int64_t end = -1;  // of the bucket being formed
  for (size_t i = params.size(); i-- > 0;) {
    if (end < 0) end = params[i].end;
    const int64_t begin = params[i].begin;
    if (end - begin >= target || i == 0 || params[i - 1].end != begin) {
      buckets_.push_back({begin, end});
      end = -1;
    }
  }
  for (size_t i = 0; i < buckets_.size(); ++i) requests_.push_back(comm_.make_request());
  control_request_ = comm_.make_request();
}

void GradientReducer::begin_step(int64_t step, const float (&control)[control_lanes]) {
  step_ = step;
  launched_ = 0;
  std::copy(std::begin(control), std::end(control), control_);
  if (comm_.size() == 1) return;
  comm_.set_operation("step control all-reduce", step_);
  comm_.allreduce_sum_async(control_, control_lanes, *control_request_);
}

void GradientReducer::launch_next() {
  const Bucket& b = buckets_[launched_];
  comm_.set_operation("gradient all-reduce", step_);
  comm_.allreduce_sum_async(grads_ + b.begin, b.end - b.begin, *requests_[launched_]);
  ++launched_;
}

void GradientReducer::ready_from(int64_t offset) {
  if (comm_.size() == 1) return;
  while (launched_ < buckets_.size() && buckets_[launched_].begin >= offset) launch_next();
  // Nudge the transport: MPI progresses non-blocking operations only inside MPI calls.
  for (size_t i = 0; i < launched_; ++i) (void)requests_[i]->test();
  (void)control_request_->test();
}

void GradientReducer::finish() {
  if (comm_.size() == 1) return;
  auto t0 = std::chrono::steady_clock::now();
  while (launched_ < buckets_.size()) launch_next();
  for (auto& r : requests_) r->wait();
  control_request_->wait();
  last_wait_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace dptrain
