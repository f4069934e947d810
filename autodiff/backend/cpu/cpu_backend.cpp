// The CPU backend: Eigen for GEMM and SIMD packets, OpenMP across cores for large arrays,
// plain loops inline for small ones. Elementwise math comes from the shared functors.
#include <immintrin.h>
#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "autodiff/backend/backend.hpp"
#include "autodiff/backend/cpu/blis_gemm.hpp"
#include "autodiff/backend/cpu/cpu_options.hpp"
#include "autodiff/backend/cpu/onednn.hpp"
#include "autodiff/backend/cpu/packet_math.hpp"
#include "autodiff/backend/gemm_layout.hpp"
#include "autodiff/backend/index_ops.hpp"
#include "autodiff/backend/index_space.hpp"
#include "autodiff/backend/philox.hpp"
#include "autodiff/core/error.hpp"
#include "autodiff/core/pool.hpp"

namespace sg {
namespace {

constexpr int64_t kParallelMin = 1 << 15;      // elements below which ops stay on one thread
constexpr int64_t kGemmParallelMin = 1 << 22;  // m n k below which a GEMM stays on one thread
constexpr std::size_t kAlign = 64;

// ---- N-d strided iteration ---------------------------------------------------------------
// Iterates an index space of `shape` over K operands with per-operand strides, calling
// body(ptrs, inner_strides, n) once per innermost row. Adjacent dims are merged when every
// operand allows it, so contiguous views become one flat row.
static_assert(kSpaceDims == kMaxDims, "index_space.hpp must hold as many dims as a Shape");
template <int K>
struct Loop {
  Shape shape;
  Shape strides[K];
  char* base[K];
  int64_t elem[K];

  void coalesce() {  // the shared rule (index_space.hpp), kept in Shapes for the loops below
    const int64_t* st[K];
    for (int k = 0; k < K; ++k) st[k] = strides[k].begin();
    const IndexSpace it = sg::coalesce(shape.rank(), shape.begin(), K, st);
    shape = Shape(std::span<const int64_t>(it.shape, static_cast<std::size_t>(it.rank)));
    for (int k = 0; k < K; ++k)
      strides[k] = Shape(std::span<const int64_t>(it.stride[k], static_cast<std::size_t>(it.rank)));
  }

  int64_t rows() const { return shape.back() ? shape.numel() / shape.back() : 0; }

  // Runs rows [r0, r1).
  template <class Body>
  void run_rows(int64_t r0, int64_t r1, Body&& body) const {
    const int R = shape.rank();
    const int64_t n = shape.back();
    int64_t idx[kMaxDims] = {};
    int64_t rem = r0;
    for (int d = R - 2; d >= 0; --d) {
      idx[d] = rem % shape[d];
      rem /= shape[d];
    }
    char* p[K];
    int64_t inner[K];
    for (int k = 0; k < K; ++k) {
      int64_t off = 0;
      for (int d = 0; d < R - 1; ++d) off += idx[d] * strides[k][d];
      p[k] = base[k] + off * elem[k];
      inner[k] = strides[k][R - 1];
    }
    for (int64_t r = r0; r < r1; ++r) {
      body(p, inner, n);
      for (int d = R - 2; d >= 0; --d) {  // odometer step
        ++idx[d];
        for (int k = 0; k < K; ++k) p[k] += strides[k][d] * elem[k];
        if (idx[d] < shape[d]) break;
        for (int k = 0; k < K; ++k) p[k] -= strides[k][d] * shape[d] * elem[k];
        idx[d] = 0;
      }
    }
  }

