// The CUDA backend, host half: the caching allocator, streams, cuBLAS GEMM and the Backend
// class that turns KViews into coalesced index spaces for the kernels (elementwise.cu,
// reduce_index.cu). Plain C++ against the CUDA runtime and cuBLAS; only kernels go to nvcc.
#include "autodiff/backend/cuda/cuda_backend.hpp"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "autodiff/backend/backend.hpp"
#include "autodiff/backend/cuda/kernels.cuh"
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
void synchronize() { SG_CUDA_CHECK(cudaDeviceSynchronize()); }
Stream current_stream() { return t_stream; }
void set_current_stream(Stream s) { t_stream = s; }
void set_allow_tf32(bool on) { g_allow_tf32 = on; }
bool allow_tf32() { return g_allow_tf32; }

// ---- caching allocator --------------------------------------------------------------------------
namespace {

std::size_t bucket(std::size_t n) {
  constexpr std::size_t kSmall = std::size_t{1} << 20, kSmallStep = 512,
                        kLargeStep = std::size_t{2} << 20;
  return n <= kSmall ? (n + kSmallStep - 1) / kSmallStep * kSmallStep
                     : (n + kLargeStep - 1) / kLargeStep * kLargeStep;
}

class Allocator {
 public:
  void* allocate(std::size_t nbytes, cudaStream_t stream, int device) {
    const Key key{device, reinterpret_cast<uintptr_t>(stream), bucket(nbytes)};
    std::lock_guard<std::mutex> lock(mu_);
    void* p = nullptr;
    auto it = free_.find(key);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      stats_.bytes_cached -= key.size;
      ++stats_.cache_hits;
    } else {
      cudaError_t e = cudaMalloc(&p, key.size);
      if (e == cudaErrorMemoryAllocation) {  // give the cache back and try once more
        (void)cudaGetLastError();
        release_locked();
        e = cudaMalloc(&p, key.size);
      }
      if (e != cudaSuccess) {
        (void)cudaGetLastError();
        fail<DeviceError>("cuda:", device, ": cannot allocate ", nbytes, " bytes (",
                          stats_.bytes_in_use, " in use, ", stats_.bytes_cached,
                          " cached): ", cudaGetErrorString(e));
      }
      ++stats_.device_allocs;
    }
    live_.emplace(p, key);
    stats_.bytes_in_use += key.size;
    stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
    return p;
  }

  // Back to the cache (no CUDA call, so it is safe from destructors and at exit). Pending work
  // on the block's stream is ordered before any reuse, which happens on that same stream.
  void release(void* p) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) return;
    const Key key = it->second;
    live_.erase(it);
    stats_.bytes_in_use -= key.size;
    stats_.bytes_cached += key.size;
    free_[key].push_back(p);
  }

  void release_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    release_locked();
  }
  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_bytes_in_use = stats_.bytes_in_use;
  }

 private:
  struct Key {
    int device;
    uintptr_t stream;
    std::size_t size;
    bool operator<(const Key& o) const {
      return std::tie(device, stream, size) < std::tie(o.device, o.stream, o.size);
    }
  };

  void release_locked() {
    std::set<int> devices;
    for (const auto& [key, blocks] : free_)
      if (!blocks.empty()) devices.insert(key.device);
    if (devices.empty()) return;
    int current = 0;
    SG_CUDA_CHECK(cudaGetDevice(&current));
    for (int d : devices) {  // cached blocks may still be read by queued kernels
      SG_CUDA_CHECK(cudaSetDevice(d));
      SG_CUDA_CHECK(cudaDeviceSynchronize());
    }
    for (auto& [key, blocks] : free_) {
      SG_CUDA_CHECK(cudaSetDevice(key.device));
      for (void* p : blocks) {
        SG_CUDA_CHECK(cudaFree(p));
        ++stats_.device_frees;
        stats_.bytes_cached -= key.size;
      }
      blocks.clear();
    }
    free_.clear();
    SG_CUDA_CHECK(cudaSetDevice(current));
  }

  std::mutex mu_;
  std::map<Key, std::vector<void*>> free_;
  std::unordered_map<void*, Key> live_;
  AllocatorStats stats_;
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
static_assert(kDims == kMaxDims, "kernels.cuh must hold as many dims as a Shape");
// The index space `shape` walked by the given operand strides, with extent-1 dims dropped and
// adjacent dims merged wherever every operand allows it (contiguous views become rank 1).
Iter make_iter(const Shape& shape, std::initializer_list<const Shape*> strides) {
  Iter it;
  it.numel = shape.numel();
  int r = 0;
  for (int d = 0; d < shape.rank(); ++d) {
    if (shape[d] == 1) continue;
    if (r > 0) {
      bool merge = true;
      int k = 0;
      for (const Shape* s : strides) merge &= it.stride[k++][r - 1] == (*s)[d] * shape[d];
      if (merge) {
        it.shape[r - 1] *= shape[d];
        k = 0;
        for (const Shape* s : strides) it.stride[k++][r - 1] = (*s)[d];
        continue;
      }
    }
    it.shape[r] = shape[d];
    int k = 0;
    for (const Shape* s : strides) it.stride[k++][r] = (*s)[d];
    ++r;
  }
  if (r == 0) it.shape[r++] = 1;  // a single element: rank 1, zero strides
  it.rank = r;
  return it;
}

