// oneDNN behind the CPU backend (see onednn.cpp): float32 and bfloat16 convolutions and GEMM.
#pragma once
#include "autodiff/backend/conv_geometry.hpp"
#include "autodiff/core/dtype.hpp"

namespace sg::cpu {

// Runs one float32 convolution pass over contiguous NCHW / OIHW buffers with oneDNN, on
// omp_get_max_threads() threads. False (nothing written) when scoregrad is built without oneDNN
// or oneDNN has no implementation for this geometry.
bool dnnl_conv2d(ConvPass pass, const ConvGeom& g, const float* a, const float* b, float* out);
// Row-major float32 C[m, n] = A[m, k] B[k, n] (C contiguous) with oneDNN's sgemm, for operands
// with a unit stride on one axis (row strides as0/bs0, column strides as1/bs1). False when
// scoregrad is built without oneDNN or an operand has no unit stride.
bool dnnl_sgemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t as0, int64_t as1,
                const float* b, int64_t bs0, int64_t bs1, float* c);
// The same for a 2-byte dtype (inputs and output of `dtype`, float32 accumulation, one rounding
// on store). bfloat16 only (oneDNN has no float16 kernels for CPUs without AVX512-FP16); false
// for float16, without oneDNN, or without an implementation (the caller widens to float32).
bool dnnl_conv2d_half(ConvPass pass, const ConvGeom& g, DType dtype, const void* a, const void* b,
                      void* out);
// Row-major C[m, n] = A[m, k] B[k, n] in `dtype` (C contiguous), operands with any strides.
bool dnnl_gemm_half(DType dtype, int64_t m, int64_t n, int64_t k, const void* a, int64_t as0,
                    int64_t as1, const void* b, int64_t bs0, int64_t bs1, void* c);

}  // namespace sg::cpu
