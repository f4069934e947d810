// Reductions (sum/max/min over any axes), gather, scatter-add and Philox random numbers.
#include <type_traits>

#include "autodiff/backend/cuda/kernels.cuh"
#include "autodiff/backend/philox.hpp"

namespace sg::cuda {
namespace {

// ---- reductions ------------------------------------------------------------------------------
// max/min start from -inf/+inf (integer extremes for int64) and propagate NaN like the CPU.
template <class T, ReduceOp Op>
__device__ __forceinline__ T init() {
  if constexpr (Op == ReduceOp::sum) {
    return T(0);
  } else if constexpr (std::is_floating_point_v<T>) {
    return Op == ReduceOp::max ? T(-INFINITY) : T(INFINITY);
  } else {
    return Op == ReduceOp::max ? T(-9223372036854775807LL - 1) : T(9223372036854775807LL);
  }
}
template <class T, ReduceOp Op>
__device__ __forceinline__ T combine(T a, T b) {
  if constexpr (Op == ReduceOp::sum) {
    if constexpr (std::is_integral_v<T>) {  // wraps like two's complement, as on the CPU
      using U = std::make_unsigned_t<T>;
      return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
    } else {
      return a + b;
    }
  }
  if constexpr (Op == ReduceOp::max) return fn::Maximum{}(a, b);
  return fn::Minimum{}(a, b);
}
// Floating sums accumulate in double, as on the CPU (a float32 accumulator stops at 2^24 ones).
template <class T, ReduceOp Op>
using Acc = std::conditional_t<Op == ReduceOp::sum && std::is_floating_point_v<T>, double, T>;
template <class T, ReduceOp Op>
__device__ Acc<T, Op> reduce_range(const T* x, const Iter& r, int64_t j0, int64_t step) {
  Acc<T, Op> acc = init<Acc<T, Op>, Op>();
  for (int64_t j = j0; j < r.numel; j += step) {
    int64_t o[1];
    unravel<1>(r, j, o);
    acc = combine<Acc<T, Op>, Op>(acc, static_cast<Acc<T, Op>>(x[o[0]]));
  }
  return acc;
}
// Many outputs: one thread per output walks its reduced index space in order.
template <class T, ReduceOp Op>
__global__ void reduce_per_thread(const T* x, T* y, ReduceIter r) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < r.keep.numel;
       i += step) {
    int64_t o[2];
    unravel<2>(r.keep, i, o);
    y[o[1]] = static_cast<T>(reduce_range<T, Op>(x + o[0], r.reduce, 0, 1));
  }
}
// Long reductions: one block per output, threads stride over the reduced space, then a
// shared-memory tree (fixed order, so results are deterministic).
template <class T, ReduceOp Op>
__global__ void reduce_per_block(const T* x, T* y, ReduceIter r) {
  __shared__ Acc<T, Op> buf[kThreads];
  const int t = threadIdx.x;
  for (int64_t i = blockIdx.x; i < r.keep.numel; i += gridDim.x) {
    int64_t o[2];
    unravel<2>(r.keep, i, o);
    buf[t] = reduce_range<T, Op>(x + o[0], r.reduce, t, kThreads);
    __syncthreads();
    for (int w = kThreads / 2; w > 0; w /= 2) {
      if (t < w) buf[t] = combine<Acc<T, Op>, Op>(buf[t], buf[t + w]);
      __syncthreads();
    }
    if (t == 0) y[o[1]] = static_cast<T>(buf[0]);
    __syncthreads();
  }
}
template <class T, ReduceOp Op>
void reduce_as(const T* x, T* y, const ReduceIter& r, cudaStream_t s) {
  const bool inner_contiguous = r.reduce.stride[0][r.reduce.rank - 1] == 1;
  if (r.reduce.numel >= kThreads && (r.keep.numel < 4096 || inner_contiguous)) {
    const int64_t blocks = r.keep.numel < (1 << 16) ? r.keep.numel : (1 << 16);
    reduce_per_block<T, Op><<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(x, y, r);
  } else {
    reduce_per_thread<T, Op><<<grid_for(r.keep.numel), kThreads, 0, s>>>(x, y, r);
  }
  SG_CUDA_CHECK(cudaGetLastError());
}

