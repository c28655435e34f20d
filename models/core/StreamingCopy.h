// A copy of a large host buffer that will not be read again soon (a checkpoint's staging copy):
// non-temporal stores write it to memory without first reading the destination into the cache
// and without evicting the training step's working set. About twice memcpy's rate for buffers
// under the size where glibc switches to such stores itself (3/4 of the L3 cache).
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace dptrain {

inline void streaming_copy(float* dst, const float* src, int64_t n) {
#if defined(__SSE2__)
  int64_t i = 0;
  for (; i < n && (reinterpret_cast<uintptr_t>(dst + i) & 15) != 0; ++i) dst[i] = src[i];
  for (; i + 4 <= n; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
  for (; i < n; ++i) dst[i] = src[i];
  _mm_sfence();  // the stores are visible before the sender thread is told the share is staged
#else
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
#endif
}

}  // namespace dptrain
