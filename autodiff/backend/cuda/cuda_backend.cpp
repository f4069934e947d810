// The CUDA backend, host half: the caching allocator, streams, cuBLAS GEMM, peer copies, index
// faults and the Backend class that turns KViews into coalesced index spaces for the kernels
// (elementwise.cu, reduce_index.cu, conv.cu). Plain C++ against the CUDA runtime and cuBLAS;
// only kernels go to nvcc. The decisions (index spaces, GEMM layouts, allocator rules,
// reduction splits, index errors) live in the host headers next to backend.hpp and are tested
// on the CPU (tests/autodiff/test_backend_logic.cpp); this file only applies them.
#include "autodiff/backend/cuda/cuda_backend.hpp"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "autodiff/backend/backend.hpp"
#include "autodiff/backend/block_cache.hpp"
#include "autodiff/backend/cuda/kernels.cuh"
#include "autodiff/backend/gemm_layout.hpp"
#include "autodiff/backend/index_ops.hpp"
#include "autodiff/core/error.hpp"

namespace sg::cuda {

// ---- errors -------------------------------------------------------------------------------------
void throw_cuda_error(int code, const char* expr, const char* file, int line) {
  const auto e = static_cast<cudaError_t>(code);
  (void)cudaGetLastError();  // clear a non-sticky error so later calls start clean
  fail<DeviceError>("CUDA error ", cudaGetErrorName(e), ": ", cudaGetErrorString(e), " (", expr,
                    " at ", file, ":", line, ")");
}
void throw_cublas_error(int code, const char* expr, const char* file, int line) {
  fail<DeviceError>("cuBLAS error: ", cublasGetStatusString(static_cast<cublasStatus_t>(code)),
                    " (", expr, " at ", file, ":", line, ")");
}
void throw_dtype_error(const char* op, DType t) {
  fail<DTypeError>(op, ": unsupported dtype ", dtype_name(t));
}
// bfloat16 / float16 on CUDA: copies, casts, fills, where and gather run (they only move or
// convert values, with half.hpp's conversions on the device); arithmetic, reductions, GEMM,
// convolution, scatter_add and random draws are not written yet and say so.
namespace {
void refuse_half(const char* op, DType t) {
  if (is_half(t))
    fail<DTypeError>("cuda ", op, ": ", dtype_name(t),
                     " is not supported by the CUDA backend yet (cast to float32; bfloat16 and "
                     "float16 compute runs on the CPU backend)");
}
}  // namespace
#define SG_CUBLAS_CHECK(expr)                                                              \
  do {                                                                                     \
    const cublasStatus_t sg_st_ = (expr);                                                  \
    if (sg_st_ != CUBLAS_STATUS_SUCCESS)                                                   \
      ::sg::cuda::throw_cublas_error(static_cast<int>(sg_st_), #expr, __FILE__, __LINE__); \
  } while (0)

// ---- devices and streams ------------------------------------------------------------------------
namespace {
thread_local cudaStream_t t_stream = nullptr;
std::atomic<bool> g_allow_tf32{false};
std::atomic<ScatterMode> g_scatter_mode{ScatterMode::deterministic};
}  // namespace

int device_count(std::string* reason) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    if (reason)
      *reason = cat("cudaGetDeviceCount: ", cudaGetErrorName(e), ": ", cudaGetErrorString(e));
    return 0;
  }
  if (n == 0 && reason) *reason = "cudaGetDeviceCount reports no device";
  return n;
}
void set_device(int index) { SG_CUDA_CHECK(cudaSetDevice(index)); }
int current_device() {
  int d = 0;
  SG_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}
Stream current_stream() { return t_stream; }
void set_current_stream(Stream s) { t_stream = s; }
void set_allow_tf32(bool on) { g_allow_tf32 = on; }
bool allow_tf32() { return g_allow_tf32; }
void set_scatter_mode(ScatterMode m) { g_scatter_mode = m; }
ScatterMode scatter_mode() { return g_scatter_mode; }