void check_index_dtype(const char* op, const KView& idx) {
  if (idx.dtype != DType::i64)
    fail<DTypeError>(op, ": index must be int64, got ", dtype_name(idx.dtype));
}

// Runs an index kernel with a device error slot, then reports an out-of-range index the way
// the CPU backend does (ValueError). This synchronises the stream.
template <class Launch>
void with_index_check(const char* op, int axis, int64_t size, Launch&& launch) {
  Scratch slot(sizeof(IndexError));
  auto* err = static_cast<IndexError*>(slot.p);
  SG_CUDA_CHECK(cudaMemsetAsync(err, 0, sizeof(IndexError), t_stream));
  launch(err);
  IndexError host{};
  SG_CUDA_CHECK(cudaMemcpyAsync(&host, err, sizeof(IndexError), cudaMemcpyDeviceToHost, t_stream));
  SG_CUDA_CHECK(cudaStreamSynchronize(t_stream));
  if (host.flag)
    fail<ValueError>(op, ": index ", host.index, " is out of range for axis ", axis, " of size ",
                     size);
}

// ---- GEMM ---------------------------------------------------------------------------------------
// How cuBLAS (column-major) sees one row-major matrix operand [rows, cols] with strides (s0, s1):
// unit column stride -> its transpose with ld s0 (op N); unit row stride -> itself with ld s1 (op
// T).
struct GemmOperand {
  bool ok = false;
  cublasOperation_t op = CUBLAS_OP_N;
  int64_t ld = 0;
};
GemmOperand gemm_operand(int64_t rows, int64_t cols, int64_t s0, int64_t s1) {
  if (s1 == 1 && (rows == 1 || s0 >= std::max<int64_t>(cols, 1)))
    return {true, CUBLAS_OP_N, rows == 1 ? std::max<int64_t>(cols, 1) : s0};
  if (s0 == 1 && (cols == 1 || s1 >= std::max<int64_t>(rows, 1)))
    return {true, CUBLAS_OP_T, cols == 1 ? std::max<int64_t>(rows, 1) : s1};
  return {};
}