// ---- gather / scatter-add --------------------------------------------------------------------
__device__ __forceinline__ bool bad_index(int64_t j, int64_t size, IndexError* err) {
  if (j >= 0 && j < size) return false;
  if (atomicExch(&err->flag, 1) == 0) err->index = j;
  return true;
}
template <class T>
__global__ void gather_kernel(const T* x, const int64_t* idx, T* y, IndexArgs a, IndexError* err) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < a.it.numel;
       i += step) {
    int64_t o[3];
    unravel<3>(a.it, i, o);
    const int64_t j = idx[o[1]];
    if (!bad_index(j, a.size, err)) y[o[2]] = x[o[0] + j * a.axis_stride];
  }
}
__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }  // sm_60+
__device__ __forceinline__ void atomic_add(int64_t* p, int64_t v) {
  atomicAdd(reinterpret_cast<unsigned long long*>(p),
            static_cast<unsigned long long>(v));  // two's complement
}
template <class T>
__global__ void scatter_kernel(const int64_t* idx, const T* src, T* y, IndexArgs a,
                               IndexError* err) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < a.it.numel;
       i += step) {
    int64_t o[3];
    unravel<3>(a.it, i, o);
    const int64_t j = idx[o[0]];
    if (!bad_index(j, a.size, err)) atomic_add(y + o[2] + j * a.axis_stride, src[o[1]]);
  }
}

// ---- random ----------------------------------------------------------------------------------
template <class T>
__global__ void random_kernel(RandomKind kind, double p, uint64_t seed, uint64_t offset, T* y,
                              int64_t n) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    y[i] = philox::sample<T>(kind, seed, offset + static_cast<uint64_t>(i), p);
}

}  // namespace

void launch_reduce(ReduceOp op, DType t, const void* x, void* y, const ReduceIter& r,
                   cudaStream_t s) {
  if (r.keep.numel == 0) return;
  visit_dtype(t, [&](auto z) {
    using T = decltype(z);
    if constexpr (std::is_same_v<T, bool>) {
      throw_dtype_error("cuda reduce", t);
    } else {
      const T* px = static_cast<const T*>(x);
      T* py = static_cast<T*>(y);
      if (op == ReduceOp::sum) reduce_as<T, ReduceOp::sum>(px, py, r, s);
      if (op == ReduceOp::max) reduce_as<T, ReduceOp::max>(px, py, r, s);
      if (op == ReduceOp::min) reduce_as<T, ReduceOp::min>(px, py, r, s);
    }
  });
}

void launch_gather(DType t, const void* x, const void* idx, void* y, const IndexArgs& a,
                   IndexError* err, cudaStream_t s) {
  if (a.it.numel == 0) return;
  visit_dtype(t, [&](auto z) {
    using T = decltype(z);
    gather_kernel<T><<<grid_for(a.it.numel), kThreads, 0, s>>>(
        static_cast<const T*>(x), static_cast<const int64_t*>(idx), static_cast<T*>(y), a, err);
  });
  SG_CUDA_CHECK(cudaGetLastError());
}

void launch_scatter_add(DType t, const void* idx, const void* src, void* y, const IndexArgs& a,
                        IndexError* err, cudaStream_t s) {
  if (a.it.numel == 0) return;
  visit_dtype(t, [&](auto z) {
    using T = decltype(z);
    if constexpr (std::is_same_v<T, bool>) {
      throw_dtype_error("cuda scatter_add", t);
    } else {
      scatter_kernel<T><<<grid_for(a.it.numel), kThreads, 0, s>>>(
          static_cast<const int64_t*>(idx), static_cast<const T*>(src), static_cast<T*>(y), a, err);
    }
  });
  SG_CUDA_CHECK(cudaGetLastError());
}

void launch_random(RandomKind kind, double p, uint64_t seed, uint64_t offset, DType t, void* y,
                   int64_t n, cudaStream_t s) {
  if (n == 0) return;
  if (t == DType::f32) {
    random_kernel<float>
        <<<grid_for(n), kThreads, 0, s>>>(kind, p, seed, offset, static_cast<float*>(y), n);
  } else if (t == DType::f64) {
    random_kernel<double>
        <<<grid_for(n), kThreads, 0, s>>>(kind, p, seed, offset, static_cast<double*>(y), n);
  } else {
    throw_dtype_error("cuda random", t);
  }
  SG_CUDA_CHECK(cudaGetLastError());
}

}  // namespace sg::cuda
