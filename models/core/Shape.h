// A tensor shape of up to 6 dimensions held inline, so building and comparing shapes inside a
// training step never allocates.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace dptrain {

class Shape {
 public:
  static constexpr int max_rank = 6;

  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(const std::vector<int64_t>& dims);

  int rank() const { return rank_; }
  int64_t operator[](int i) const { return dims_[i]; }
  int64_t& operator[](int i) { return dims_[i]; }
  int64_t numel() const;
  // Product of all dimensions but the first: the size of one sample when dim 0 is the batch.
  int64_t row_size() const;
  // This shape with a leading batch dimension n.
  Shape with_batch(int64_t n) const;
  // This shape without its leading dimension.
  Shape drop_first() const;
  std::vector<int64_t> to_vector() const;
  std::string str() const;  // "[128, 1, 28, 28]"

  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }

 private:
  std::array<int64_t, max_rank> dims_{};
  int rank_ = 0;
};

}  // namespace dptrain
