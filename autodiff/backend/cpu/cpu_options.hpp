// The CPU backend's run-time choices (plain C++; implemented in cpu_backend.cpp).
#pragma once

namespace sg::cpu {

// Which library multiplies float32 matrices (float64 always uses BLIS, or Eigen for thin ones):
//   onednn  oneDNN's sgemm, the default where scoregrad is built with oneDNN: 5-30% faster than
//           BLIS on score-network shapes with AVX-512, but the first product in a process pays
//           30-50 ms of JIT code generation;
//   blis    BLIS (Eigen when an extent is below 32): no start-up cost.
// The environment variable SG_CPU_GEMM=onednn|blis sets the initial choice (any other value is
// a ValueError at the first product). The two differ in the last bits, so a computation that
// must be bitwise reproducible (a resumed training run) keeps one choice throughout.
enum class GemmLibrary { onednn, blis };
void set_gemm_library(GemmLibrary lib);
GemmLibrary gemm_library();

}  // namespace sg::cpu
