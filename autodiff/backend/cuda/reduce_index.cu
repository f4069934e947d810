// Reductions (sum/max/min over any axes; one pass, or two when a few long reductions are split
// across the device), gather, scatter-add (atomic, or deterministic through a CUB radix sort)
// and Philox random numbers.
#include <cub/device/device_radix_sort.cuh>
#include <type_traits>

#include "autodiff/backend/cuda/kernels.cuh"
#include "autodiff/backend/philox.hpp"

namespace sg::cuda {
namespace {

// ---- reductions ------------------------------------------------------------------------------
// The math (start values, combine, accumulators) is reduce_plan.hpp's ReduceFn, and the split
// geometry its ReducePlan, both tested on the CPU; these kernels only walk and combine.
template <class T, ReduceOp Op>
using Acc = typename ReduceFn<T, Op>::Acc;

// One thread's partial over the elements j0, j0 + step, ... < j1 of a reduced index space.
template <class In, class T, ReduceOp Op>
__device__ Acc<T, Op> thread_partial(const In* x, const Iter& r, int64_t j0, int64_t j1,
                                     int64_t step) {
  Acc<T, Op> acc = ReduceFn<T, Op>::init();
  for (int64_t j = j0; j < j1; j += step) {
    int64_t o[1];
    unravel<1>(r, j, o);
    acc = ReduceFn<T, Op>::combine(acc, static_cast<Acc<T, Op>>(x[o[0]]));
  }
  return acc;
}
// The block's kThreads partials combined in a fixed tree (deterministic); the result is valid
// in thread 0. Leaves the buffer free for the next call.
template <class T, ReduceOp Op>
__device__ Acc<T, Op> block_tree(Acc<T, Op> v, Acc<T, Op>* buf) {
  const int t = threadIdx.x;
  buf[t] = v;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w /= 2) {
    if (t < w) buf[t] = ReduceFn<T, Op>::combine(buf[t], buf[t + w]);
    __syncthreads();
  }
  const Acc<T, Op> out = buf[0];
  __syncthreads();
  return out;
}
// Many outputs: one thread per output walks its reduced index space in order. In is T, or
// the accumulator when this is the second pass of a split reduction.
template <class In, class T, ReduceOp Op>
__global__ void reduce_per_thread(const In* x, T* y, ReduceIter r) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < r.keep.numel;
       i += step) {
    int64_t o[2];
    unravel<2>(r.keep, i, o);
    y[o[1]] = static_cast<T>(thread_partial<In, T, Op>(x + o[0], r.reduce, 0, r.reduce.numel, 1));
  }
}
// Long reductions: one block per output, threads stride over the reduced space.
template <class In, class T, ReduceOp Op>
__global__ void reduce_per_block(const In* x, T* y, ReduceIter r) {
  __shared__ Acc<T, Op> buf[kThreads];
  for (int64_t i = blockIdx.x; i < r.keep.numel; i += gridDim.x) {
    int64_t o[2];
    unravel<2>(r.keep, i, o);
    const Acc<T, Op> v = block_tree<T, Op>(
        thread_partial<In, T, Op>(x + o[0], r.reduce, threadIdx.x, r.reduce.numel, kThreads), buf);
    if (threadIdx.x == 0) y[o[1]] = static_cast<T>(v);
  }
}
// Pass 1 of a split reduction: one block per (output, chunk) pair writes the chunk's partial
// to partials[output * splits + chunk].
template <class T, ReduceOp Op>
__global__ void reduce_split(const T* x, Acc<T, Op>* partials, ReduceIter r, ReducePlan p) {
  __shared__ Acc<T, Op> buf[kThreads];
  const int64_t pairs = p.outputs * p.splits;
  for (int64_t b = blockIdx.x; b < pairs; b += gridDim.x) {
    const int64_t out = b / p.splits, chunk = b - out * p.splits;
    int64_t o[2];
    unravel<2>(r.keep, out, o);
    const Acc<T, Op> v = block_tree<T, Op>(
        thread_partial<T, T, Op>(x + o[0], r.reduce, p.chunk_begin(chunk) + threadIdx.x,
                                 p.chunk_end(chunk), kThreads),
        buf);
    if (threadIdx.x == 0) partials[b] = v;
  }
}
template <class In, class T, ReduceOp Op>
void launch_pass(const ReduceGrid& g, const In* x, T* y, const ReduceIter& r, cudaStream_t s) {
  if (g.kind == ReduceKind::per_block)
    reduce_per_block<In, T, Op><<<g.grid, g.block, 0, s>>>(x, y, r);
  else
    reduce_per_thread<In, T, Op><<<g.grid, g.block, 0, s>>>(x, y, r);
  SG_CUDA_CHECK(cudaGetLastError());
}
template <class T, ReduceOp Op>
void reduce_as(const T* x, T* y, const ReduceIter& r, const ReducePlan& p, void* partials,
               cudaStream_t s) {
  if (p.pass1.kind != ReduceKind::split) return launch_pass<T, T, Op>(p.pass1, x, y, r, s);
  static_assert(sizeof(Acc<T, Op>) <= 8, "launch_reduce promises 8 bytes per partial");
  auto* part = static_cast<Acc<T, Op>*>(partials);
  reduce_split<T, Op><<<p.pass1.grid, p.pass1.block, 0, s>>>(x, part, r, p);
  SG_CUDA_CHECK(cudaGetLastError());
  // Pass 2 over the [outputs, splits] partials: x offsets output * splits, chunks contiguous.
  ReduceIter r2;
  r2.keep = r.keep;
  int64_t stride = p.splits;
  for (int d = r2.keep.rank - 1; d >= 0; --d) {
    r2.keep.stride[0][d] = stride;
    stride *= r2.keep.shape[d];
  }
  r2.reduce.rank = 1;
  r2.reduce.numel = p.splits;
  r2.reduce.shape[0] = p.splits;
  r2.reduce.stride[0][0] = 1;
  launch_pass<Acc<T, Op>, T, Op>(p.pass2, part, y, r2, s);
}

