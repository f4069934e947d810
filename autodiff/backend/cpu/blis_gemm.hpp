// GEMM through BLIS (Debian's libblis, OpenMP build) when scoregrad is built with it: BLIS takes
// any row and column strides, so transposed and sliced views multiply without copies. Chosen
// by measurement over Eigen, OpenBLAS and oneDNN (docs/benchmarks.md).
#pragma once
#include <cstdint>

namespace sg::cpu {

// C[m, n] = A[m, k] B[k, n] with explicit (row, column) strides in elements, on `threads`
// threads. Returns false (doing nothing) when scoregrad was built without BLIS.
bool blis_gemm(bool f64, int64_t m, int64_t n, int64_t k, const void* a, int64_t rsa, int64_t csa,
               const void* b, int64_t rsb, int64_t csb, void* c, int64_t rsc, int64_t csc,
               int threads);

}  // namespace sg::cpu