// ---- caching allocator --------------------------------------------------------------------------
namespace {

// The rules (buckets, reuse per device and stream, release-and-retry on out of memory) are
// block_cache.hpp's, tested on the CPU; this is the CUDA memory behind them.
struct CudaMemory {
  cudaError_t last = cudaSuccess;  // the last refusal, for the error message
  void* malloc(std::size_t n, int device) {
    int current = 0;
    SG_CUDA_CHECK(cudaGetDevice(&current));
    if (current != device) SG_CUDA_CHECK(cudaSetDevice(device));
    void* p = nullptr;
    last = cudaMalloc(&p, n);
    if (current != device) SG_CUDA_CHECK(cudaSetDevice(current));
    if (last == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      return nullptr;
    }
    SG_CUDA_CHECK(last);
    return p;
  }
  void free(void* p, int device) {
    SG_CUDA_CHECK(cudaSetDevice(device));
    SG_CUDA_CHECK(cudaFree(p));
  }
  void synchronize(int device) {
    SG_CUDA_CHECK(cudaSetDevice(device));
    SG_CUDA_CHECK(cudaDeviceSynchronize());
  }
};

class Allocator {
 public:
  void* allocate(std::size_t nbytes, cudaStream_t stream, int device) {
    int current = 0;
    SG_CUDA_CHECK(cudaGetDevice(&current));
    void* p = cache_.allocate(nbytes, reinterpret_cast<uintptr_t>(stream), device);
    SG_CUDA_CHECK(cudaSetDevice(current));  // release/free may have switched devices
    if (!p) {
      const BlockCacheStats s = cache_.stats();
      fail<DeviceError>("cuda:", device, ": cannot allocate ", nbytes, " bytes (", s.bytes_in_use,
                        " in use, ", s.bytes_cached,
                        " cached): ", cudaGetErrorString(cache_.memory().last));
    }
    return p;
  }
  void release(void* p) noexcept { cache_.release(p); }
  void release_cache() {
    int current = 0;
    SG_CUDA_CHECK(cudaGetDevice(&current));
    cache_.release_cache();
    SG_CUDA_CHECK(cudaSetDevice(current));
  }
  BlockCacheStats stats() { return cache_.stats(); }
  void reset_peak() { cache_.reset_peak(); }

