// gemm_candidates: benchmark of CPU GEMM libraries for scoregrad's CPU backend.
// Times row-major C = op(A) op(B) (NN, TN = A^T B, NT = A B^T) with Eigen 3.4 (own GEMM), OpenBLAS (cblas),
// BLIS (typed bli_?gemm) and oneDNN (dnnl_sgemm, f32 only: oneDNN has no dgemm), all with the same thread
// count, on square and score-network shapes in f32/f64. Every result is first checked against a
// double-precision reference (FAIL is printed if wrong). Candidates are interleaved cell by cell, the whole
// sweep is repeated, and each cell reports the best (over sweeps) median (over repetitions >= --min-ms).
// Options: --only A,B  --sweeps N  --reps N  --min-ms MS  --threads N  --label TEXT  --peak32/--peak64 GF/s
// Build/run: bench/gemm_candidates.sh
#include <Eigen/Dense>
#include <cblas.h>  // OpenBLAS (include dir .../openblas-pthread)
#include <blis.h>
#include <dnnl.h>
#include <dlfcn.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

enum class Op { NN, TN, NT };
const char* op_name[] = {"NN", "TN", "NT"};
struct Shape { int m, k, n; };  // op(A) is m x k, op(B) is k x n

// A is stored m x k (k x m for TN), B is stored k x n (n x k for NT); everything row-major, contiguous.
int lda(Op op, int m, int k) { return op == Op::TN ? m : k; }
int ldb(Op op, int k, int n) { return op == Op::NT ? k : n; }

template <class T> using GemmFn = std::function<bool(Op, int, int, int, const T*, const T*, T*)>;  // m, n, k

template <class T> bool eigen_gemm(Op op, int m, int n, int k, const T* A, const T* B, T* C) {
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const Mat> a(A, op == Op::TN ? k : m, op == Op::TN ? m : k);
  Eigen::Map<const Mat> b(B, op == Op::NT ? n : k, op == Op::NT ? k : n);
  Eigen::Map<Mat> c(C, m, n);
  if (op == Op::NN) c.noalias() = a * b;
  else if (op == Op::TN) c.noalias() = a.transpose() * b;
  else c.noalias() = a * b.transpose();
  return true;
}

template <class T> bool openblas_gemm(Op op, int m, int n, int k, const T* A, const T* B, T* C) {
  auto ta = op == Op::TN ? CblasTrans : CblasNoTrans, tb = op == Op::NT ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.f, A, lda(op, m, k), B, ldb(op, k, n), 0.f, C, n);
  else
    cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, 1.0, A, lda(op, m, k), B, ldb(op, k, n), 0.0, C, n);
  return true;
}

template <class T> bool blis_gemm(Op op, int m, int n, int k, const T* A, const T* B, T* C) {
  T one = 1, zero = 0;  // BLIS takes arbitrary (row, col) strides: row-major = (ld, 1)
  trans_t ta = op == Op::TN ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, tb = op == Op::NT ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE;
  auto a = const_cast<T*>(A), b = const_cast<T*>(B);
  if constexpr (std::is_same_v<T, float>)
    bli_sgemm(ta, tb, m, n, k, &one, a, lda(op, m, k), 1, b, ldb(op, k, n), 1, &zero, C, n, 1);
  else
    bli_dgemm(ta, tb, m, n, k, &one, a, lda(op, m, k), 1, b, ldb(op, k, n), 1, &zero, C, n, 1);
  return true;
}

bool onednn_gemm(Op op, int m, int n, int k, const float* A, const float* B, float* C) {
  return dnnl_sgemm(op == Op::TN ? 'T' : 'N', op == Op::NT ? 'T' : 'N', m, n, k, 1.f, A, lda(op, m, k), B,
                    ldb(op, k, n), 0.f, C, n) == dnnl_success;
}

