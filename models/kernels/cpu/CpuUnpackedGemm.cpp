// C = A B without packing, for the dense layers' products with a batch of rows: one operand (the
// weights) is large and each of its elements is used only once per batch row, so the copy into
// packed panels that a BLAS makes on every call costs it 10-15% of the product on the reference
// MLP. Here the large operand streams once, in the order the 8x32 register tiles read it, with
// software prefetches of the part the next tiles need spread over the current tiles' loops (the
// hardware prefetchers stop at every 4 KiB, and a column panel of a row-major matrix touches a new
// one every row). The small operand is reused from L2.
//
// Each element of C is one sum over k in order, whatever the blocking, the thread count or the
// rows that share the call: a rank's share of a batch gets the bits of a single process.
#include <omp.h>

#include <algorithm>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "models/kernels/cpu/CpuInternal.h"

namespace dptrain {

#if defined(__AVX512F__)

namespace {

constexpr int64_t mr = 8, nr = 32;          // register tile: 8 rows by 2 vectors of 16
constexpr int64_t line_floats = 16;         // a 64-byte cache line
constexpr int64_t reuse_bytes = 512 << 10;  // the reused operand's block stays within this (L2)

// Lines to prefetch while a tile runs: rows [row0, row1) of a matrix at `base` with leading
// dimension `ld`, `lines` cache lines from the start of each row.
struct Prefetch {
  const float* base = nullptr;
  int64_t ld = 0, row0 = 0, row1 = 0, lines = 0;
  int64_t count() const { return (row1 - row0) * lines; }
};

// Walks a Prefetch's lines in order, one per call, without dividing.
class PrefetchCursor {
 public:
  explicit PrefetchCursor(const Prefetch& pf)
      : row_(pf.base + pf.row0 * pf.ld), end_(pf.base + pf.row1 * pf.ld), ld_(pf.ld), lines_(pf.lines) {}
  bool done() const { return row_ >= end_; }
  void issue() {
    _mm_prefetch(reinterpret_cast<const char*>(row_ + line_ * line_floats), _MM_HINT_T1);
    if (++line_ == lines_) {
      line_ = 0;
      row_ += ld_;
    }
  }

 private:
  const float* row_;
  const float* end_;
  int64_t ld_, lines_, line_ = 0;
};

// C[MR x cols] = A[MR x k] B[k x cols] (cols <= 32; Wide: more than 16; Full: exactly 32).
template <int MR, bool Wide, bool Full>
void tile(int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, int64_t cols,
          const Prefetch& pf) {
  const __mmask16 m0 = Full || cols >= 16 ? __mmask16(0xffff) : __mmask16((1u << cols) - 1);
  const __mmask16 m1 = Full || cols >= 32 ? __mmask16(0xffff)
                       : cols > 16        ? __mmask16((1u << (cols - 16)) - 1)
                                          : __mmask16(0);
  // One prefetch every `every` iterations, counted down (a division per iteration would cost
  // more than the loop body).
  PrefetchCursor cursor(pf);
  const int64_t prefetches = pf.count();
  const int64_t every = prefetches > 0 ? std::max<int64_t>(1, k / prefetches) : k + 1;
  int64_t countdown = every;
  __m512 acc[MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < k; ++p) {
    if (--countdown == 0) {
      countdown = every;
      if (!cursor.done()) cursor.issue();
    }
    const float* bp = b + p * ldb;
    const __m512 b0 = _mm512_maskz_loadu_ps(m0, bp);
    const __m512 b1 = Wide ? _mm512_maskz_loadu_ps(m1, bp + 16) : b0;
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i * lda + p]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      if (Wide) acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
  while (!cursor.done()) cursor.issue();
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    _mm512_mask_storeu_ps(c + i * ldc, m0, acc[i][0]);
    if (Wide) _mm512_mask_storeu_ps(c + i * ldc + 16, m1, acc[i][1]);
  }
}

template <int MR>
void tile_cols(int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, int64_t cols,
               const Prefetch& pf) {
  if (cols == nr)
    tile<MR, true, true>(k, a, lda, b, ldb, c, ldc, cols, pf);
  else if (cols > 16)
    tile<MR, true, false>(k, a, lda, b, ldb, c, ldc, cols, pf);
  else
    tile<MR, false, false>(k, a, lda, b, ldb, c, ldc, cols, pf);
}

// The tile of 1 <= `rows` <= 8 rows of A and C.
void tile_any(int64_t rows, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
              int64_t cols, const Prefetch& pf) {
  using Tile =
      void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t, const Prefetch&);
  static constexpr Tile by_rows[mr] = {tile_cols<1>, tile_cols<2>, tile_cols<3>, tile_cols<4>,
                                       tile_cols<5>, tile_cols<6>, tile_cols<7>, tile_cols<8>};
  by_rows[rows - 1](k, a, lda, b, ldb, c, ldc, cols, pf);
}