 private:
  BlockCache<CudaMemory> cache_;
};

// Never destroyed: storages may die during static destruction, after any allocator would.
Allocator& allocator() {
  static Allocator* a = new Allocator;
  return *a;
}

// A device scratch block from the cache, returned when the scope ends.
struct Scratch {
  void* p;
  explicit Scratch(std::size_t n) : p(allocator().allocate(n, t_stream, current_device())) {}
  ~Scratch() { allocator().release(p); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

// ---- cuBLAS handles: one per (thread, device), recycled through a pool when threads end ------
struct HandlePool {
  std::mutex mu;
  std::vector<std::pair<int, cublasHandle_t>> idle;
};
HandlePool& handle_pool() {
  static HandlePool* p = new HandlePool;  // never destroyed, handles die with the process
  return *p;
}
struct ThreadHandles {
  std::vector<std::pair<int, cublasHandle_t>> held;
  ~ThreadHandles() {
    HandlePool& pool = handle_pool();
    std::lock_guard<std::mutex> lock(pool.mu);
    for (auto& h : held) pool.idle.push_back(h);
  }
};
cublasHandle_t cublas_handle() {
  thread_local ThreadHandles mine;
  const int dev = current_device();
  cublasHandle_t h = nullptr;
  for (auto& [d, x] : mine.held)
    if (d == dev) h = x;
  if (!h) {
    HandlePool& pool = handle_pool();
    {
      std::lock_guard<std::mutex> lock(pool.mu);
      auto it = std::find_if(pool.idle.begin(), pool.idle.end(),
                             [&](const auto& e) { return e.first == dev; });
      if (it != pool.idle.end()) {
        h = it->second;
        pool.idle.erase(it);
      }
    }
    if (!h) SG_CUBLAS_CHECK(cublasCreate(&h));
    mine.held.emplace_back(dev, h);
  }
  SG_CUBLAS_CHECK(cublasSetStream(h, t_stream));
  // CUBLAS_DEFAULT_MATH: float GEMMs in full FP32, never TF32, unless set_allow_tf32(true).
  SG_CUBLAS_CHECK(
      cublasSetMathMode(h, g_allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  return h;
}

// ---- index spaces -------------------------------------------------------------------------------
static_assert(kDims == kMaxDims, "index_space.hpp must hold as many dims as a Shape");
// The shared merging rule (index_space.hpp): extent-1 dims dropped, adjacent dims merged where
// every operand allows it.
template <int K>
Iter make_iter(const Shape& shape, const Shape* const (&strides)[K]) {
  return coalesce(shape, strides);
}

void check_index_dtype(const char* op, const KView& idx) {
  if (idx.dtype != DType::i64)
    fail<DTypeError>(op, ": index must be int64, got ", dtype_name(idx.dtype));
}

// ---- index faults -------------------------------------------------------------------------------
// One IndexFault slot per device in device memory: index kernels claim it with an atomic and
// record the first bad index (no synchronisation). Launching one arms the slot; the next
// synchronising call of this backend on that device (after its own stream synchronisation)
// reads an armed slot back, clears it and raises IndexError (index_ops.hpp). Devices and
// threads that ran no index op pay nothing. The read is ordered after the work of the calling
// thread's stream; a fault of an index op on another stream is raised by cuda::synchronize().
struct FaultSlot {
  IndexFault* dev = nullptr;
  std::atomic<bool> armed{false};
};
struct FaultSlots {
  std::mutex mu;
  std::vector<std::unique_ptr<FaultSlot>> slots;
};
FaultSlots& fault_slots() {
  static FaultSlots* f = new FaultSlots;  // never destroyed (the slots die with the context)
  return *f;
}
FaultSlot* find_fault_slot(int device, bool create) {
  FaultSlots& f = fault_slots();
  std::lock_guard<std::mutex> lock(f.mu);
  const auto d = static_cast<std::size_t>(device);
  if (f.slots.size() <= d) {
    if (!create) return nullptr;
    f.slots.resize(d + 1);
  }
  if (!f.slots[d] && create) {
    auto slot = std::make_unique<FaultSlot>();
    void* p = nullptr;
    SG_CUDA_CHECK(cudaMalloc(&p, sizeof(IndexFault)));  // `device` is current (backend(i))
    SG_CUDA_CHECK(cudaMemset(p, 0, sizeof(IndexFault)));
    slot->dev = static_cast<IndexFault*>(p);
    f.slots[d] = std::move(slot);
  }
  return f.slots[d].get();
}
// The slot for an index kernel about to run on `device`, armed.
IndexFault* arm_fault_slot(int device) {
  FaultSlot* s = find_fault_slot(device, true);
  s->armed = true;
  return s->dev;
}
// After a synchronisation of `device`: raise the fault its index kernels recorded, if any.
void raise_pending_fault(int device) {
  FaultSlot* s = find_fault_slot(device, false);
  if (!s || !s->armed.exchange(false)) return;
  IndexFault fault{};
  SG_CUDA_CHECK(
      cudaMemcpyAsync(&fault, s->dev, sizeof(IndexFault), cudaMemcpyDeviceToHost, t_stream));
  SG_CUDA_CHECK(cudaStreamSynchronize(t_stream));
  if (!fault.flag) return;
  SG_CUDA_CHECK(cudaMemsetAsync(s->dev, 0, sizeof(IndexFault), t_stream));  // raised once
  raise_index_fault(fault, cat("cuda:", device).c_str());
}

// ---- GEMM ---------------------------------------------------------------------------------------
// The layout decision and the cuBLAS arguments are gemm_layout.hpp's (tested on the CPU against
// a reference column-major GEMM); this only maps them onto cublas<t>gemmStridedBatched.
cublasOperation_t to_cublas(gemm::Op op) { return op == gemm::Op::N ? CUBLAS_OP_N : CUBLAS_OP_T; }

// Row-major C[m, n] = A[m, k] B[k, n] (C with row stride ldc, `count` matrices at strides sa,
// sb, sc) as column-major C^T = B^T A^T: cuBLAS gets (n, m, k) and B before A.
template <class T>
void gemm_strided_batched(cublasHandle_t h, const gemm::Operand& ga, const gemm::Operand& gb,
                          int64_t m, int64_t n, int64_t k, const T* a, long long sa, const T* b,
                          long long sb, T* c, int64_t ldc, long long sc, int64_t count) {
  const T one = 1, zero = 0;
  const auto i = [](int64_t v) { return static_cast<int>(v); };
  if constexpr (std::is_same_v<T, float>) {
    SG_CUBLAS_CHECK(cublasSgemmStridedBatched(h, to_cublas(gb.op()), to_cublas(ga.op()), i(n), i(m),
                                              i(k), &one, b, i(gb.ld), sb, a, i(ga.ld), sa, &zero,
                                              c, i(ldc), sc, i(count)));
  } else {
    SG_CUBLAS_CHECK(cublasDgemmStridedBatched(h, to_cublas(gb.op()), to_cublas(ga.op()), i(n), i(m),
                                              i(k), &one, b, i(gb.ld), sb, a, i(ga.ld), sa, &zero,
                                              c, i(ldc), sc, i(count)));
  }
}

// ---- the backend --------------------------------------------------------------------------------
class CudaBackend final : public Backend {
 public:
  Storage* allocate(std::size_t nbytes) override {
    const int dev = current_device();
    auto s = std::make_unique<Storage>();
    s->device = Device::cuda(dev);
    s->nbytes = nbytes;
    s->data = nbytes ? allocator().allocate(nbytes, t_stream, dev) : nullptr;
    s->release = [](Storage* st) {
      if (st->data) allocator().release(st->data);
      delete st;
    };
    return s.release();
  }

  // Synchronises the stream, so it is also where an index fault of an earlier op is raised.
  void memcpy_host(void* dst, const void* src, std::size_t nbytes, bool dst_on_host) override {
    if (!nbytes) return;
    SG_CUDA_CHECK(cudaMemcpyAsync(
        dst, src, nbytes, dst_on_host ? cudaMemcpyDeviceToHost : cudaMemcpyHostToDevice, t_stream));
    SG_CUDA_CHECK(cudaStreamSynchronize(t_stream));
    raise_pending_fault(current_device());
  }

  // cuda:from -> cuda:to (the current device) with cudaMemcpyPeerAsync (direct over NVLink or
  // PCIe when peer access is available, staged by the driver otherwise), ordered after the work
  // queued on `from` (which produced src) and before anything queued on `from` later (which may
  // reuse src's block): events on each device's current stream, no host synchronisation.
  bool copy_between_devices(void* dst, Device to, const void* src, Device from,
                            std::size_t nbytes) override {
    if (to.type != DeviceType::cuda || from.type != DeviceType::cuda) return false;
    if (!nbytes) return true;
    enable_peer_access(to.index, from.index);
    cudaEvent_t ready = nullptr, done = nullptr;
    SG_CUDA_CHECK(cudaSetDevice(from.index));
    SG_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    SG_CUDA_CHECK(cudaEventRecord(ready, t_stream));
    SG_CUDA_CHECK(cudaSetDevice(to.index));
    SG_CUDA_CHECK(cudaStreamWaitEvent(t_stream, ready, 0));
    SG_CUDA_CHECK(cudaMemcpyPeerAsync(dst, to.index, src, from.index, nbytes, t_stream));
    SG_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    SG_CUDA_CHECK(cudaEventRecord(done, t_stream));
    SG_CUDA_CHECK(cudaSetDevice(from.index));
    SG_CUDA_CHECK(cudaStreamWaitEvent(t_stream, done, 0));
    SG_CUDA_CHECK(cudaSetDevice(to.index));
    // Destroying a recorded event is fine: its resources go once it completes.
    SG_CUDA_CHECK(cudaEventDestroy(ready));
    SG_CUDA_CHECK(cudaEventDestroy(done));
    return true;
  }

  void copy(const KView& src, const KView& dst) override {
    launch_copy(src.dtype, dst.dtype, src.data, dst.data,
                make_iter(dst.shape, {&src.strides, &dst.strides}), t_stream);
  }
  void fill(const KView& dst, double value) override {
    launch_fill(dst.dtype, dst.data, value, make_iter(dst.shape, {&dst.strides}), t_stream);
  }
  void unary(UnaryOp op, double scalar, const KView& x, const KView& out) override {
    refuse_half("unary", x.dtype);
    launch_unary(op, scalar, x.dtype, x.data, out.data,
                 make_iter(out.shape, {&x.strides, &out.strides}), t_stream);
  }
  void binary(BinaryOp op, const KView& a, const KView& b, const KView& out) override {
    refuse_half("binary", a.dtype);
    launch_binary(op, a.dtype, a.data, b.data, out.data,
                  make_iter(out.shape, {&a.strides, &b.strides, &out.strides}), t_stream);
  }
  void where(const KView& c, const KView& a, const KView& b, const KView& out) override {
    launch_where(out.dtype, c.data, a.data, b.data, out.data,
                 make_iter(out.shape, {&c.strides, &a.strides, &b.strides, &out.strides}),
                 t_stream);
  }

  // Kept axes index the outputs, reduced axes (extent 1 in out, not in x) are combined. The
  // split across the device is reduce_plan.hpp's (a full reduction uses up to 1024 blocks and a
  // second pass), with its partials in a scratch block.
  void reduce(ReduceOp op, const KView& x, const KView& out) override {
    refuse_half("reduce", x.dtype);
    Shape keep, keep_x, keep_out, red, red_x;
    for (int d = 0; d < x.shape.rank(); ++d) {
      if (out.shape[d] == 1 && x.shape[d] != 1) {
        red.push_back(x.shape[d]);
        red_x.push_back(x.strides[d]);
      } else {
        keep.push_back(x.shape[d]);
        keep_x.push_back(x.strides[d]);
        keep_out.push_back(out.strides[d]);
      }
    }
    const ReduceIter r{make_iter(keep, {&keep_x, &keep_out}), make_iter(red, {&red_x})};
    const ReducePlan plan =
        plan_reduce(r.keep.numel, r.reduce.numel, r.reduce.stride[0][r.reduce.rank - 1] == 1);
    std::optional<Scratch> partials;
    if (plan.partials()) partials.emplace(static_cast<std::size_t>(plan.partials()) * 8);
    launch_reduce(op, x.dtype, x.data, out.data, r, plan, partials ? partials->p : nullptr,
                  t_stream);
  }

  void matmul(const KView& a, const KView& b, const KView& out) override {
    const int R = out.shape.rank();
    const int64_t m = out.shape[R - 2], n = out.shape[R - 1], k = a.shape[R - 1];
    if (out.shape.numel() == 0) return;
    refuse_half("matmul", out.dtype);
    if (k == 0) return fill(out, 0.0);
    if (a.dtype != out.dtype || b.dtype != out.dtype || !is_floating(out.dtype))
      fail<DTypeError>("cuda matmul: unsupported dtypes ", dtype_name(a.dtype), ", ",
                       dtype_name(b.dtype));
    if (std::max({m, n, k}) > INT_MAX)
      fail<DeviceError>("cuda matmul: a matrix extent exceeds cuBLAS's int range");
    // The layout decision (gemm_layout.hpp, leading dimensions within cuBLAS's int); an operand
    // it refuses (never produced by the matmul op, which copies them) goes through a copy.
    auto plan_for = [&](const KView& av, const KView& bv) {
      return gemm::plan(out.shape, av.strides, bv.strides, out.strides, k, INT_MAX);
    };
    gemm::Plan p = plan_for(a, b);
    if (!p.c.ok)
      fail<DeviceError>("cuda matmul: the output ", out.shape.str(),
                        " must be row-major (unit column stride, row stride >= n)");
    std::unique_ptr<Storage, void (*)(Storage*)> tmp_a(nullptr, release), tmp_b(nullptr, release);
    const KView av = p.a.ok ? a : contiguous_copy(a, tmp_a);
    const KView bv = p.b.ok ? b : contiguous_copy(b, tmp_b);
    if (!p.ok()) p = plan_for(av, bv);
    if (!p.ok()) fail<DeviceError>("cuda matmul: a leading dimension exceeds cuBLAS's int range");
    if (p.count > INT_MAX) fail<DeviceError>("cuda matmul: batch count exceeds cuBLAS's int range");
    cublasHandle_t h = cublas_handle();
    visit_floating(out.dtype, [&](auto z) {
      using T = decltype(z);
      if constexpr (!is_half_v<T>) {  // refused above
        for (int64_t o = 0; o < p.outer; ++o) {
          int64_t off[3];
          p.outer_offsets(o, off);
          gemm_strided_batched<T>(h, p.a, p.b, m, n, k, static_cast<const T*>(av.data) + off[0],
                                  p.stride_a, static_cast<const T*>(bv.data) + off[1], p.stride_b,
                                  static_cast<T*>(out.data) + off[2], p.c.ld, p.stride_c, p.count);
        }
      }
    });
  }

  // im2col, one GEMM over the whole batch (columns q = (n, oh, ow)) and col2im, as the CPU
  // backend's conv2d_by_gemm. Row-major operands go to cuBLAS as in matmul (gemm_layout.hpp).
  void conv2d(ConvPass pass, const ConvGeom& g, const KView& a, const KView& b,
              const KView& out) override {
    const char* pname = pass == ConvPass::forward      ? "forward"
                        : pass == ConvPass::input_grad ? "input_grad"
                                                       : "weight_grad";
    const DType t = out.dtype;
    refuse_half("conv2d", t);
    if (a.dtype != t || b.dtype != t || !is_floating(t))
      fail<DTypeError>("cuda conv2d (", pname, "): unsupported dtypes ", dtype_name(a.dtype), ", ",
                       dtype_name(b.dtype), " -> ", dtype_name(t));
    for (const KView* v : {&a, &b, &out})
      if (v->shape.numel() > 1 && v->strides != contiguous_strides(v->shape))
        fail<DeviceError>("cuda conv2d (", pname, ", ", dtype_name(t),
                          "): operands must be contiguous");
    const int64_t K = g.patch_rows(), L = g.positions(), P = g.Ho * g.Wo, O = g.O;
    if (out.shape.numel() == 0) return;
    if (K == 0 || L == 0 || O == 0) return fill(out, 0.0);  // every sum is empty
    if (std::max({K, L, O}) > INT_MAX || K * L > INT64_MAX / 8 || O * L > INT64_MAX / 8)
      fail<DeviceError>("cuda conv2d (", pname, ", ", dtype_name(t),
                        "): a GEMM extent exceeds cuBLAS's int range (K = ", K, ", N Ho Wo = ", L,
                        ", O = ", O, ")");
    const std::size_t isz = itemsize(t);
    Scratch cols(static_cast<std::size_t>(K * L) * isz);
    std::optional<Scratch> tmp;  // gT / y2 in [O, N P]; with N = 1 that is [N, O, P] itself
    void* chan = nullptr;
    if (pass == ConvPass::forward) {
      chan = g.N == 1 ? out.data : tmp.emplace(static_cast<std::size_t>(O * L) * isz).p;
      launch_im2col(t, g, a.data, cols.p, t_stream);
    } else {
      const void* gv = pass == ConvPass::input_grad ? a.data : b.data;  // [N, O, P]
      chan =
          g.N == 1 ? const_cast<void*>(gv) : tmp.emplace(static_cast<std::size_t>(O * L) * isz).p;
      if (g.N != 1) launch_swap_outer(t, gv, chan, g.N, O, P, t_stream);
      if (pass == ConvPass::weight_grad) launch_im2col(t, g, a.data, cols.p, t_stream);
    }
    cublasHandle_t h = cublas_handle();
    // Row-major C[m, n] = A[m, k] B[k, n]; a transposed operand is a view with strides (1, ld).
    auto gemm = [&](auto z, const void* A, const gemm::Operand& ga, const void* B,
                    const gemm::Operand& gb, void* C, int64_t m, int64_t n, int64_t k) {
      using T = decltype(z);
      if constexpr (!is_half_v<T>) {  // refused above
        gemm_strided_batched<T>(h, ga, gb, m, n, k, static_cast<const T*>(A), 0,
                                static_cast<const T*>(B), 0, static_cast<T*>(C), n, 0, 1);
      }
    };
    const auto layout = [](int64_t rows, int64_t cols, int64_t s0, int64_t s1) {
      return gemm::operand_layout(rows, cols, s0, s1, INT_MAX);
    };
    visit_floating(t, [&](auto z) {
      switch (pass) {
        case ConvPass::forward:  // y2[O, L] = w[O, K] cols[K, L]
          gemm(z, b.data, layout(O, K, K, 1), cols.p, layout(K, L, L, 1), chan, O, L, K);
          break;
        case ConvPass::input_grad:  // cols[K, L] = w^T[K, O] gT[O, L]
          gemm(z, b.data, layout(K, O, 1, K), chan, layout(O, L, L, 1), cols.p, K, L, O);
          break;
        case ConvPass::weight_grad:  // dw[O, K] = gT[O, L] cols^T[L, K]
          gemm(z, chan, layout(O, L, L, 1), cols.p, layout(L, K, 1, L), out.data, O, K, L);
          break;
      }
    });
    if (pass == ConvPass::forward && g.N != 1)
      launch_swap_outer(t, chan, out.data, O, g.N, P, t_stream);  // [O, N, P] -> [N, O, P]
    if (pass == ConvPass::input_grad) launch_fold(t, g, cols.p, out.data, t_stream);
  }

  // Index ops never synchronise: a bad index is recorded on the device and raised as
  // IndexError at the next synchronising call (index_ops.hpp).
  void gather(const KView& x, const KView& idx, int axis, const KView& out) override {
    check_index_dtype("gather", idx);
    Shape xs = x.strides;
    xs[axis] = 0;  // walk x along every axis but `axis`
    const IndexArgs args{make_iter(out.shape, {&xs, &idx.strides, &out.strides}), x.strides[axis],
                         x.shape[axis], axis};
    launch_gather(out.dtype, x.data, idx.data, out.data, args, arm_fault_slot(current_device()),
                  t_stream);
  }

  void scatter_add(const KView& idx, const KView& src, int axis, const KView& out) override {
    refuse_half("scatter_add", out.dtype);
    check_index_dtype("scatter_add", idx);
    Shape os = out.strides;
    os[axis] = 0;
    const IndexArgs args{make_iter(src.shape, {&idx.strides, &src.strides, &os}), out.strides[axis],
                         out.shape[axis], axis};
    IndexFault* fault = arm_fault_slot(current_device());
    if (!is_floating(out.dtype) || scatter_mode() == ScatterMode::atomic)  // int64 adds are exact
      return launch_scatter_add(out.dtype, idx.data, src.data, out.data, args, fault, t_stream);
    // Deterministic: keys are destination offsets, in [0, max_key] for an output without
    // negative strides (the op's output is a fresh tensor).
    int64_t max_key = 0;
    for (int d = 0; d < out.shape.rank(); ++d) {
      if (out.shape[d] == 0) return;
      if (out.strides[d] < 0)
        fail<DeviceError>("cuda scatter_add (deterministic): output strides ", out.strides.str(),
                          " must not be negative");
      max_key += (out.shape[d] - 1) * out.strides[d];
    }
    const int64_t n = args.it.numel;
    if (n > INT_MAX)
      fail<DeviceError>("cuda scatter_add (deterministic): ", n,
                        " source elements exceed the sort's int range; "
                        "sg::cuda::set_scatter_mode(ScatterMode::atomic) allows it");
    if (n == 0) return;
    const std::size_t bytes = scatter_sorted_scratch(n, max_key);
    Scratch scratch(bytes);
    launch_scatter_add_sorted(out.dtype, idx.data, src.data, out.data, args, max_key, scratch.p,
                              bytes, fault, t_stream);
  }

  void random(RandomKind kind, double p, uint64_t seed, uint64_t offset,
              const KView& out) override {
    refuse_half("random", out.dtype);
    if (!(out.shape.numel() <= 1 || out.strides == contiguous_strides(out.shape)))
      fail<DeviceError>("cuda random: the output must be contiguous");
    launch_random(kind, p, seed, offset, out.dtype, out.data, out.shape.numel(), t_stream);
  }

 private:
  static void release(Storage* s) { s->release(s); }
  // Peer access between two devices, enabled once per pair where the hardware has it.
  static void enable_peer_access(int to, int from) {
    static std::mutex mu;
    static std::set<std::pair<int, int>> tried;
    std::lock_guard<std::mutex> lock(mu);
    if (to == from || !tried.insert({to, from}).second) return;
    int can = 0;
    SG_CUDA_CHECK(cudaDeviceCanAccessPeer(&can, to, from));
    if (!can) return;
    int current = 0;
    SG_CUDA_CHECK(cudaGetDevice(&current));
    SG_CUDA_CHECK(cudaSetDevice(to));
    const cudaError_t e = cudaDeviceEnablePeerAccess(from, 0);
    if (e == cudaErrorPeerAccessAlreadyEnabled)
      (void)cudaGetLastError();
    else
      SG_CUDA_CHECK(e);
    SG_CUDA_CHECK(cudaSetDevice(current));
  }
  KView contiguous_copy(const KView& v, std::unique_ptr<Storage, void (*)(Storage*)>& keep) {
    keep.reset(allocate(static_cast<std::size_t>(v.shape.numel()) * itemsize(v.dtype)));
    KView c{keep->data, v.shape, contiguous_strides(v.shape), v.dtype};
    copy(v, c);
    return c;
  }
};

CudaBackend& instance() {
  static CudaBackend* b = [] {
    auto* p = new CudaBackend;  // never destroyed (storages may outlive static destruction)
    register_cuda_backend(p);
    return p;
  }();
  return *b;
}

}  // namespace

Backend& backend(int device) {
  CudaBackend& b = instance();
  int current = -1;
  SG_CUDA_CHECK(cudaGetDevice(&current));
  if (current != device) SG_CUDA_CHECK(cudaSetDevice(device));
  return b;
}
void init() { instance(); }

void synchronize() {
  SG_CUDA_CHECK(cudaDeviceSynchronize());
  raise_pending_fault(current_device());
}

AllocatorStats allocator_stats() {
  const BlockCacheStats s = allocator().stats();
  return {s.bytes_in_use,  s.bytes_cached, s.peak_bytes_in_use,
          s.device_allocs, s.device_frees, s.cache_hits};
}
void release_cache() { allocator().release_cache(); }
void reset_peak() { allocator().reset_peak(); }

}  // namespace sg::cuda
