// The GEMM operand layout decision, written once (the matmul op, the CPU backend and the CUDA
// backend all ask it), and a reference column-major GEMM with cuBLAS's conventions that the
// decision is tested against on the CPU.
//
// A row-major matrix operand [rows, cols] with element (i, j) at i s0 + j s1 is usable by a
// BLAS without a copy when it is one of
//   row-major:    (cols <= 1 or s1 == 1) and (rows <= 1 or s0 >= max(cols, 1)),  ld = s0
//   column-major: (rows <= 1 or s0 == 1) and (cols <= 1 or s1 >= max(rows, 1)),  ld = s1
// (row-major preferred when both hold). An extent <= 1 leaves its stride free, so a [1, k] row
// or a [m, 1] column of any view is usable, and the leading dimension of such an operand is the
// smallest one BLAS accepts. Anything else (zero strides on a real axis, negative or
// overlapping strides, ld beyond `ld_limit`) is not usable: the caller copies it to a
// contiguous (row-major) matrix. normalized() gives strides that address the same elements
// with the chosen layout's unit stride made explicit, which is what kernels that test
// "s1 == 1" (Eigen, oneDNN, BLIS) get from the CPU backend.
//
// cuBLAS is column-major. Row-major C[m, n] = A[m, k] B[k, n] is column-major C^T = B^T A^T:
// cuBLAS is called with (m', n', k') = (n, m, k), its A = our B and its B = our A. A row-major
// operand, read column-major, is its own transpose, so it goes as op N with ld = s0; a
// column-major one is itself and goes as op T with ld = s1. C must be row-major (ldc = its
// row stride >= n): cuBLAS writes C non-transposed.
#pragma once
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "autodiff/backend/index_space.hpp"

namespace sg::gemm {

enum class Op : uint8_t { N, T };  // cuBLAS's CUBLAS_OP_N / CUBLAS_OP_T

inline constexpr int64_t kNoLimit = INT64_MAX;

struct Operand {
  bool ok = false;
  bool row_major = true;
  int64_t ld = 0;
  // How cuBLAS (column-major, operands swapped as above) takes this operand.
  Op op() const { return row_major ? Op::N : Op::T; }
  // (row stride, column stride) addressing the same elements with the layout's unit stride.
  int64_t s0() const { return row_major ? ld : 1; }
  int64_t s1() const { return row_major ? 1 : ld; }
};

// The decision for one matrix operand (see the header comment). Never throws.
inline Operand operand_layout(int64_t rows, int64_t cols, int64_t s0, int64_t s1,
                              int64_t ld_limit = kNoLimit) {
  const int64_t r1 = std::max<int64_t>(rows, 1), c1 = std::max<int64_t>(cols, 1);
  if ((cols <= 1 || s1 == 1) && (rows <= 1 || s0 >= c1)) {
    const int64_t ld = rows <= 1 ? c1 : s0;
    if (ld <= ld_limit) return {true, true, ld};
  }
  if ((rows <= 1 || s0 == 1) && (cols <= 1 || s1 >= r1)) {
    const int64_t ld = cols <= 1 ? r1 : s1;
    if (ld <= ld_limit) return {true, false, ld};
  }
  return {};
}

// The output: row-major with row stride >= n (ldc); cuBLAS cannot write a transposed C.
inline Operand output_layout(int64_t m, int64_t n, int64_t s0, int64_t s1,
                             int64_t ld_limit = kNoLimit) {
  const Operand o = operand_layout(m, n, s0, s1, ld_limit);
  return o.ok && o.row_major ? o : Operand{};
}

// A batched row-major product out[..., m, n] = a[..., m, k] b[..., k, n] (batch strides already
// broadcast to out's batch shape, zero where an operand is broadcast) as cuBLAS strided-batched
// calls: the batch axes are coalesced; the innermost becomes one call's batch (count and
// strides, zero allowed), the others are looped over (outer_offsets). An innermost axis with a
// negative stride (a reversed view) is looped over too (count 1): cuBLAS documents no negative
// batch strides.
struct Plan {
  Operand a, b, c;  // a.ok / b.ok false: copy that operand to a contiguous matrix and re-plan
  int64_t m = 0, n = 0, k = 0;
  IndexSpace batch;              // operands 0 = a, 1 = b, 2 = out
  int64_t count = 1, outer = 1;  // per call; number of calls
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;
  int looped = 0;  // batch axes looped over: batch.rank - 1, or batch.rank when count is 1
  bool ok() const { return a.ok && b.ok && c.ok; }