template <class T>
void gemm_strided_batched(cublasHandle_t h, const GemmOperand& ga, const GemmOperand& gb, int m,
                          int n, int k, const T* a, long long sa, const T* b, long long sb, T* c,
                          long long sc, int count) {
  const T one = 1, zero = 0;
  // Row-major C = A B is column-major C^T = B^T A^T: cuBLAS computes [n, m] = op(B) op(A).
  if constexpr (std::is_same_v<T, float>) {
    SG_CUBLAS_CHECK(cublasSgemmStridedBatched(h, gb.op, ga.op, n, m, k, &one, b,
                                              static_cast<int>(gb.ld), sb, a,
                                              static_cast<int>(ga.ld), sa, &zero, c, n, sc, count));
  } else {
    SG_CUBLAS_CHECK(cublasDgemmStridedBatched(h, gb.op, ga.op, n, m, k, &one, b,
                                              static_cast<int>(gb.ld), sb, a,
                                              static_cast<int>(ga.ld), sa, &zero, c, n, sc, count));
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

  void memcpy_host(void* dst, const void* src, std::size_t nbytes, bool dst_on_host) override {
    if (!nbytes) return;
    SG_CUDA_CHECK(cudaMemcpyAsync(
        dst, src, nbytes, dst_on_host ? cudaMemcpyDeviceToHost : cudaMemcpyHostToDevice, t_stream));
    SG_CUDA_CHECK(cudaStreamSynchronize(t_stream));
  }

  void copy(const KView& src, const KView& dst) override {
    launch_copy(src.dtype, dst.dtype, src.data, dst.data,
                make_iter(dst.shape, {&src.strides, &dst.strides}), t_stream);
  }
  void fill(const KView& dst, double value) override {
    launch_fill(dst.dtype, dst.data, value, make_iter(dst.shape, {&dst.strides}), t_stream);
  }
  void unary(UnaryOp op, double scalar, const KView& x, const KView& out) override {
    launch_unary(op, scalar, x.dtype, x.data, out.data,
                 make_iter(out.shape, {&x.strides, &out.strides}), t_stream);
  }
  void binary(BinaryOp op, const KView& a, const KView& b, const KView& out) override {
    launch_binary(op, a.dtype, a.data, b.data, out.data,
                  make_iter(out.shape, {&a.strides, &b.strides, &out.strides}), t_stream);
  }
  void where(const KView& c, const KView& a, const KView& b, const KView& out) override {
    launch_where(out.dtype, c.data, a.data, b.data, out.data,
                 make_iter(out.shape, {&c.strides, &a.strides, &b.strides, &out.strides}),
                 t_stream);
  }

  // Kept axes index the outputs, reduced axes (extent 1 in out, not in x) are summed over.
  void reduce(ReduceOp op, const KView& x, const KView& out) override {
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
    launch_reduce(op, x.dtype, x.data, out.data, r, t_stream);
  }

  void matmul(const KView& a, const KView& b, const KView& out) override {
    const int R = out.shape.rank();
    const int64_t m = out.shape[R - 2], n = out.shape[R - 1], k = a.shape[R - 1];
    if (out.shape.numel() == 0) return;
    if (k == 0) return fill(out, 0.0);
    if (a.dtype != out.dtype || b.dtype != out.dtype || !is_floating(out.dtype))
      fail<DTypeError>("cuda matmul: unsupported dtypes ", dtype_name(a.dtype), ", ",
                       dtype_name(b.dtype));
    if (std::max({m, n, k}) > INT_MAX)
      fail<DeviceError>("cuda matmul: a matrix extent exceeds cuBLAS's int range");
    // Operands without a unit stride (never produced by the matmul op) go through a copy.
    std::unique_ptr<Storage, void (*)(Storage*)> tmp_a(nullptr, release), tmp_b(nullptr, release);
    const KView av = usable(a, m, k) ? a : contiguous_copy(a, tmp_a);
    const KView bv = usable(b, k, n) ? b : contiguous_copy(b, tmp_b);
    const GemmOperand ga = gemm_operand(m, k, av.strides[R - 2], av.strides[R - 1]);
    const GemmOperand gb = gemm_operand(k, n, bv.strides[R - 2], bv.strides[R - 1]);
    if (!(out.strides[R - 1] == 1 && (m == 1 || out.strides[R - 2] == n)))
      fail<DeviceError>("cuda matmul: the output must be row-major contiguous");
    if (std::max(ga.ld, gb.ld) > INT_MAX)
      fail<DeviceError>("cuda matmul: a leading dimension exceeds int range");
    // Batch axes, coalesced: the innermost goes to one strided-batched call, the rest loop here.
    Shape batch = out.shape, sa = av.strides, sb = bv.strides, so = out.strides;
    for (Shape* s : {&batch, &sa, &sb, &so}) s->resize(R - 2);
    const Iter bi = make_iter(batch, {&sa, &sb, &so});
    const int last = bi.rank - 1;
    const int64_t inner = bi.shape[last], outer = bi.numel / inner;
    if (inner > INT_MAX) fail<DeviceError>("cuda matmul: batch count exceeds cuBLAS's int range");
    cublasHandle_t h = cublas_handle();
    visit_floating(out.dtype, [&](auto z) {
      using T = decltype(z);
      for (int64_t o = 0; o < outer; ++o) {
        int64_t off[3] = {0, 0, 0}, rem = o;
        for (int d = last - 1; d >= 0; --d) {
          const int64_t c = rem % bi.shape[d];
          rem /= bi.shape[d];
          for (int q = 0; q < 3; ++q) off[q] += c * bi.stride[q][d];
        }
        gemm_strided_batched<T>(h, ga, gb, static_cast<int>(m), static_cast<int>(n),
                                static_cast<int>(k), static_cast<const T*>(av.data) + off[0],
                                bi.stride[0][last], static_cast<const T*>(bv.data) + off[1],
                                bi.stride[1][last], static_cast<T*>(out.data) + off[2],
                                bi.stride[2][last], static_cast<int>(inner));
      }
    });
  }

  // im2col, one GEMM over the whole batch (columns q = (n, oh, ow)) and col2im, as the CPU
  // backend's conv2d_by_gemm. Row-major operands go to cuBLAS as in matmul (gemm_operand).
  void conv2d(ConvPass pass, const ConvGeom& g, const KView& a, const KView& b,
              const KView& out) override {
    const char* pname = pass == ConvPass::forward      ? "forward"
                        : pass == ConvPass::input_grad ? "input_grad"
                                                       : "weight_grad";
    const DType t = out.dtype;
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
    auto gemm = [&](auto z, const void* A, const GemmOperand& ga, const void* B,
                    const GemmOperand& gb, void* C, int64_t m, int64_t n, int64_t k) {
      using T = decltype(z);
      gemm_strided_batched<T>(h, ga, gb, static_cast<int>(m), static_cast<int>(n),
                              static_cast<int>(k), static_cast<const T*>(A), 0,
                              static_cast<const T*>(B), 0, static_cast<T*>(C), 0, 1);
    };
    visit_floating(t, [&](auto z) {
      switch (pass) {
        case ConvPass::forward:  // y2[O, L] = w[O, K] cols[K, L]
          gemm(z, b.data, gemm_operand(O, K, K, 1), cols.p, gemm_operand(K, L, L, 1), chan, O, L,
               K);
          break;
        case ConvPass::input_grad:  // cols[K, L] = w^T[K, O] gT[O, L]
          gemm(z, b.data, gemm_operand(K, O, 1, K), chan, gemm_operand(O, L, L, 1), cols.p, K, L,
               O);
          break;
        case ConvPass::weight_grad:  // dw[O, K] = gT[O, L] cols^T[L, K]
          gemm(z, chan, gemm_operand(O, L, L, 1), cols.p, gemm_operand(L, K, 1, L), out.data, O, K,
               L);
          break;
      }
    });
    if (pass == ConvPass::forward && g.N != 1)
      launch_swap_outer(t, chan, out.data, O, g.N, P, t_stream);  // [O, N, P] -> [N, O, P]
    if (pass == ConvPass::input_grad) launch_fold(t, g, cols.p, out.data, t_stream);
  }

  void gather(const KView& x, const KView& idx, int axis, const KView& out) override {
    check_index_dtype("gather", idx);
    Shape xs = x.strides;
    xs[axis] = 0;  // walk x along every axis but `axis`
    const IndexArgs args{make_iter(out.shape, {&xs, &idx.strides, &out.strides}), x.strides[axis],
                         x.shape[axis]};
    with_index_check("gather", axis, args.size, [&](IndexError* err) {
      launch_gather(out.dtype, x.data, idx.data, out.data, args, err, t_stream);
    });
  }

  void scatter_add(const KView& idx, const KView& src, int axis, const KView& out) override {
    check_index_dtype("scatter_add", idx);
    Shape os = out.strides;
    os[axis] = 0;
    const IndexArgs args{make_iter(src.shape, {&idx.strides, &src.strides, &os}), out.strides[axis],
                         out.shape[axis]};
    with_index_check("scatter_add", axis, args.size, [&](IndexError* err) {
      launch_scatter_add(out.dtype, idx.data, src.data, out.data, args, err, t_stream);
    });
  }

  void random(RandomKind kind, double p, uint64_t seed, uint64_t offset,
              const KView& out) override {
    if (!(out.shape.numel() <= 1 || out.strides == contiguous_strides(out.shape)))
      fail<DeviceError>("cuda random: the output must be contiguous");
    launch_random(kind, p, seed, offset, out.dtype, out.data, out.shape.numel(), t_stream);
  }

 private:
  static void release(Storage* s) { s->release(s); }
  // Each matrix needs one unit stride and a leading dimension cuBLAS accepts.
  static bool usable(const KView& v, int64_t rows, int64_t cols) {
    const int R = v.shape.rank();
    return gemm_operand(rows, cols, v.strides[R - 2], v.strides[R - 1]).ok;
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

AllocatorStats allocator_stats() { return allocator().stats(); }
void release_cache() { allocator().release_cache(); }
void reset_peak() { allocator().reset_peak(); }

}  // namespace sg::cuda