struct Candidate { std::string name; GemmFn<float> f32; GemmFn<double> f64; };
template <class T> const GemmFn<T>& fn(const Candidate& c) {
  if constexpr (std::is_same_v<T, float>) return c.f32; else return c.f64;
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Median seconds per call; each of `reps` repetitions runs enough calls to last >= min_s.
double time_call(const std::function<void()>& call, double min_s, int reps) {
  call();  // warm-up (thread pools, packing buffers, JIT)
  long it = 1;
  double t;
  for (;; it *= 2) { t = now(); for (long i = 0; i < it; ++i) call(); t = now() - t; if (t >= 0.01) break; }
  it = std::max<long>(1, std::ceil(it * min_s / t));
  std::vector<double> v;
  for (int r = 0; r < reps; ++r) { t = now(); for (long i = 0; i < it; ++i) call(); v.push_back((now() - t) / it); }
  std::nth_element(v.begin(), v.begin() + reps / 2, v.end());
  return v[reps / 2];
}

// Measured FMA peak (GFLOP/s) with `threads` threads: independent vector FMA chains, best of 3.
template <class T> double fma_peak(int threads) {
#ifdef __AVX512F__
  typedef T V __attribute__((vector_size(64)));
#else
  typedef T V __attribute__((vector_size(32)));
#endif
  constexpr int W = sizeof(V) / sizeof(T), N = 10;
  const long iters = 30'000'000;
  double best = 0;
  static volatile T sink;
  for (int rep = 0; rep < 3; ++rep) {
    double t = now();
#pragma omp parallel num_threads(threads)
    {
      V acc[N], x = V{} + T(0.9999999), y = V{} + T(1e-7);
      for (int j = 0; j < N; ++j) acc[j] = V{} + T(j);
      for (long i = 0; i < iters; ++i)
        for (int j = 0; j < N; ++j) acc[j] = acc[j] * x + y;
      for (int j = 0; j < N; ++j) sink = sink + acc[j][0];
    }
    best = std::max(best, 2.0 * W * N * iters * threads / (now() - t) / 1e9);
  }
  return best;
}

std::string loadavg() {
  char b[128] = "?\n";
  if (FILE* f = std::fopen("/proc/loadavg", "r")) { if (!std::fgets(b, sizeof b, f)) b[0] = 0; std::fclose(f); }
  return b;
}

struct Cell { std::string dtype, shape, op; long double flops; std::vector<std::vector<double>> secs; std::vector<bool> fail; };

// Runs all (shape, op) cells of one dtype for one sweep; on sweep 0 also checks correctness.
template <class T> void sweep(const std::vector<Candidate>& cands, const std::vector<Shape>& shapes,
                              std::vector<Cell>& cells, size_t& ci, bool first, double min_s, int reps) {
  std::mt19937 rng(42);
  std::uniform_real_distribution<double> U(-1, 1);
  const char* dt = std::is_same_v<T, float> ? "f32" : "f64";
  for (const Shape& s : shapes) {
    const int m = s.m, k = s.k, n = s.n;
    std::vector<T> X(size_t(m) * k), Y(size_t(k) * n), C(size_t(m) * n);  // logical op(A), op(B)
    for (auto& x : X) x = T(U(rng));
    for (auto& y : Y) y = T(U(rng));
    std::vector<double> R, Rabs;  // reference C and |op(A)| |op(B)|, both in double
    if (first) {
      R.assign(size_t(m) * n, 0); Rabs.assign(size_t(m) * n, 0);
#pragma omp parallel for num_threads(2)
      for (int i = 0; i < m; ++i)
        for (int l = 0; l < k; ++l) {
          double a = X[size_t(i) * k + l];
          for (int j = 0; j < n; ++j) {
            R[size_t(i) * n + j] += a * double(Y[size_t(l) * n + j]);
            Rabs[size_t(i) * n + j] += std::abs(a * double(Y[size_t(l) * n + j]));
          }
        }
    }
    for (Op op : {Op::NN, Op::TN, Op::NT}) {
      std::vector<T> A = X, B = Y;
      if (op == Op::TN) for (int i = 0; i < m; ++i) for (int l = 0; l < k; ++l) A[size_t(l) * m + i] = X[size_t(i) * k + l];
      if (op == Op::NT) for (int l = 0; l < k; ++l) for (int j = 0; j < n; ++j) B[size_t(j) * k + l] = Y[size_t(l) * n + j];
      if (first)
        cells.push_back({dt, std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n), op_name[int(op)],
                         2.0L * m * n * k, std::vector<std::vector<double>>(cands.size()), std::vector<bool>(cands.size())});
      Cell& cell = cells[ci++];
      for (size_t c = 0; c < cands.size(); ++c) {
        const GemmFn<T>& f = fn<T>(cands[c]);
        if (!f) continue;
        if (first) {  // |C - R| <= k eps (|A||B|) elementwise: the classic gamma_k bound with 2x slack
          std::fill(C.begin(), C.end(), T(std::nan("")));
          bool ok = f(op, m, n, k, A.data(), B.data(), C.data());
          double err = 0;
          for (size_t i = 0; i < C.size(); ++i) {
            double e = std::abs(double(C[i]) - R[i]) / std::max(Rabs[i], 1e-300);
            err = std::isnan(e) ? INFINITY : std::max(err, e);
          }
          double tol = k * std::numeric_limits<T>::epsilon();
          if (!ok || !(err <= tol)) cell.fail[c] = true;
          if (cell.fail[c])
            std::printf("FAIL %s %s %s %s: max rel err %.3g > tol %.3g\n", cands[c].name.c_str(), dt,
                        cell.shape.c_str(), cell.op.c_str(), err, tol);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(150));  // let the previous library's threads go idle
        cell.secs[c].push_back(time_call([&] { f(op, m, n, k, A.data(), B.data(), C.data()); }, min_s, reps));
      }
    }
  }
}