// ---- gather / scatter-add --------------------------------------------------------------------
// Every index kernel walks the same (idx, value, out) index space: one grid-stride kernel, a
// body per op called with the element's linear index and its three offsets.
template <class Body>
__global__ void index_kernel(Iter it, Body body) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < it.numel;
       i += step) {
    int64_t o[3];
    unravel<3>(it, i, o);
    body(i, o);
  }
}
template <class Body>
void launch_index(const Iter& it, const Body& body, cudaStream_t s) {
  index_kernel<<<grid_for(it.numel), kThreads, 0, s>>>(it, body);
  SG_CUDA_CHECK(cudaGetLastError());
}
// The range check: the first bad index claims the fault slot, later ones only skip their
// element.
struct IndexCheck {
  int64_t size;
  int axis;
  IndexOp op;
  IndexFault* f;
  __device__ bool bad(int64_t j) const {
    if (index_in_range(j, size)) return false;
    if (atomicCAS(&f->flag, 0, static_cast<int>(op)) == 0) {
      f->axis = axis;
      f->index = j;
      f->size = size;
    }
    return true;
  }
};
IndexCheck index_check(const IndexArgs& a, IndexOp op, IndexFault* f) {
  return {a.size, a.axis, op, f};
}
__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }  // sm_60+
__device__ __forceinline__ void atomic_add(int64_t* p, int64_t v) {
  atomicAdd(reinterpret_cast<unsigned long long*>(p),
            static_cast<unsigned long long>(v));  // two's complement
}
// Gather, offsets (x with axis stride 0, idx, out): y[o2] = x[o0 + j s], j = idx[o1].
// Atomic scatter-add, offsets (idx, src, out with axis stride 0): y[o2 + j s] += x[o1],
// j = idx[o0].
template <class T, bool Scatter>
struct IndexBody {
  const T* x;
  const int64_t* idx;
  T* y;
  int64_t axis_stride;
  IndexCheck check;
  __device__ void operator()(int64_t, const int64_t* o) const {
    const int64_t j = idx[o[Scatter ? 0 : 1]];
    if (check.bad(j)) return;
    if constexpr (Scatter)
      atomic_add(y + o[2] + j * axis_stride, x[o[1]]);
    else
      y[o[2]] = x[o[0] + j * axis_stride];
  }
};
// Deterministic scatter-add, step 1: key = destination offset (sentinel for a bad index, which
// sorts last), value = source offset, in source order.
using Key = unsigned long long;
struct ScatterKeysBody {
  const int64_t* idx;
  Key* keys;
  long long* vals;
  Key sentinel;
  int64_t axis_stride;
  IndexCheck check;
  __device__ void operator()(int64_t i, const int64_t* o) const {
    const int64_t j = idx[o[0]];
    keys[i] = check.bad(j) ? sentinel : static_cast<Key>(o[2] + j * axis_stride);
    vals[i] = o[1];
  }
};
// Step 3 (after the stable sort): the first element of each run of equal keys adds the run, in
// source order, onto its destination: the CPU's order of additions.
template <class T>
__global__ void scatter_runs_kernel(const Key* keys, const long long* vals, const T* src, T* y,
                                    int64_t n, Key sentinel) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const Key k = keys[i];
    if (k == sentinel || (i > 0 && keys[i - 1] == k)) continue;
    T acc = y[k];
    for (int64_t e = i; e < n && keys[e] == k; ++e) acc += src[vals[e]];
    y[k] = acc;
  }
}