  template <class Body>
  void run(Body&& body, bool parallel_ok = true) const {
    const int64_t nrows = rows();
    if (!parallel_ok || shape.numel() < kParallelMin || nrows < 2) {
      run_rows(0, nrows, body);
      return;
    }
#pragma omp parallel
    {
      const int nt = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t r0 = nrows * t / nt, r1 = nrows * (t + 1) / nt;
      if (r0 < r1) run_rows(r0, r1, body);
    }
  }
};

template <int K>
Loop<K> make_loop(const Shape& shape, std::initializer_list<const KView*> views) {
  Loop<K> L;
  L.shape = shape;
  int k = 0;
  for (const KView* v : views) {
    L.strides[k] = v->strides;
    L.base[k] = static_cast<char*>(v->data);
    L.elem[k] = static_cast<int64_t>(itemsize(v->dtype));
    ++k;
  }
  L.coalesce();
  return L;
}

// Splits [0, n) across threads when n is large.
template <class Body>
void parallel_range(int64_t n, Body&& body) {
  if (n < kParallelMin) {
    body(int64_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t lanes = 64;  // keep chunk starts aligned to a cache line of floats
    const int64_t chunk = ((n / nt + lanes - 1) / lanes) * lanes;
    const int64_t a = std::min<int64_t>(n, chunk * t), b = std::min<int64_t>(n, a + chunk);
    if (a < b) body(a, b);
  }
}

// 1 if v walks its shape contiguously, 0 if every stride is zero (a broadcast scalar), -1 else.
int flat_kind(const KView& v) {
  bool zero = true, contig = true;
  int64_t expect = 1;
  for (int d = v.shape.rank() - 1; d >= 0; --d) {
    if (v.shape[d] == 1) continue;
    zero &= v.strides[d] == 0;
    contig &= v.strides[d] == expect;
    expect *= v.shape[d];
  }
  return zero ? 0 : contig ? 1 : -1;
}
// The output of an elementwise kernel walks contiguously (one element counts as contiguous).
bool flat_out(const KView& v) { return flat_kind(v) == 1 || v.shape.numel() <= 1; }

// ---- elementwise kernels -------------------------------------------------------------------
template <class T, class F>
void unary_row(const F& f, const T* x, int64_t sx, T* y, int64_t n) {
  if (sx == 1) {
    int64_t i = 0;
    if constexpr (cpu::PacketForm<F, T>::ok) {
      constexpr int L = cpu::kLanes<T>;
      for (; i + L <= n; i += L)
        cpu::ei::pstoreu(y + i,
                         cpu::PacketForm<F, T>::run(f, cpu::ei::ploadu<cpu::Packet<T>>(x + i)));
    }
    for (; i < n; ++i) y[i] = f(x[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = f(x[i * sx]);
  }
}

template <class T, class R, class F>
void binary_row(const F& f, const T* a, int64_t sa, const T* b, int64_t sb, R* y, int64_t n) {
  if constexpr (std::is_same_v<T, R> && cpu::PacketForm<F, T>::ok) {
    using P = cpu::Packet<T>;
    constexpr int L = cpu::kLanes<T>;
    int64_t i = 0;
    if (sa == 1 && sb == 1) {
      for (; i + L <= n; i += L)
        cpu::ei::pstoreu(y + i, cpu::PacketForm<F, T>::run(f, cpu::ei::ploadu<P>(a + i),
                                                           cpu::ei::ploadu<P>(b + i)));
      for (; i < n; ++i) y[i] = f(a[i], b[i]);
      return;
    }
    if (sa == 1 && sb == 0) {
      const P pb = cpu::ei::pset1<P>(b[0]);
      for (; i + L <= n; i += L)
        cpu::ei::pstoreu(y + i, cpu::PacketForm<F, T>::run(f, cpu::ei::ploadu<P>(a + i), pb));
      for (; i < n; ++i) y[i] = f(a[i], b[0]);
      return;
    }
    if (sa == 0 && sb == 1) {
      const P pa = cpu::ei::pset1<P>(a[0]);
      for (; i + L <= n; i += L)
        cpu::ei::pstoreu(y + i, cpu::PacketForm<F, T>::run(f, pa, cpu::ei::ploadu<P>(b + i)));
      for (; i < n; ++i) y[i] = f(a[0], b[i]);
      return;
    }
  }
  for (int64_t i = 0; i < n; ++i) y[i] = f(a[i * sa], b[i * sb]);
}

// ---- bfloat16 / float16: widened to float32 a tile at a time, rounded once on store -----------
constexpr int64_t kHalfTile = 256;
// Contiguous runs: float16 through F16C's conversions (IEEE round to nearest even, the same
// results as half.hpp: test_half checks every pattern through these loops); bfloat16 widening is
// a shift, and its narrowing the carry form of round-to-nearest-even (NaN kept apart).
template <class H>
void widen_run(const H* s, float* d, int64_t n) {
  int64_t i = 0;
#if defined(__F16C__)
  if constexpr (std::is_same_v<H, float16>)
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(d + i,
                       _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
#endif
  for (; i < n; ++i) d[i] = to_float(s[i]);
}
inline bfloat16 bf16_rne(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return {static_cast<uint16_t>((u >> 16) | 0x40u)};
  return {static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16)};
}
template <class H>
void narrow_run(const float* s, H* d, int64_t n) {
  int64_t i = 0;
  if constexpr (std::is_same_v<H, bfloat16>) {
    for (; i < n; ++i) d[i] = bf16_rne(s[i]);
  }
#if defined(__F16C__)
  if constexpr (std::is_same_v<H, float16>)
    for (; i + 8 <= n; i += 8)
      _mm_storeu_si128(
          reinterpret_cast<__m128i*>(d + i),
          _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
  for (; i < n; ++i) d[i] = to_half<H>(s[i]);
}
template <class H>
void load_tile(const H* s, int64_t ss, float* d, int64_t n) {
  if (ss == 1) return widen_run(s, d, n);
  for (int64_t i = 0; i < n; ++i) d[i] = to_float(s[i * ss]);
}
template <class H>
void store_tile(const float* s, H* d, int64_t n) {
  narrow_run(s, d, n);
}
template <class H, class F>
void unary_row_half(const F& f, const H* x, int64_t sx, H* y, int64_t n) {
  float a[kHalfTile], r[kHalfTile];
  for (int64_t i = 0; i < n; i += kHalfTile) {
    const int64_t m = std::min(kHalfTile, n - i);
    load_tile(x + i * sx, sx, a, m);
    unary_row<float>(f, a, 1, r, m);
    store_tile(r, y + i, m);
  }
}
// R is H (arithmetic) or bool (comparisons, written directly).
template <class H, class R, class F>
void binary_row_half(const F& f, const H* a, int64_t sa, const H* b, int64_t sb, R* y, int64_t n) {
  float x[kHalfTile], z[kHalfTile], r[kHalfTile];
  for (int64_t i = 0; i < n; i += kHalfTile) {
    const int64_t m = std::min(kHalfTile, n - i);
    load_tile(a + i * sa, sa, x, m);
    load_tile(b + i * sb, sb, z, m);
    if constexpr (std::is_same_v<R, bool>) {
      binary_row<float, bool>(f, x, 1, z, 1, y + i, m);
    } else {
      binary_row<float, float>(f, x, 1, z, 1, r, m);
      store_tile(r, y + i, m);
    }
  }
}
// Element i of a random draw in a 2-byte dtype: the float32 draw rounded once, except uniforms,
// which keep only as many bits as H holds (k / 2^(M+1)), so that they stay in [0, 1).
template <class H>
H half_sample(RandomKind kind, uint64_t seed, uint64_t ctr, double p) {
  float v = philox::sample<float>(kind, seed, ctr, p);
  if (kind == RandomKind::uniform) {
    constexpr float grid = float(1 << (half_detail::Format<H>::M + 1));
    v = std::floor(v * grid) / grid;
  }
  return to_half<H>(v);
}

template <class S, class D>
void copy_row(const S* s, int64_t ss, D* d, int64_t sd, int64_t n) {
  if constexpr (is_half_v<S> && std::is_same_v<D, float>) {
    if (ss == 1 && sd == 1) return widen_run(s, d, n);
  } else if constexpr (std::is_same_v<S, float> && is_half_v<D>) {
    if (ss == 1 && sd == 1) return narrow_run(s, d, n);
  }
  for (int64_t i = 0; i < n; ++i) d[i * sd] = fn::convert<D>(s[i * ss]);
}

template <class T>
T reduce_init(ReduceOp op) {
  if (op == ReduceOp::sum) return T(0);
  if constexpr (std::numeric_limits<T>::has_infinity) {
    return op == ReduceOp::max ? -std::numeric_limits<T>::infinity()
                               : std::numeric_limits<T>::infinity();
  } else {
    return op == ReduceOp::max ? std::numeric_limits<T>::lowest() : std::numeric_limits<T>::max();
  }
}

// Sum of a contiguous run in blocks: each block of kSumBlock summed in T by Eigen's packets,
// the block sums accumulated in double (error ~ (kSumBlock / lanes + n / kSumBlock) eps).
constexpr int64_t kSumBlock = 1024;
template <class T>
double blocked_sum(const T* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i += kSumBlock) {
    const int64_t m = std::min(kSumBlock, n - i);
    s += static_cast<double>(Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(x + i, m).sum());
  }
  return s;
}

// Floating-point sums, on every axis: every term is added in double (a float32 sum of 10^7
// terms keeps ~1e-10 relative error instead of failing past 2^24), contiguous runs in blocks.
// The rows of the strided loop are cut into chunks fixed by the data, never by the thread
// count, so any number of threads gives the same bits. When no outer axis is reduced, rows
// write disjoint outputs and chunks share one buffer; otherwise each chunk sums into its own
// buffer (at most kSumBuffer doubles in all) and the buffers are added in chunk order.
constexpr int64_t kSumChunkElems = 1 << 16, kSumBuffer = 1 << 20;
template <class T, class O = T>
void sum_floating(const Loop<2>& L, O* out, int64_t out_n) {
  const int64_t nrows = L.rows(), n = L.shape.back();
  const bool row_to_one = L.strides[1].back() == 0 && L.strides[0].back() == 1;
  // x a contiguous [rows, n] block summed over its rows (axis 0 of a matrix, a bias gradient)
  const bool column_sums = L.shape.rank() == 2 && L.strides[0][1] == 1 && L.strides[0][0] == n &&
                           L.strides[1][0] == 0 && L.strides[1][1] == 1;
  bool disjoint = true;  // no outer axis reduced: each row owns its outputs
  for (int d = 0; d + 1 < L.shape.rank(); ++d) disjoint &= L.strides[1][d] != 0;
  int64_t rows_per_chunk = std::max<int64_t>(1, kSumChunkElems / std::max<int64_t>(1, n));
  if (!disjoint)
    rows_per_chunk = std::max(rows_per_chunk, (nrows * out_n + kSumBuffer - 1) / kSumBuffer);
  const int64_t nchunks = (nrows + rows_per_chunk - 1) / rows_per_chunk;
  const int64_t buffers = disjoint ? 1 : nchunks;
  std::vector<double> acc(static_cast<std::size_t>(buffers * out_n), 0.0);
  auto chunk = [&](int64_t c) {
    Loop<2> Lc = L;  // its output pointer moves to the chunk's double buffer, same strides
    double* a = acc.data() + (disjoint ? 0 : c * out_n);
    Lc.base[1] = reinterpret_cast<char*>(a);
    Lc.elem[1] = sizeof(double);
    const int64_t r0 = c * rows_per_chunk, r1 = std::min(nrows, r0 + rows_per_chunk);
    if (column_sums) {  // a contiguous [rows, n] block into n outputs: one tight loop
      const T* xs = reinterpret_cast<const T*>(L.base[0]) + r0 * n;
      for (int64_t r = r0; r < r1; ++r, xs += n)
        for (int64_t i = 0; i < n; ++i) a[i] += static_cast<double>(xs[i]);
      return;
    }
    Lc.run_rows(r0, r1, [&](char** p, const int64_t* st, int64_t m) {
      const T* xs = reinterpret_cast<const T*>(p[0]);
      double* o = reinterpret_cast<double*>(p[1]);
      if (row_to_one) {
        *o += blocked_sum(xs, m);
      } else {
        for (int64_t i = 0; i < m; ++i) o[i * st[1]] += static_cast<double>(xs[i * st[0]]);
      }
    });
  };
  if (nchunks > 1 && nrows * n >= kParallelMin) {
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nchunks; ++c) chunk(c);
  } else {
    for (int64_t c = 0; c < nchunks; ++c) chunk(c);
  }
  for (int64_t o = 0; o < out_n; ++o) {
    double s = 0;
    for (int64_t c = 0; c < buffers; ++c) s += acc[static_cast<std::size_t>(c * out_n + o)];
    out[o] = fn::convert<O>(s);
  }
}

// Integer sums wrap like two's complement (as the elementwise integer ops), never overflow UB.
template <class T>
T wrapping_add(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
  } else {
    return a + b;
  }
}

template <class T>
T reduce_contiguous(ReduceOp op, const T* x, int64_t n) {
  if constexpr (std::is_integral_v<T>) {
    if (op == ReduceOp::sum) {
      T s = 0;
      for (int64_t i = 0; i < n; ++i) s = wrapping_add(s, x[i]);
      return s;
    }
  }
  Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> a(x, n);
  if (op == ReduceOp::sum) return a.sum();
  T r = reduce_init<T>(op);
  if (op == ReduceOp::max) {
    for (int64_t i = 0; i < n; ++i) r = fn::Maximum{}(r, x[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) r = fn::Minimum{}(r, x[i]);
  }
  return r;
}

// ---- GEMM -----------------------------------------------------------------------------------
template <class T>
using ColMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
template <class T>
using MapC = Eigen::Map<const ColMat<T>, 0, Eigen::OuterStride<>>;
template <class T>
using MapM = Eigen::Map<ColMat<T>, 0, Eigen::OuterStride<>>;

// Row-major C[m,n] = A[m,k] B[k,n] written as column-major C^T = B^T A^T. A matrix with unit
// column stride is row-major (seen column-major it is its transpose); with unit row stride it
// is column-major. Anything else was made contiguous by the caller.
// BLIS for products with every extent >= kBlisMin (measured faster there); Eigen below, where
// BLIS's packing overhead dominates (e.g. the K = 2 first layer of a 2-D score network).
constexpr int64_t kBlisMin = 32;
// oneDNN's sgemm (JIT-compiled for the host's ISA) for float32 products with every extent >=
// kDnnlMin: 5-30% faster than BLIS on the score networks' 512x128x128 products (NN, NT, TN)
// with AVX-512; BLIS stays faster for very thin products and does float64.
constexpr int64_t kDnnlMin = 16;

// The float32 GEMM library (cpu_options.hpp): SG_CPU_GEMM at first use, then set_gemm_library.
std::atomic<int>& gemm_choice() {
  static std::atomic<int> choice = [] {
    const char* env = std::getenv("SG_CPU_GEMM");
    const std::string v = env ? env : "onednn";
    if (v != "onednn" && v != "blis")
      fail<ValueError>("SG_CPU_GEMM=", v, ": expected onednn or blis");
    return static_cast<int>(v == "blis" ? cpu::GemmLibrary::blis : cpu::GemmLibrary::onednn);
  }();
  return choice;
}

// A library GEMM where one is built in and the product is large enough: oneDNN's sgemm for
// float32 (on omp_get_max_threads(), one inside a parallel region), else BLIS on `threads`.
template <class T>
bool library_gemm(const T* a, int64_t as0, int64_t as1, const T* b, int64_t bs0, int64_t bs1, T* c,
                  int64_t m, int64_t n, int64_t k, int threads) {
  if constexpr (std::is_same_v<T, float>) {
    if (std::min({m, n, k}) >= kDnnlMin &&
        gemm_choice().load(std::memory_order_relaxed) ==
            static_cast<int>(cpu::GemmLibrary::onednn) &&
        cpu::dnnl_sgemm(m, n, k, a, as0, as1, b, bs0, bs1, c))
      return true;
  }
  return std::min({m, n, k}) >= kBlisMin &&
         cpu::blis_gemm(sizeof(T) == 8, m, n, k, a, as0, as1, b, bs0, bs1, c, n, 1, threads);
}

template <class T>
void gemm_one(const T* a, int64_t as0, int64_t as1, const T* b, int64_t bs0, int64_t bs1, T* c,
              int64_t m, int64_t n, int64_t k) {
  if (library_gemm(a, as0, as1, b, bs0, bs1, c, m, n, k, 1)) return;
  MapM<T> Ct(c, n, m, Eigen::OuterStride<>(n));
  const bool a_row = as1 == 1, b_row = bs1 == 1;
  // At = A^T as column-major [k, m]; Bt = B^T as column-major [n, k].
  if (b_row && a_row) {
    Ct.noalias() =
        MapC<T>(b, n, k, Eigen::OuterStride<>(bs0)) * MapC<T>(a, k, m, Eigen::OuterStride<>(as0));
  } else if (b_row) {
    Ct.noalias() = MapC<T>(b, n, k, Eigen::OuterStride<>(bs0)) *
                   MapC<T>(a, m, k, Eigen::OuterStride<>(as1)).transpose();
  } else if (a_row) {
    Ct.noalias() = MapC<T>(b, k, n, Eigen::OuterStride<>(bs1)).transpose() *
                   MapC<T>(a, k, m, Eigen::OuterStride<>(as0));
  } else {
    Ct.noalias() = MapC<T>(b, k, n, Eigen::OuterStride<>(bs1)).transpose() *
                   MapC<T>(a, m, k, Eigen::OuterStride<>(as1)).transpose();
  }
}

class CpuBackend final : public Backend {
 public:
  // Eigen would open an OpenMP region inside every product above ~50k multiply-adds; small
  // products are faster on one thread, so threading is decided here (see matmul).
  CpuBackend() { Eigen::setNbThreads(1); }

  Storage* allocate(std::size_t nbytes) override {
    // Header and data in one block; small blocks come from the per-thread pool.
    const std::size_t header = (sizeof(Storage) + kAlign - 1) / kAlign * kAlign;
    void* mem = pool::allocate(header + nbytes);
    auto* s = new (mem) Storage();
    s->device = Device::cpu();
    s->nbytes = nbytes;
    s->data = static_cast<char*>(mem) + header;
    s->release = [](Storage* st) {
      const std::size_t bytes = (sizeof(Storage) + kAlign - 1) / kAlign * kAlign + st->nbytes;
      st->~Storage();
      pool::deallocate(static_cast<void*>(st), bytes);
    };
    return s;
  }

  void memcpy_host(void* dst, const void* src, std::size_t nbytes, bool) override {
    if (nbytes) std::memcpy(dst, src, nbytes);
  }

  void copy(const KView& src, const KView& dst) override {
    auto L = make_loop<2>(dst.shape, {&src, &dst});
    visit_any(src.dtype, [&](auto s) {
      using S = decltype(s);
      visit_any(dst.dtype, [&](auto d) {
        using D = decltype(d);
        L.run([&](char** p, const int64_t* st, int64_t n) {
          if constexpr (std::is_same_v<S, D>) {
            if (st[0] == 1 && st[1] == 1) {
              std::memcpy(p[1], p[0], static_cast<std::size_t>(n) * sizeof(S));
              return;
            }
          }
          copy_row(reinterpret_cast<const S*>(p[0]), st[0], reinterpret_cast<D*>(p[1]), st[1], n);
        });
      });
    });
  }

  void fill(const KView& dst, double value) override {
    auto L = make_loop<1>(dst.shape, {&dst});
    visit_any(dst.dtype, [&](auto z) {
      using T = decltype(z);
      const T v = fn::convert<T>(value);
      L.run([&](char** p, const int64_t* st, int64_t n) {
        T* d = reinterpret_cast<T*>(p[0]);
        for (int64_t i = 0; i < n; ++i) d[i * st[0]] = v;
      });
    });
  }

  void unary(UnaryOp op, double scalar, const KView& x, const KView& out) override {
    const int fx = flat_kind(x);
    const bool flat = (fx == 1 || x.shape.numel() <= 1) && flat_out(out);
    Loop<2> L;
    if (!flat) L = make_loop<2>(out.shape, {&x, &out});
    visit_unary(op, scalar, [&](auto f) {
      auto run = [&](auto z) {
        using T = decltype(z);
        const T* xp = static_cast<const T*>(x.data);
        T* yp = static_cast<T*>(out.data);
        if (flat) {
          parallel_range(out.shape.numel(),
                         [&](int64_t a, int64_t b) { unary_row<T>(f, xp + a, 1, yp + a, b - a); });
          return;
        }
        L.run([&](char** p, const int64_t* st, int64_t n) {
          unary_row<T>(f, reinterpret_cast<const T*>(p[0]), st[0], reinterpret_cast<T*>(p[1]), n);
        });
      };
      auto run_half = [&](auto z) {
        using H = decltype(z);
        const H* xp = static_cast<const H*>(x.data);
        H* yp = static_cast<H*>(out.data);
        if (flat) {
          parallel_range(out.shape.numel(), [&](int64_t a, int64_t b) {
            unary_row_half<H>(f, xp + a, 1, yp + a, b - a);
          });
          return;
        }
        L.run([&](char** p, const int64_t* st, int64_t n) {
          unary_row_half<H>(f, reinterpret_cast<const H*>(p[0]), st[0], reinterpret_cast<H*>(p[1]),
                            n);
        });
      };
      if (x.dtype == DType::f32) {
        run(float{});
      } else if (x.dtype == DType::f64) {
        run(double{});
      } else if (x.dtype == DType::bf16) {
        run_half(bfloat16{});
      } else if (x.dtype == DType::f16) {
        run_half(float16{});
      } else if constexpr (takes_integers<decltype(f)>) {
        if (x.dtype == DType::i64) run(int64_t{});
      } else {
        fail<DTypeError>("cpu unary: unsupported dtype ", dtype_name(x.dtype));
      }
    });
  }

  void binary(BinaryOp op, const KView& a, const KView& b, const KView& out) override {
    const int fa = flat_kind(a), fb = flat_kind(b);
    const bool flat = fa >= 0 && fb >= 0 && flat_out(out);
    Loop<3> L;
    if (!flat) L = make_loop<3>(out.shape, {&a, &b, &out});
    const int64_t total = out.shape.numel();
    visit_binary(op, [&](auto f) {
      using F = decltype(f);
      constexpr bool cmp = std::is_same_v<std::invoke_result_t<F, double, double>, bool>;
      auto run = [&](auto z) {
        using T = decltype(z);
        const T* ap = static_cast<const T*>(a.data);
        const T* bp = static_cast<const T*>(b.data);
        if constexpr (is_half_v<T>) {
          using R = std::conditional_t<cmp, bool, T>;
          if (flat) {
            R* y = static_cast<R*>(out.data);
            parallel_range(total, [&](int64_t i0, int64_t i1) {
              binary_row_half<T, R>(f, ap + i0 * fa, fa, bp + i0 * fb, fb, y + i0, i1 - i0);
            });
            return;
          }
          L.run([&](char** p, const int64_t* st, int64_t n) {
            binary_row_half<T, R>(f, reinterpret_cast<const T*>(p[0]), st[0],
                                  reinterpret_cast<const T*>(p[1]), st[1],
                                  reinterpret_cast<R*>(p[2]), n);
          });
        } else if constexpr (cmp) {
          if (flat) {
            bool* y = static_cast<bool*>(out.data);
            parallel_range(total, [&](int64_t i0, int64_t i1) {
              binary_row<T, bool>(f, ap + i0 * fa, fa, bp + i0 * fb, fb, y + i0, i1 - i0);
            });
            return;
          }
          L.run([&](char** p, const int64_t* st, int64_t n) {
            binary_row<T, bool>(f, reinterpret_cast<const T*>(p[0]), st[0],
                                reinterpret_cast<const T*>(p[1]), st[1],
                                reinterpret_cast<bool*>(p[2]), n);
          });
        } else if constexpr (std::is_same_v<T, bool> ||
                             (!std::is_floating_point_v<T> && !takes_integers<F>)) {
          fail<DTypeError>("cpu binary: unsupported dtype ", dtype_name(a.dtype));
        } else {
          if (flat) {
            T* y = static_cast<T*>(out.data);
            parallel_range(total, [&](int64_t i0, int64_t i1) {
              binary_row<T, T>(f, ap + i0 * fa, fa, bp + i0 * fb, fb, y + i0, i1 - i0);
            });
            return;
          }
          L.run([&](char** p, const int64_t* st, int64_t n) {
            binary_row<T, T>(f, reinterpret_cast<const T*>(p[0]), st[0],
                             reinterpret_cast<const T*>(p[1]), st[1], reinterpret_cast<T*>(p[2]),
                             n);
          });
        }
      };
      visit_any(a.dtype, run);
    });
  }

  void where(const KView& c, const KView& a, const KView& b, const KView& out) override {
    auto L = make_loop<4>(out.shape, {&c, &a, &b, &out});
    visit_any(out.dtype, [&](auto z) {
      using T = decltype(z);
      L.run([&](char** p, const int64_t* st, int64_t n) {
        const bool* cc = reinterpret_cast<const bool*>(p[0]);
        const T* aa = reinterpret_cast<const T*>(p[1]);
        const T* bb = reinterpret_cast<const T*>(p[2]);
        T* y = reinterpret_cast<T*>(p[3]);
        for (int64_t i = 0; i < n; ++i)
          y[i * st[3]] = cc[i * st[0]] ? aa[i * st[1]] : bb[i * st[2]];
      });
    });
  }

  // `out` is contiguous with x's rank and extent 1 on the reduced axes.
  void reduce(ReduceOp op, const KView& x, const KView& out) override {
    KView ob = out;  // output strides broadcast over x.shape: zero on reduced axes
    for (int d = 0; d < x.shape.rank(); ++d)
      if (out.shape[d] == 1 && x.shape[d] != 1) ob.strides[d] = 0;
    if (is_half(x.dtype)) {
      // Widened to float32 (exact); sums accumulate in double and round once into the half.
      ScratchPtr keep_x(nullptr, release_storage), keep_o(nullptr, release_storage);
      const KView xf = widened(x, keep_x);
      if (op == ReduceOp::sum) {
        const auto L = make_loop<2>(x.shape, {&xf, &ob});
        visit_floating(x.dtype, [&](auto z) {
          using H = decltype(z);
          if constexpr (is_half_v<H>)
            sum_floating<float, H>(L, static_cast<H*>(out.data), out.shape.numel());
        });
        return;
      }
      const KView of = scratch_f32(out.shape, keep_o);
      reduce(op, xf, of);
      copy(of, out);
      return;
    }
    auto L = make_loop<2>(x.shape, {&x, &ob});
    visit_any(x.dtype, [&](auto z) {
      using T = decltype(z);
      if constexpr (is_half_v<T>) {
        // handled above
      } else if constexpr (!std::is_same_v<T, bool>) {
        T* o0 = reinterpret_cast<T*>(out.data);
        if constexpr (std::is_floating_point_v<T>) {
          if (op == ReduceOp::sum) {
            sum_floating<T>(L, o0, out.shape.numel());
            return;
          }
        }
        std::fill(o0, o0 + out.shape.numel(), reduce_init<T>(op));
        auto combine = [op](T a, T b) {
          return op == ReduceOp::sum   ? wrapping_add(a, b)
                 : op == ReduceOp::max ? fn::Maximum{}(a, b)
                                       : fn::Minimum{}(a, b);
        };
        if (L.strides[1].back() == 0 && L.strides[0].back() == 1) {
          // Each innermost row reduces into one output: a vectorised reduction per row.
          L.run(
              [&](char** p, const int64_t*, int64_t n) {
                T* o = reinterpret_cast<T*>(p[1]);
                *o = combine(*o, reduce_contiguous<T>(op, reinterpret_cast<const T*>(p[0]), n));
              },
              rows_distinct(L));
          return;
        }
        L.run(
            [&](char** p, const int64_t* st, int64_t n) {
              const T* xs = reinterpret_cast<const T*>(p[0]);
              T* o = reinterpret_cast<T*>(p[1]);
              for (int64_t i = 0; i < n; ++i) o[i * st[1]] = combine(o[i * st[1]], xs[i * st[0]]);
            },
            false);
      }
    });
  }

  // C[m, n] = A[m, k] B[k, n] over raw buffers with the given (row, column) strides.
  template <class T>
  void gemm(const T* A, int64_t rsa, int64_t csa, const T* B, int64_t rsb, int64_t csb, T* C,
            int64_t m, int64_t n, int64_t k) {
    const DType dt = sizeof(T) == 8 ? DType::f64 : DType::f32;
    matmul(KView{const_cast<T*>(A), Shape{m, k}, Shape{rsa, csa}, dt},
           KView{const_cast<T*>(B), Shape{k, n}, Shape{rsb, csb}, dt},
           KView{C, Shape{m, n}, Shape{n, 1}, dt});
  }

  template <class T>
  void conv2d_by_gemm(ConvPass pass, const ConvGeom& g, const KView& a, const KView& b,
                      const KView& out) {
    const int64_t K = g.patch_rows(), L = g.positions(), P = g.Ho * g.Wo;
    const T* A = static_cast<const T*>(a.data);
    const T* B = static_cast<const T*>(b.data);
    T* Y = static_cast<T*>(out.data);
    std::vector<T> cols(static_cast<std::size_t>(K * L)), gt;
    auto im2col = [&](const T* x) {
#pragma omp parallel for schedule(static) if (K * L >= kParallelMin)
      for (int64_t r = 0; r < K; ++r)
        for (int64_t q = 0; q < L; ++q) {
          const int64_t s = g.source(r, q);
          cols[static_cast<std::size_t>(r * L + q)] = s < 0 ? T(0) : x[s];
        }
    };
    // [N, O, P] <-> [O, N P]
    auto to_channel_major = [&](const T* y) {
      gt.resize(static_cast<std::size_t>(g.O * L));
      for (int64_t n = 0; n < g.N; ++n)
        for (int64_t o = 0; o < g.O; ++o)
          std::copy_n(y + (n * g.O + o) * P, P, gt.data() + o * L + n * P);
    };
    switch (pass) {
      case ConvPass::forward: {  // y[O, N P] = w[O, K] cols[K, N P]
        im2col(A);
        gt.resize(static_cast<std::size_t>(g.O * L));
        gemm<T>(B, K, 1, cols.data(), L, 1, gt.data(), g.O, L, K);
        for (int64_t n = 0; n < g.N; ++n)
          for (int64_t o = 0; o < g.O; ++o)
            std::copy_n(gt.data() + o * L + n * P, P, Y + (n * g.O + o) * P);
        break;
      }
      case ConvPass::input_grad: {  // cols[K, N P] = w^T g[O, N P], then col2im
        to_channel_major(A);
        gemm<T>(B, 1, K, gt.data(), L, 1, cols.data(), K, L, g.O);
        const int64_t E = g.N * g.C * g.H * g.W;
#pragma omp parallel for schedule(static) if (E * g.kh * g.kw >= kParallelMin)
        for (int64_t e = 0; e < E; ++e) Y[e] = g.fold_at(cols.data(), e);
        break;
      }
      case ConvPass::weight_grad: {  // dw[O, K] = g[O, N P] cols^T
        im2col(A);
        to_channel_major(B);
        gemm<T>(gt.data(), L, 1, cols.data(), 1, L, Y, g.O, K, L);
        break;
      }
    }
  }

  void matmul(const KView& a_in, const KView& b_in, const KView& out) override {
    if (is_half(out.dtype)) {
      matmul_half(a_in, b_in, out);
      return;
    }
    const int R = out.shape.rank();
    const int64_t m = out.shape[R - 2], n = out.shape[R - 1], k = a_in.shape[R - 1];
    // The shared layout decision (gemm_layout.hpp): each matrix row- or column-major with its
    // unit stride explicit (what gemm_one and the libraries test), other layouts copied.
    ScratchPtr tmp_a(nullptr, release_storage), tmp_b(nullptr, release_storage);
    const KView a = gemm_view(a_in, m, k, tmp_a), b = gemm_view(b_in, k, n, tmp_b);
    Shape batch = out.shape;
    batch.resize(R - 2);
    const int64_t nb = batch.numel();
    const Shape cs = contiguous_strides(batch);
    auto offset = [&](const KView& v, int64_t bi) {
      int64_t off = 0;
      for (int d = R - 3; d >= 0; --d) {
        off += (bi / cs[d]) % batch[d] * v.strides[d];
      }
      return off;
    };
    visit_real(out.dtype, [&](auto z) {
      using T = decltype(z);
      const T* ap = static_cast<const T*>(a.data);
      const T* bp = static_cast<const T*>(b.data);
      T* cp = static_cast<T*>(out.data);
      auto one = [&](int64_t bi) {
        if (k == 0) {
          std::fill(cp + bi * m * n, cp + (bi + 1) * m * n, T(0));
          return;
        }
        gemm_one<T>(ap + offset(a, bi), a.strides[R - 2], a.strides[R - 1], bp + offset(b, bi),
                    b.strides[R - 2], b.strides[R - 1], cp + bi * m * n, m, n, k);
      };
      const bool big = nb * m * n * k >= kGemmParallelMin;
      if (big && nb > 1) {
#pragma omp parallel for schedule(static)
        for (int64_t bi = 0; bi < nb; ++bi) one(bi);
      } else if (big && library_gemm(ap, a.strides[R - 2], a.strides[R - 1], bp, b.strides[R - 2],
                                     b.strides[R - 1], cp, m, n, k, omp_get_max_threads())) {
        // One large product: the library threads it.
      } else if (big && m > 1 && k > 0) {
        // One large product: the rows of C split across threads, Eigen single-threaded inside.
#pragma omp parallel
        {
          const int nt = omp_get_num_threads(), ti = omp_get_thread_num();
          const int64_t r0 = m * ti / nt, r1 = m * (ti + 1) / nt;
          if (r0 < r1)
            gemm_one<T>(ap + r0 * a.strides[R - 2], a.strides[R - 2], a.strides[R - 1], bp,
                        b.strides[R - 2], b.strides[R - 1], cp + r0 * n, r1 - r0, n, k);
        }
      } else {
        for (int64_t bi = 0; bi < nb; ++bi) one(bi);
      }
    });
  }

  void gather(const KView& x, const KView& idx, int axis, const KView& out) override {
    const int64_t size = x.shape[axis];
    KView xs = x;
    xs.strides[axis] = 0;  // walk x along every axis but `axis`
    auto L = make_loop<3>(out.shape, {&xs, &idx, &out});
    const int64_t ax_stride = x.strides[axis];
    visit_any(out.dtype, [&](auto z) {
      using T = decltype(z);
      L.run(
          [&](char** p, const int64_t* st, int64_t n) {
            const T* xb = reinterpret_cast<const T*>(p[0]);
            const int64_t* ib = reinterpret_cast<const int64_t*>(p[1]);
            T* o = reinterpret_cast<T*>(p[2]);
            for (int64_t i = 0; i < n; ++i) {
              const int64_t j = ib[i * st[1]];
              if (!index_in_range(j, size)) raise_index_error(IndexOp::gather, j, axis, size);
              o[i * st[2]] = xb[i * st[0] + j * ax_stride];
            }
          },
          false);
    });
  }

  void scatter_add(const KView& idx, const KView& src, int axis, const KView& out) override {
    if (is_half(out.dtype)) {  // added in float32, each output rounded once
      ScratchPtr ks(nullptr, release_storage), ko(nullptr, release_storage);
      const KView of = widened(out, ko);
      scatter_add(idx, widened(src, ks), axis, of);
      copy(of, out);
      return;
    }
    const int64_t size = out.shape[axis];
    KView os = out;
    os.shape = src.shape;
    os.strides[axis] = 0;
    auto L = make_loop<3>(src.shape, {&idx, &src, &os});
    const int64_t ax_stride = out.strides[axis];
    visit_any(out.dtype, [&](auto z) {
      using T = decltype(z);
      if constexpr (!std::is_same_v<T, bool> && !is_half_v<T>) {
        L.run(
            [&](char** p, const int64_t* st, int64_t n) {
              const int64_t* ib = reinterpret_cast<const int64_t*>(p[0]);
              const T* s = reinterpret_cast<const T*>(p[1]);
              T* o = reinterpret_cast<T*>(p[2]);
              for (int64_t i = 0; i < n; ++i) {
                const int64_t j = ib[i * st[0]];
                if (!index_in_range(j, size))
                  raise_index_error(IndexOp::scatter_add, j, axis, size);
                o[i * st[2] + j * ax_stride] += s[i * st[1]];
              }
            },
            false);
      }
    });
  }

  // float32 through oneDNN when it is built in; otherwise (and for float64) im2col, one GEMM
  // over the whole batch, and col2im (conv_geometry.hpp).
  void conv2d(ConvPass pass, const ConvGeom& g, const KView& a, const KView& b,
              const KView& out) override {
    if (is_half(out.dtype)) {
      // bfloat16 through oneDNN (float32 accumulation); otherwise widened to float32, convolved
      // there, and rounded once.
      if (cpu::dnnl_conv2d_half(pass, g, out.dtype, a.data, b.data, out.data)) return;
      ScratchPtr ka(nullptr, release_storage), kb(nullptr, release_storage),
          ko(nullptr, release_storage);
      const KView of = scratch_f32(out.shape, ko);
      conv2d(pass, g, widened(a, ka), widened(b, kb), of);
      copy(of, out);
      return;
    }
    if (out.dtype == DType::f32 &&
        cpu::dnnl_conv2d(pass, g, static_cast<const float*>(a.data),
                         static_cast<const float*>(b.data), static_cast<float*>(out.data)))
      return;
    visit_real(out.dtype, [&](auto z) { conv2d_by_gemm<decltype(z)>(pass, g, a, b, out); });
  }

  void random(RandomKind kind, double p, uint64_t seed, uint64_t offset,
              const KView& out) override {
    const int64_t n = out.shape.numel();
    if (is_half(out.dtype)) {
      visit_floating(out.dtype, [&](auto z) {
        using H = decltype(z);
        if constexpr (is_half_v<H>) {
          H* y = static_cast<H*>(out.data);
          parallel_range(n, [&](int64_t a, int64_t b) {
            for (int64_t i = a; i < b; ++i) y[i] = half_sample<H>(kind, seed, offset + i, p);
          });
        }
      });
      return;
    }
    visit_real(out.dtype, [&](auto z) {
      using T = decltype(z);
      T* y = static_cast<T*>(out.data);
      parallel_range(n, [&](int64_t a, int64_t b) {
        for (int64_t i = a; i < b; ++i) y[i] = philox::sample<T>(kind, seed, offset + i, p);
      });
    });
  }

 private:
  using ScratchPtr = std::unique_ptr<Storage, void (*)(Storage*)>;
  static void release_storage(Storage* s) { s->release(s); }
  // A matrix operand [.., rows, cols] with strides a BLAS takes (gemm::operand_layout), or a
  // row-major contiguous copy of it in `keep`.
  KView gemm_view(const KView& v, int64_t rows, int64_t cols, ScratchPtr& keep) {
    const int R = v.shape.rank();
    if (rows == 0 || cols == 0) return v;  // nothing is read
    gemm::Operand op = gemm::operand_layout(rows, cols, v.strides[R - 2], v.strides[R - 1]);
    KView g = v;
    if (!op.ok) {
      keep.reset(allocate(static_cast<std::size_t>(v.shape.numel()) * itemsize(v.dtype)));
      g = KView{keep->data, v.shape, contiguous_strides(v.shape), v.dtype};
      copy(v, g);
      op = gemm::operand_layout(rows, cols, g.strides[R - 2], g.strides[R - 1]);
    }
    g.strides[R - 2] = op.s0();
    g.strides[R - 1] = op.s1();
    return g;
  }
  template <class F>
  static void visit_any(DType t, F&& f) {
    visit_dtype(t, std::forward<F>(f));
  }
  // float or double (2-byte dtypes are widened before they get here).
  template <class F>
  static void visit_real(DType t, F&& f) {
    if (t == DType::f64) {
      f(double{});
    } else {
      f(float{});
    }
  }
  // A contiguous float32 buffer of `shape` (uninitialised), kept alive by `keep`.
  KView scratch_f32(const Shape& shape, ScratchPtr& keep) {
    keep.reset(allocate(static_cast<std::size_t>(shape.numel()) * sizeof(float)));
    return KView{keep->data, shape, contiguous_strides(shape), DType::f32};
  }
  // v widened (exactly) to a contiguous float32 copy.
  KView widened(const KView& v, ScratchPtr& keep) {
    const KView f = scratch_f32(v.shape, keep);
    copy(v, f);
    return f;
  }
  // Half GEMMs: bfloat16 through oneDNN's matmul (float32 accumulation) one product at a time;
  // otherwise (float16, no oneDNN) the operands widened to float32, the float32 GEMM, and one
  // rounding on store.
  void matmul_half(const KView& a_in, const KView& b_in, const KView& out) {
    const int R = out.shape.rank();
    const int64_t m = out.shape[R - 2], n = out.shape[R - 1], k = a_in.shape[R - 1];
    if (out.dtype == DType::bf16 && m > 0 && n > 0 && k > 0) {
      ScratchPtr tmp_a(nullptr, release_storage), tmp_b(nullptr, release_storage);
      const KView a = gemm_view(a_in, m, k, tmp_a), b = gemm_view(b_in, k, n, tmp_b);
      Shape batch = out.shape;
      batch.resize(R - 2);
      const Shape cs = contiguous_strides(batch);
      const int64_t nb = batch.numel();
      auto* ap = static_cast<const bfloat16*>(a.data);
      auto* bp = static_cast<const bfloat16*>(b.data);
      auto* cp = static_cast<bfloat16*>(out.data);
      bool ok = true;
      for (int64_t bi = 0; bi < nb && ok; ++bi) {
        int64_t oa = 0, ob = 0;
        for (int d = R - 3; d >= 0; --d) {
          oa += (bi / cs[d]) % batch[d] * a.strides[d];
          ob += (bi / cs[d]) % batch[d] * b.strides[d];
        }
        ok = cpu::dnnl_gemm_half(DType::bf16, m, n, k, ap + oa, a.strides[R - 2], a.strides[R - 1],
                                 bp + ob, b.strides[R - 2], b.strides[R - 1], cp + bi * m * n);
      }
      if (ok) return;
    }
    ScratchPtr ka(nullptr, release_storage), kb(nullptr, release_storage),
        ko(nullptr, release_storage);
    const KView of = scratch_f32(out.shape, ko);
    matmul(widened(a_in, ka), widened(b_in, kb), of);
    copy(of, out);
  }
  // Rows of a reduction loop write distinct outputs when the output advances on every outer axis.
  static bool rows_distinct(const Loop<2>& L) {
    for (int d = 0; d + 1 < L.shape.rank(); ++d)
      if (L.strides[1][d] == 0) return false;
    return true;
  }
};

}  // namespace

void cpu::set_gemm_library(cpu::GemmLibrary lib) {
  gemm_choice().store(static_cast<int>(lib), std::memory_order_relaxed);
}
cpu::GemmLibrary cpu::gemm_library() {
  return static_cast<cpu::GemmLibrary>(gemm_choice().load(std::memory_order_relaxed));
}

Backend& cpu_backend() {
  static CpuBackend b;
  return b;
}

}  // namespace sg
