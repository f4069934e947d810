// The seam between the host half of the CUDA backend (cuda_backend.cpp, plain C++) and its
// kernels (elementwise.cu, reduce_index.cu): plain index-space structs passed to kernels by
// value, and the launch functions. Included by g++ and nvcc alike; the device helpers at the
// end (the strided index walk, the grid-stride for_each) are compiled by nvcc only.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "autodiff/backend/conv_geometry.hpp"
#include "autodiff/backend/functors.hpp"
#include "autodiff/backend/index_ops.hpp"
#include "autodiff/backend/index_space.hpp"
#include "autodiff/backend/reduce_plan.hpp"
#include "autodiff/core/dtype.hpp"

namespace sg::cuda {

constexpr int kDims = kSpaceDims;
constexpr int kOperands = kSpaceOperands;

// An N-d index space (already coalesced, index_space.hpp) walked by up to four operands,
// strides in elements. Element i (row-major over shape) of operand k lives at
// stride[k] . unravel(i) (IndexSpace::offsets).
using Iter = IndexSpace;

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
  int axis = 0;             // for the error message
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
// A reduction split as `plan` says (reduce_plan.hpp); a split plan needs `partials`, a device
// buffer of plan.partials() accumulators (8 bytes each is always enough).
void launch_reduce(ReduceOp op, DType t, const void* x, void* y, const ReduceIter& r,
                   const ReducePlan& plan, void* partials, cudaStream_t s);
// Index kernels: a bad index is recorded in *fault (index_ops.hpp) and its element skipped; no
// synchronisation here (the backend raises at its next synchronising call).
void launch_gather(DType t, const void* x, const void* idx, void* y, const IndexArgs& a,
                   IndexFault* fault, cudaStream_t s);
// Atomic scatter-add: fast, but float additions land in a run-dependent order.
void launch_scatter_add(DType t, const void* idx, const void* src, void* y, const IndexArgs& a,
                        IndexFault* fault, cudaStream_t s);
// Deterministic scatter-add for float32/float64 (index_ops.hpp): keys are destination offsets
// in [0, max_key], a stable radix sort over sort_key_bits(max_key + 1) bits, then each run of
// equal keys added in source order. Needs a.it.numel <= INT_MAX and a device scratch buffer of
// scatter_sorted_scratch(n, max_key) bytes.
std::size_t scatter_sorted_scratch(int64_t n, int64_t max_key);
void launch_scatter_add_sorted(DType t, const void* idx, const void* src, void* y,
                               const IndexArgs& a, int64_t max_key, void* scratch,
                               std::size_t scratch_bytes, IndexFault* fault, cudaStream_t s);
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
static_assert(kThreads == kReduceThreads, "the reduction plan's block size");
inline unsigned grid_for(int64_t n) {  // grid-stride loops cover the rest
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < (1 << 16) ? (blocks > 0 ? blocks : 1) : (1 << 16));
}
// Offsets (in elements) of element i of the index space for the first K operands.
template <int K>
__device__ __forceinline__ void unravel(const Iter& it, int64_t i, int64_t (&off)[K]) {
  it.offsets<K>(i, off);
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