// Scratch layout of the deterministic scatter: keys in/out, values in/out, then CUB's temp.
struct SortScratch {
  std::size_t cub_bytes = 0;
  std::size_t arrays_bytes(int64_t n) const {
    return static_cast<std::size_t>(n) * 2 * (sizeof(Key) + sizeof(long long));
  }
};
std::size_t cub_sort_bytes(int64_t n, int bits) {
  std::size_t bytes = 0;
  SG_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      nullptr, bytes, static_cast<const Key*>(nullptr), static_cast<Key*>(nullptr),
      static_cast<const long long*>(nullptr), static_cast<long long*>(nullptr), static_cast<int>(n),
      0, bits));
  return bytes;
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
                   const ReducePlan& plan, void* partials, cudaStream_t s) {
  if (r.keep.numel == 0) return;
  visit_dtype(t, [&](auto z) {
    using T = decltype(z);
    if constexpr (std::is_same_v<T, bool> || is_half_v<T>) {
      throw_dtype_error("cuda reduce", t);
    } else {
      const T* px = static_cast<const T*>(x);
      T* py = static_cast<T*>(y);
      if (op == ReduceOp::sum) reduce_as<T, ReduceOp::sum>(px, py, r, plan, partials, s);
      if (op == ReduceOp::max) reduce_as<T, ReduceOp::max>(px, py, r, plan, partials, s);
      if (op == ReduceOp::min) reduce_as<T, ReduceOp::min>(px, py, r, plan, partials, s);
    }
  });
}

void launch_gather(DType t, const void* x, const void* idx, void* y, const IndexArgs& a,
                   IndexFault* fault, cudaStream_t s) {
  if (a.it.numel == 0) return;
  visit_dtype(t, [&](auto z) {
    using T = decltype(z);
    launch_index(a.it,
                 IndexBody<T, false>{static_cast<const T*>(x), static_cast<const int64_t*>(idx),
                                     static_cast<T*>(y), a.axis_stride,
                                     index_check(a, IndexOp::gather, fault)},
                 s);
  });
}

void launch_scatter_add(DType t, const void* idx, const void* src, void* y, const IndexArgs& a,
                        IndexFault* fault, cudaStream_t s) {
  if (a.it.numel == 0) return;
  visit_dtype(t, [&](auto z) {
    using T = decltype(z);
    if constexpr (std::is_same_v<T, bool> || is_half_v<T>) {
      throw_dtype_error("cuda scatter_add", t);
    } else {
      launch_index(a.it,
                   IndexBody<T, true>{static_cast<const T*>(src), static_cast<const int64_t*>(idx),
                                      static_cast<T*>(y), a.axis_stride,
                                      index_check(a, IndexOp::scatter_add, fault)},
                   s);
    }
  });
}

std::size_t scatter_sorted_scratch(int64_t n, int64_t max_key) {
  if (n == 0) return 0;
  const SortScratch sc{cub_sort_bytes(n, sort_key_bits(max_key + 1))};
  return sc.arrays_bytes(n) + 256 + sc.cub_bytes;
}

void launch_scatter_add_sorted(DType t, const void* idx, const void* src, void* y,
                               const IndexArgs& a, int64_t max_key, void* scratch,
                               std::size_t scratch_bytes, IndexFault* fault, cudaStream_t s) {
  const int64_t n = a.it.numel;
  if (n == 0) return;
  const int bits = sort_key_bits(max_key + 1);
  const Key sentinel = static_cast<Key>(max_key) + 1;
  auto* keys_in = static_cast<Key*>(scratch);
  Key* keys_out = keys_in + n;
  auto* vals_in = reinterpret_cast<long long*>(keys_out + n);
  long long* vals_out = vals_in + n;
  // CUB's temporary storage, 256-byte aligned (scatter_sorted_scratch left room for it).
  const uintptr_t tail = reinterpret_cast<uintptr_t>(vals_out + n);
  const uintptr_t aligned = (tail + 255) / 256 * 256;
  void* cub_temp = reinterpret_cast<void*>(aligned);
  std::size_t cub_bytes = scratch_bytes - (aligned - reinterpret_cast<uintptr_t>(scratch));
  launch_index(a.it,
               ScatterKeysBody{static_cast<const int64_t*>(idx), keys_in, vals_in, sentinel,
                               a.axis_stride, index_check(a, IndexOp::scatter_add, fault)},
               s);
  // Stable: equal keys keep their source order.
  SG_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(cub_temp, cub_bytes, keys_in, keys_out, vals_in,
                                                vals_out, static_cast<int>(n), 0, bits, s));
  visit_floating(t, [&](auto z) {
    using T = decltype(z);
    if constexpr (is_half_v<T>) {
      throw_dtype_error("cuda scatter_add", t);
    } else {
      scatter_runs_kernel<T><<<grid_for(n), kThreads, 0, s>>>(
          keys_out, vals_out, static_cast<const T*>(src), static_cast<T*>(y), n, sentinel);
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