int main(int argc, char** argv) {
  int sweeps = 3, reps = 5, threads = 2;
  double min_ms = 50, peak[2] = {0, 0};
  std::string only, label = "all candidates";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--only") only = argv[i + 1];
    else if (a == "--sweeps") sweeps = std::atoi(argv[i + 1]);
    else if (a == "--reps") reps = std::atoi(argv[i + 1]);
    else if (a == "--min-ms") min_ms = std::atof(argv[i + 1]);
    else if (a == "--threads") threads = std::atoi(argv[i + 1]);
    else if (a == "--label") label = argv[i + 1];
    else if (a == "--peak32") peak[0] = std::atof(argv[i + 1]);
    else if (a == "--peak64") peak[1] = std::atof(argv[i + 1]);
    else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }
  Eigen::setNbThreads(threads);
  openblas_set_num_threads(threads);
  bli_thread_set_num_threads(threads);
  omp_set_num_threads(threads);  // oneDNN (OpenMP runtime) uses omp_get_max_threads()

  std::vector<Candidate> all = {{"Eigen", eigen_gemm<float>, eigen_gemm<double>},
                                {"OpenBLAS", openblas_gemm<float>, openblas_gemm<double>},
                                {"BLIS", blis_gemm<float>, blis_gemm<double>},
                                {"oneDNN", onednn_gemm, nullptr}};
  std::vector<Candidate> cands;
  for (auto& c : all)
    if (only.empty() || ("," + only + ",").find("," + c.name + ",") != std::string::npos) cands.push_back(c);

  const dnnl_version_t* dv = dnnl_version();
  Dl_info di{};
  dladdr(reinterpret_cast<void*>(&cblas_sgemm), &di);
  std::printf("## GEMM candidates: %s\n\n", label.c_str());
  std::printf("- threads=%d sweeps=%d reps=%d min-ms=%.0f; OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s\n", threads, sweeps,
              reps, min_ms, getenv("OPENBLAS_CORETYPE") ?: "(unset)", getenv("OPENBLAS_L2_SIZE") ?: "(unset)");
  std::printf("- Eigen %d.%d.%d (nbThreads=%d); OpenBLAS \"%s\" core=%s threads=%d, cblas_sgemm from %s\n",
              EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION, Eigen::nbThreads(), openblas_get_config(),
              openblas_get_corename(), openblas_get_num_threads(), di.dli_fname ? di.dli_fname : "?");
  std::printf("- BLIS %s arch=%s threads=%ld; oneDNN %d.%d.%d (OpenMP, %d threads, isa id 0x%x)\n",
              bli_info_get_version_str(), bli_arch_string(bli_arch_query_id()), long(bli_thread_get_num_threads()),
              dv->major, dv->minor, dv->patch, omp_get_max_threads(), unsigned(dnnl_get_effective_cpu_isa()));
  double meas[2] = {fma_peak<float>(threads), fma_peak<double>(threads)};
  for (int i = 0; i < 2; ++i) if (peak[i] <= 0) peak[i] = meas[i];
  std::printf("- measured FMA peak (%d threads): f32 %.1f GFLOP/s, f64 %.1f GFLOP/s; %%peak below uses %.1f / %.1f\n",
              threads, meas[0], meas[1], peak[0], peak[1]);

  std::vector<Shape> square = {{256, 256, 256}, {512, 512, 512}, {1024, 1024, 1024}, {2048, 2048, 2048}};
  std::vector<Shape> score = {{512, 2, 128}, {512, 128, 128}, {128, 512, 128}, {64, 1152, 64}, {8, 64, 64}, {1, 1, 1}};
  std::vector<Shape> shapes = square;
  shapes.insert(shapes.end(), score.begin(), score.end());
  std::vector<Cell> cells;
  for (int s = 0; s < sweeps; ++s) {
    std::printf("- sweep %d/%d starts, /proc/loadavg: %s", s + 1, sweeps, loadavg().c_str());
    std::fflush(stdout);
    size_t ci = 0;
    sweep<float>(cands, shapes, cells, ci, s == 0, min_ms / 1e3, reps);
    sweep<double>(cands, shapes, cells, ci, s == 0, min_ms / 1e3, reps);
  }

  std::printf("- done, /proc/loadavg: %s", loadavg().c_str());
  // Table 1: best median GFLOP/s (% of peak); spread = worst/best sweep median - 1, max over the row.
  std::printf("\n| dtype | MxKxN | op |");
  for (auto& c : cands) std::printf(" %s GF/s (%%pk) |", c.name.c_str());
  std::printf(" spread |\n|---|---|---|");
  for (size_t c = 0; c <= cands.size(); ++c) std::printf("---:|");
  std::printf("\n");
  for (auto& cell : cells) {
    if (cell.flops < 1e3L) continue;  // 1x1x1 is only a per-call overhead probe (table 2)
    double spread = 0, pk = peak[cell.dtype == "f64"];
    std::printf("| %s | %s | %s |", cell.dtype.c_str(), cell.shape.c_str(), cell.op.c_str());
    for (size_t c = 0; c < cands.size(); ++c) {
      auto& v = cell.secs[c];
      if (v.empty()) { std::printf(" n/a |"); continue; }
      double best = *std::min_element(v.begin(), v.end()), gf = double(cell.flops / best / 1e9);
      spread = std::max(spread, *std::max_element(v.begin(), v.end()) / best - 1);
      std::printf(cell.fail[c] ? " FAIL %.1f |" : " %.1f (%.0f%%) |", gf, 100 * gf / pk);
    }
    std::printf(" %.0f%% |\n", 100 * spread);
  }
  // Table 2: microseconds per call for the small (score-network) shapes: shows fixed per-call overhead.
  std::printf("\n| dtype | MxKxN | op |");
  for (auto& c : cands) std::printf(" %s us/call |", c.name.c_str());
  std::printf("\n|---|---|---|");
  for (size_t c = 0; c < cands.size(); ++c) std::printf("---:|");
  std::printf("\n");
  for (auto& cell : cells) {
    if (cell.flops > 2e7L) continue;
    std::printf("| %s | %s | %s |", cell.dtype.c_str(), cell.shape.c_str(), cell.op.c_str());
    for (size_t c = 0; c < cands.size(); ++c) {
      auto& v = cell.secs[c];
      if (v.empty()) std::printf(" n/a |");
      else std::printf(cell.fail[c] ? " FAIL %.2f |" : " %.2f |", 1e6 * *std::min_element(v.begin(), v.end()));
    }
    std::printf("\n");
  }
  return 0;
}
