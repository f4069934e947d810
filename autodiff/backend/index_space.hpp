// Index-space merging, written once for every backend: an N-d index space walked by up to four
// strided operands, with extent-1 axes dropped and adjacent axes merged wherever every operand
// allows it (a contiguous view becomes rank 1). The CPU backend's strided loops and the CUDA
// kernels both walk the result; the element order (row-major over the original shape) is kept,
// so reductions and scatters visit elements in the same order on every backend.
//
// Host code builds an IndexSpace with coalesce(); the offsets of element i (what a CUDA thread
// computes) come from IndexSpace::offsets, a __host__ __device__ function the CPU tests check.
#pragma once
#include <cstdint>

#include "autodiff/backend/functors.hpp"  // SG_HD

namespace sg {

inline constexpr int kSpaceDims = 8;      // = kMaxDims (static_assert where both are visible)
inline constexpr int kSpaceOperands = 4;  // the most operands one kernel walks (where: 4)

struct IndexSpace {
  int rank = 0;  // >= 1 once coalesced (a single element is rank 1, extent 1)
  int64_t numel = 0;
  int64_t shape[kSpaceDims] = {};
  int64_t stride[kSpaceOperands][kSpaceDims] = {};  // in elements, per operand

  // Offsets (in elements) of element i (row-major over shape) for the first K operands.
  template <int K>
  SG_HD void offsets(int64_t i, int64_t (&off)[K]) const {
    for (int k = 0; k < K; ++k) off[k] = 0;
    for (int d = rank - 1; d > 0; --d) {
      const int64_t q = i / shape[d], c = i - q * shape[d];
      i = q;
      for (int k = 0; k < K; ++k) off[k] += c * stride[k][d];
    }
    for (int k = 0; k < K; ++k) off[k] += i * stride[k][0];
  }
};

// The index space `shape[0, rank)` walked by `operands` operands with strides
// strides[k][0, rank). Extent-1 axes are dropped; axis d merges into the kept axis before it
// when, for every operand, stride(before) == stride(d) * shape[d] (which holds for contiguous
// runs, for broadcast axes with stride 0 on both sides and for reversed runs with negative
// strides; permuted axes never merge). An empty space (some extent 0) is rank 1 [0] and a
// single element (rank 0 or all extents 1) rank 1 [1], both with zero strides.
inline IndexSpace coalesce(int rank, const int64_t* shape, int operands,
                           const int64_t* const* strides) {
  IndexSpace it;
  it.numel = 1;
  for (int d = 0; d < rank; ++d) it.numel *= shape[d];
  if (it.numel == 0) {
    it.rank = 1;
    return it;
  }
  int r = 0;
  for (int d = 0; d < rank; ++d) {
    if (shape[d] == 1) continue;
    if (r > 0) {
      bool merge = true;
      for (int k = 0; k < operands; ++k) merge &= it.stride[k][r - 1] == strides[k][d] * shape[d];
      if (merge) {
        it.shape[r - 1] *= shape[d];
        for (int k = 0; k < operands; ++k) it.stride[k][r - 1] = strides[k][d];
        continue;
      }
    }
    it.shape[r] = shape[d];
    for (int k = 0; k < operands; ++k) it.stride[k][r] = strides[k][d];
    ++r;
  }
  if (r == 0) it.shape[r++] = 1;
  it.rank = r;
  return it;
}

// The same over Shape-like containers (rank(), operator[], begin()): coalesce(shape, {&s0, &s1}).
template <class S, int K>
IndexSpace coalesce(const S& shape, const S* const (&strides)[K]) {
  static_assert(K <= kSpaceOperands, "at most kSpaceOperands operands");
  const int64_t* p[K];
  for (int k = 0; k < K; ++k) p[k] = strides[k]->begin();
  return coalesce(shape.rank(), shape.begin(), K, p);
}

}  // namespace sg
