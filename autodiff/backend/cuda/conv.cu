// The three kernels of a 2-D convolution by GEMM (cuda_backend.cpp runs the GEMMs): im2col,
// the [A, B, P] -> [B, A, P] permute between batch-major and channel-major layouts, and the
// col2im fold. The geometry is conv_geometry.hpp's, shared with the CPU backend.
#include "autodiff/backend/cuda/kernels.cuh"

namespace sg::cuda {
namespace {

// cols[r, q] = x[source(r, q)], 0 in the padding; one thread per entry, rows of L columns.
template <class T>
__global__ void im2col_kernel(ConvGeom g, const T* x, T* cols, int64_t L, int64_t n) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const int64_t s = g.source(i / L, i % L);
    cols[i] = s < 0 ? T(0) : x[s];
  }
}
// y[b, a, p] = x[a, b, p] for x of shape [A, B, P].
template <class T>
__global__ void swap_outer_kernel(const T* x, T* y, int64_t A, int64_t B, int64_t P, int64_t n) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const int64_t p = i % P, a = (i / P) % A, b = i / (P * A);  // i walks y
    y[i] = x[(a * B + b) * P + p];
  }
}
template <class T>
__global__ void fold_kernel(ConvGeom g, const T* cols, T* x, int64_t n) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    x[i] = g.fold_at(cols, i);
}

}  // namespace

void launch_im2col(DType t, const ConvGeom& g, const void* x, void* cols, cudaStream_t s) {
  const int64_t L = g.positions(), n = g.patch_rows() * L;
  if (n == 0) return;
  visit_floating(t, [&](auto z) {
    using T = decltype(z);
    if constexpr (is_half_v<T>) {
      throw_dtype_error("cuda conv2d", t);
    } else {
      im2col_kernel<T><<<grid_for(n), kThreads, 0, s>>>(g, static_cast<const T*>(x),
                                                        static_cast<T*>(cols), L, n);
    }
  });
  SG_CUDA_CHECK(cudaGetLastError());
}

void launch_swap_outer(DType t, const void* x, void* y, int64_t A, int64_t B, int64_t P,
                       cudaStream_t s) {
  const int64_t n = A * B * P;
  if (n == 0) return;
  visit_floating(t, [&](auto z) {
    using T = decltype(z);
    if constexpr (is_half_v<T>) {
      throw_dtype_error("cuda conv2d", t);
    } else {
      swap_outer_kernel<T><<<grid_for(n), kThreads, 0, s>>>(static_cast<const T*>(x),
                                                            static_cast<T*>(y), A, B, P, n);
    }
  });
  SG_CUDA_CHECK(cudaGetLastError());
}

void launch_fold(DType t, const ConvGeom& g, const void* cols, void* x, cudaStream_t s) {
  const int64_t n = g.N * g.C * g.H * g.W;
  if (n == 0) return;
  visit_floating(t, [&](auto z) {
    using T = decltype(z);
    if constexpr (is_half_v<T>) {
      throw_dtype_error("cuda conv2d", t);
    } else {
      fold_kernel<T>
          <<<grid_for(n), kThreads, 0, s>>>(g, static_cast<const T*>(cols), static_cast<T*>(x), n);
    }
  });
  SG_CUDA_CHECK(cudaGetLastError());
}

}  // namespace sg::cuda