  // The cuBLAS call (column-major, swapped operands): gemm(transa, transb, m', n', k', B, lda,
  // A, ldb, C, ldc) with these values.
  Op transa() const { return b.op(); }
  Op transb() const { return a.op(); }
  int64_t cm() const { return n; }
  int64_t cn() const { return m; }
  int64_t lda() const { return b.ld; }
  int64_t ldb() const { return a.ld; }
  int64_t ldc() const { return c.ld; }

  // Element offsets of call o's first matrices (a, b, out).
  void outer_offsets(int64_t o, int64_t (&off)[3]) const {
    off[0] = off[1] = off[2] = 0;
    for (int d = looped - 1; d >= 0; --d) {
      const int64_t c = o % batch.shape[d];
      o /= batch.shape[d];
      for (int q = 0; q < 3; ++q) off[q] += c * batch.stride[q][d];
    }
  }
};

// shape/strides: full rank R >= 2 (batch axes then the matrix axes); a and b carry out's batch
// shape (strides broadcast), k = a's last extent.
template <class S>
Plan plan(const S& out_shape, const S& a_strides, const S& b_strides, const S& out_strides,
          int64_t k, int64_t ld_limit = kNoLimit) {
  const int R = out_shape.rank();
  Plan p;
  p.m = out_shape[R - 2], p.n = out_shape[R - 1], p.k = k;
  p.a = operand_layout(p.m, k, a_strides[R - 2], a_strides[R - 1], ld_limit);
  p.b = operand_layout(k, p.n, b_strides[R - 2], b_strides[R - 1], ld_limit);
  p.c = output_layout(p.m, p.n, out_strides[R - 2], out_strides[R - 1], ld_limit);
  const int64_t* st[3] = {a_strides.begin(), b_strides.begin(), out_strides.begin()};
  p.batch = coalesce(R - 2, out_shape.begin(), 3, st);
  const int last = p.batch.rank - 1;
  const bool inner =
      p.batch.stride[0][last] >= 0 && p.batch.stride[1][last] >= 0 && p.batch.stride[2][last] >= 0;
  p.looped = inner ? last : p.batch.rank;
  p.count = inner ? p.batch.shape[last] : 1;
  p.outer = p.count ? p.batch.numel / p.count : 0;
  if (inner) {
    p.stride_a = p.batch.stride[0][last];
    p.stride_b = p.batch.stride[1][last];
    p.stride_c = p.batch.stride[2][last];
  }
  return p;
}

// ---- the reference -------------------------------------------------------------------------
// cuBLAS's argument checks for gemm / gemmStridedBatched (CUBLAS_STATUS_INVALID_VALUE): empty
// string when valid, else what is wrong.
inline std::string check_args(Op ta, Op tb, int64_t m, int64_t n, int64_t k, int64_t lda,
                              int64_t ldb, int64_t ldc, int64_t batch = 1) {
  if (m < 0 || n < 0 || k < 0 || batch < 0) return "negative extent";
  if (lda < std::max<int64_t>(1, ta == Op::N ? m : k)) return "lda too small";
  if (ldb < std::max<int64_t>(1, tb == Op::N ? k : n)) return "ldb too small";
  if (ldc < std::max<int64_t>(1, m)) return "ldc too small";
  return {};
}

// C = alpha op(A) op(B) + beta C, column-major, for `batch` matrices at strides sa, sb, sc, with
// cuBLAS's meaning of every argument (op(A) is m x k, op(B) k x n, C m x n; element (i, j) of a
// stored matrix X is X[i + j ldx]). Accumulates in T in k order. beta == 0 does not read C.
// Throws std::invalid_argument where cuBLAS returns CUBLAS_STATUS_INVALID_VALUE.
template <class T>
void reference_gemm(Op ta, Op tb, int64_t m, int64_t n, int64_t k, T alpha, const T* A, int64_t lda,
                    int64_t sa, const T* B, int64_t ldb, int64_t sb, T beta, T* C, int64_t ldc,
                    int64_t sc, int64_t batch = 1) {
  const std::string bad = check_args(ta, tb, m, n, k, lda, ldb, ldc, batch);
  if (!bad.empty()) throw std::invalid_argument("reference_gemm: " + bad);
  for (int64_t q = 0; q < batch; ++q) {
    const T* a = A + q * sa;
    const T* b = B + q * sb;
    T* c = C + q * sc;
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < m; ++i) {
        T acc = 0;
        for (int64_t l = 0; l < k; ++l) {
          const T x = ta == Op::N ? a[i + l * lda] : a[l + i * lda];
          const T y = tb == Op::N ? b[l + j * ldb] : b[j + l * ldb];
          acc += x * y;
        }
        T& out = c[i + j * ldc];
        out = beta == T(0) ? alpha * acc : alpha * acc + beta * out;
      }
  }
}

}  // namespace sg::gemm