int64_t lines_of(int64_t floats) { return (floats + line_floats - 1) / line_floats; }

// A streams: groups of 8 rows of A, each against every column tile of B (B reused from L2).
// While the tiles of one group run, the next group's rows of A are prefetched.
void rows_of_a(int64_t g0, int64_t g1, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
               int64_t ldb, float* c, int64_t ldc) {
  const int64_t tiles = (n + nr - 1) / nr;
  for (int64_t g = g0; g < g1; ++g) {
    const int64_t r = g * mr, rows = std::min(mr, m - r);
    const int64_t next_rows = g + 1 < g1 ? std::min(mr, m - r - mr) : 0;
    for (int64_t t = 0; t < tiles; ++t) {
      // The next group's rows, shared out over this group's tiles.
      Prefetch pf{a + (r + mr) * lda, lda, next_rows * t / tiles, next_rows * (t + 1) / tiles, lines_of(k)};
      tile_any(rows, k, a + r * lda, lda, b + t * nr, ldb, c + r * ldc + t * nr, ldc, std::min(nr, n - t * nr), pf);
    }
  }
}

// B streams: column panels of B (k x 32), each against every row tile of A (A reused from L2).
// While the tiles of one panel run, the next panel is prefetched.
void panels_of_b(int64_t p0, int64_t p1, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                 int64_t ldb, float* c, int64_t ldc) {
  const int64_t tiles = (m + mr - 1) / mr;
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t j = p * nr, cols = std::min(nr, n - j);
    const int64_t next_cols = p + 1 < p1 ? std::min(nr, n - j - nr) : 0;
    for (int64_t t = 0; t < tiles; ++t) {
      // The next panel's rows, shared out over this panel's tiles.
      Prefetch pf{b + j + nr, ldb, next_cols ? k * t / tiles : 0, next_cols ? k * (t + 1) / tiles : 0,
                  lines_of(next_cols) + 1};
      const int64_t r = t * mr;
      tile_any(std::min(mr, m - r), k, a + r * lda, lda, b + j, ldb, c + r * ldc + j, ldc, cols, pf);
    }
  }
}

}  // namespace

bool cpu_unpacked_gemm_available() { return true; }

void cpu_unpacked_gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                       float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  const bool threaded = !omp_in_parallel() && omp_get_max_threads() > 1 && m * n * k >= (int64_t{1} << 20);
  if (m * k >= k * n) {
    // A is the large operand. Blocks of B's columns small enough to stay in L2; A streams once
    // per block, its row groups shared out over the threads.
    const int64_t block = std::max(nr, reuse_bytes / (4 * std::max<int64_t>(k, 1)) / nr * nr);
    const int64_t groups = (m + mr - 1) / mr;
    for (int64_t j = 0; j < n; j += block) {
      const int64_t cols = std::min(block, n - j);
#pragma omp parallel if (threaded)
      {
        const int64_t threads = omp_get_num_threads(), id = omp_get_thread_num();
        rows_of_a(groups * id / threads, groups * (id + 1) / threads, m, cols, k, a, lda, b + j, ldb, c + j, ldc);
      }
    }
  } else {
    // B is the large operand. Blocks of A's rows small enough to stay in L2; B streams once per
    // block, its column panels shared out over the threads.
    const int64_t block = std::max(mr, reuse_bytes / (4 * std::max<int64_t>(k, 1)) / mr * mr);
    const int64_t panels = (n + nr - 1) / nr;
    for (int64_t i = 0; i < m; i += block) {
      const int64_t rows = std::min(block, m - i);
#pragma omp parallel if (threaded)
      {
        const int64_t threads = omp_get_num_threads(), id = omp_get_thread_num();
        panels_of_b(panels * id / threads, panels * (id + 1) / threads, rows, n, k, a + i * lda, lda, b, ldb,
                    c + i * ldc, ldc);
      }
    }
  }
}

#else

bool cpu_unpacked_gemm_available() { return false; }

void cpu_unpacked_gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                       float* c, int64_t ldc) {
  cpu_gemm(false, false, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
}

#endif

}  // namespace dptrain
