// A non-blocking in-place float sum over all ranks as a ring: reduce-scatter, then allgather,
// 2(n-1) steps of one send to the right and one receive from the left of about count/n floats.
// Each rank moves 2(n-1)/n of the buffer and every element is summed by one owner and copied to
// the others, so all ranks hold identical bits. Gradient buckets use it: Open MPI's non-blocking
// all-reduce (libnbc) reduces to a root and broadcasts back below 4 ranks, twice the traffic
// through one rank and the two halves one after the other (1.6x slower on 13 MB, 2 ranks).
#pragma once

#include <mpi.h>

#include <cstdint>
#include <vector>

namespace dptrain {

class RingAllreduce {
 public:
  RingAllreduce() = default;
  RingAllreduce(const RingAllreduce&) = delete;
  RingAllreduce& operator=(const RingAllreduce&) = delete;

  // Starts summing data[0, count) over `comm` (every rank calls it with the same count and tag;
  // rings in flight at the same time need different tags). Needs count >= ranks.
  void start(float* data, int64_t count, MPI_Comm comm, int tag);
  // Moves the ring on as far as it can without blocking; true once the sum is complete (or when
  // idle). Call it until it returns true; the buffer must not be touched before.
  [[nodiscard]] bool advance();
  bool active() const { return step_ < steps_; }

 private:
  void post();
  std::pair<int64_t, int64_t> segment(int index) const;

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, tag_ = 0;
  float* data_ = nullptr;
  int64_t count_ = 0;
  int step_ = 0, steps_ = 0;
  MPI_Request requests_[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  std::vector<float> incoming_;  // one segment from the left (reduce-scatter); grows once
};

}  // namespace dptrain
