// The seam between the host half of the CUDA backend (cuda_backend.cpp, plain C++) and its
// kernels (elementwise.cu, reduce_index.cu): plain index-space structs passed to kernels by
// value, and the launch functions. Included by g++ and nvcc alike; the device helpers at the
// end (the strided index walk, the grid-stride for_each) are compiled by nvcc only.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "autodiff/backend/conv_geometry.hpp"
#include "autodiff/backend/functors.hpp"
#include "autodiff/core/dtype.hpp"

namespace sg::cuda {

constexpr int kDims = 8;  // = kMaxDims
constexpr int kOperands = 4;

// An N-d index space (already coalesced) walked by up to four operands, strides in elements.
// Element i (row-major over shape) of operand k lives at stride[k] . unravel(i).
struct Iter {
  int rank = 0;
  int64_t numel = 0;
  int64_t shape[kDims] = {};
  int64_t stride[kOperands][kDims] = {};
};

// A reduction: outputs indexed by the kept dims, each the reduction of x over the reduced dims.
struct ReduceIter {
  Iter keep;    // operands: 0 = x, 1 = out
  Iter reduce;  // operand 0 = x
};

// Gather (out[i] = x[i, axis := idx[i]]) or scatter-add (out[i, axis := idx[i]] += src[i]).
struct IndexArgs {
  Iter it;  // gather: x (axis stride 0), idx, out; scatter: idx, src, out (axis stride 0)
  int64_t axis_stride = 0;  // of x (gather) or out (scatter)
  int64_t size = 0;         // extent of that axis
};
// Filled by an index kernel that meets an out-of-range index (it skips that element).
struct IndexError {
  int flag;
  long long index;
};

// CUDA and cuBLAS status checks: a failure becomes sg::DeviceError with the call, the status
// string, file and line (cuda_backend.cpp formats it).
[[noreturn]] void throw_cuda_error(int code, const char* expr, const char* file, int line);
[[noreturn]] void throw_cublas_error(int code, const char* expr, const char* file, int line);
[[noreturn]] void throw_dtype_error(const char* op, DType t);  // sg::DTypeError
#define SG_CUDA_CHECK(expr)                                                                    \
  do {                                                                                         \
    const cudaError_t sg_cuda_err_ = (expr);                                                   \
    if (sg_cuda_err_ != cudaSuccess)                                                           \
      ::sg::cuda::throw_cuda_error(static_cast<int>(sg_cuda_err_), #expr, __FILE__, __LINE__); \
  } while (0)

// Launches (asynchronous on `s`; launch errors are checked, execution errors surface at the
// next synchronising call). Unsupported dtype/op pairs throw DTypeError.
void launch_fill(DType t, void* y, double value, const Iter& it, cudaStream_t s);
void launch_copy(DType from, DType to, const void* x, void* y, const Iter& it, cudaStream_t s);
void launch_unary(UnaryOp op, double scalar, DType t, const void* x, void* y, const Iter& it,
                  cudaStream_t s);
void launch_binary(BinaryOp op, DType t, const void* a, const void* b, void* y, const Iter& it,
                   cudaStream_t s);
void launch_where(DType t, const void* c, const void* a, const void* b, void* y, const Iter& it,
                  cudaStream_t s);
void launch_reduce(ReduceOp op, DType t, const void* x, void* y, const ReduceIter& r,
                   cudaStream_t s);
void launch_gather(DType t, const void* x, const void* idx, void* y, const IndexArgs& a,
                   IndexError* err, cudaStream_t s);
void launch_scatter_add(DType t, const void* idx, const void* src, void* y, const IndexArgs& a,
                        IndexError* err, cudaStream_t s);
// Contiguous y[i] = philox::sample<T>(kind, seed, offset + i, p), T = float or double.
void launch_random(RandomKind kind, double p, uint64_t seed, uint64_t offset, DType t, void* y,
                   int64_t n, cudaStream_t s);
// Convolution helpers (conv.cu), contiguous float/double buffers: cols[K, L] = im2col(x);
// y[b, a, p] = x[a, b, p] for x of shape [A, B, P]; x[e] = g.fold_at(cols, e) over N C H W.
void launch_im2col(DType t, const ConvGeom& g, const void* x, void* cols, cudaStream_t s);
void launch_swap_outer(DType t, const void* x, void* y, int64_t A, int64_t B, int64_t P,
                       cudaStream_t s);
void launch_fold(DType t, const ConvGeom& g, const void* cols, void* x, cudaStream_t s);

#if defined(__CUDACC__)
// ---- device side, shared by the .cu files -------------------------------------------------
constexpr int kThreads = 256;
inline unsigned grid_for(int64_t n) {  // grid-stride loops cover the rest
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < (1 << 16) ? (blocks > 0 ? blocks : 1) : (1 << 16));
}
// Offsets (in elements) of element i of the index space for the first K operands.
template <int K>
__device__ __forceinline__ void unravel(const Iter& it, int64_t i, int64_t (&off)[K]) {
#pragma unroll
  for (int k = 0; k < K; ++k) off[k] = 0;
  for (int d = it.rank - 1; d > 0; --d) {
    const int64_t q = i / it.shape[d], c = i - q * it.shape[d];
    i = q;
#pragma unroll
    for (int k = 0; k < K; ++k) off[k] += c * it.stride[k][d];
  }
#pragma unroll
  for (int k = 0; k < K; ++k) off[k] += i * it.stride[k][0];
}
// One grid-stride kernel for every elementwise body: body(off) for each element.
template <int K, class Body>
__global__ void for_each_kernel(Iter it, Body body) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < it.numel;
       i += step) {
    int64_t off[K];
    unravel<K>(it, i, off);
    body(off);
  }
}
template <int K, class Body>
void for_each(const Iter& it, const Body& body, cudaStream_t s) {
  if (it.numel == 0) return;
  for_each_kernel<K><<<grid_for(it.numel), kThreads, 0, s>>>(it, body);
  SG_CUDA_CHECK(cudaGetLastError());
}
#endif

}  // namespace sg::cuda
