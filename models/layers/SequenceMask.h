// Which steps of each sample are tokens and which are padding, [n, T] floats (1 token, 0 padding).
// The embedding that reads the ids writes it in forward when it has a padding id; the attention and
// pooling layers after it read it. The zoo hands one instance to all of them; empty (no padding id,
// or nothing run yet) means every step is a token.
#pragma once

#include "models/core/Tensor.h"

namespace dptrain {

struct SequenceMask {
  Tensor mask;
  const float* data() const { return mask.empty() ? nullptr : mask.data(); }
};

}  // namespace dptrain
