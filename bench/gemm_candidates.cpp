// gemm_candidates: benchmark of CPU GEMM libraries for scoregrad's CPU backend.
// Times row-major C = op(A) op(B) (NN, TN = A^T B, NT = A B^T) with Eigen 3.4 (own GEMM), OpenBLAS
// (cblas), BLIS (typed bli_?gemm) and oneDNN (dnnl_sgemm, f32 only: oneDNN has no dgemm), all with
// the same thread count, on square and score-network shapes in f32/f64. Every result is first
// checked against a double-precision reference (FAIL is printed if wrong). Candidates are
// interleaved cell by cell, the whole sweep is repeated (then cells whose two best medians disagree
// by > 5% are re-swept), and each cell reports the best (over sweeps) median (over repetitions of
// >= --min-ms each). A timing during which other processes used > 10% of the CPUs (per /proc/stat)
// is re-taken after waiting for a quiet machine (bounded wait). A last table times each library's
// GEMM interleaved with an OpenMP elementwise pass (thread-runtime interference).
//
// Options: --only A,B  --sweeps N  --reps N  --min-ms MS  --threads N  --label TEXT
//          --shapes all|square|score|none (none: only the interleaving table)
//          --extra N (re-sweeps of unsettled cells)
//          --wait-budget S (total wait for a quiet machine, <= 60 s each time)
//          --peak32/--peak64 GF/s (default: measured)
// Build/run: bench/gemm_candidates.sh

// OpenBLAS's cblas.h must come before blis.h: blis.h declares its own CBLAS under the same include
// guard (CBLAS_H), which would hide openblas_set_num_threads() and the other OpenBLAS extensions.
#include <cblas.h>  // OpenBLAS (include dir .../openblas-pthread)

#include <blis.h>
#include <dlfcn.h>
#include <dnnl.h>
#include <omp.h>
#include <unistd.h>
#include <Eigen/Dense>

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
struct Shape {
  int m, k, n;
};  // op(A) is m x k, op(B) is k x n

// A is stored m x k (k x m for TN), B is stored k x n (n x k for NT); everything row-major,
// contiguous.
int lda(Op op, int m, int k) { return op == Op::TN ? m : k; }
int ldb(Op op, int k, int n) { return op == Op::NT ? k : n; }

template <class T>
using GemmFn = std::function<bool(Op, int, int, int, const T*, const T*, T*)>;  // m, n, k

template <class T>
bool eigen_gemm(Op op, int m, int n, int k, const T* A, const T* B, T* C) {
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const Mat> a(A, op == Op::TN ? k : m, op == Op::TN ? m : k);
  Eigen::Map<const Mat> b(B, op == Op::NT ? n : k, op == Op::NT ? k : n);
  Eigen::Map<Mat> c(C, m, n);
  if (op == Op::NN)
    c.noalias() = a * b;
  else if (op == Op::TN)
    c.noalias() = a.transpose() * b;
  else
    c.noalias() = a * b.transpose();
  return true;
}

template <class T>
bool openblas_gemm(Op op, int m, int n, int k, const T* A, const T* B, T* C) {
  auto ta = op == Op::TN ? CblasTrans : CblasNoTrans, tb = op == Op::NT ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.f, A, lda(op, m, k), B, ldb(op, k, n), 0.f, C, n);
  else
    cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, 1.0, A, lda(op, m, k), B, ldb(op, k, n), 0.0, C, n);
  return true;
}

template <class T>
bool blis_gemm(Op op, int m, int n, int k, const T* A, const T* B, T* C) {
  T one = 1, zero = 0;  // BLIS takes arbitrary (row, col) strides: row-major = (ld, 1)
  trans_t ta = op == Op::TN ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
          tb = op == Op::NT ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE;
  auto a = const_cast<T*>(A), b = const_cast<T*>(B);
  if constexpr (std::is_same_v<T, float>)
    bli_sgemm(ta, tb, m, n, k, &one, a, lda(op, m, k), 1, b, ldb(op, k, n), 1, &zero, C, n, 1);
  else
    bli_dgemm(ta, tb, m, n, k, &one, a, lda(op, m, k), 1, b, ldb(op, k, n), 1, &zero, C, n, 1);
  return true;
}

bool onednn_gemm(Op op, int m, int n, int k, const float* A, const float* B, float* C) {
  return dnnl_sgemm(op == Op::TN ? 'T' : 'N', op == Op::NT ? 'T' : 'N', m, n, k, 1.f, A,
                    lda(op, m, k), B, ldb(op, k, n), 0.f, C, n) == dnnl_success;
}

struct Candidate {
  std::string name;
  GemmFn<float> f32;
  GemmFn<double> f64;
};
template <class T>
const GemmFn<T>& fn(const Candidate& c) {
  if constexpr (std::is_same_v<T, float>)
    return c.f32;
  else
    return c.f64;
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Share of the machine used by other processes since construction: busy ticks of all CPUs
// (/proc/stat) minus the ticks of this process, all threads (/proc/self/stat).
struct OthersClock {
  static long long ticks() {
    long long v[8] = {}, ut = 0, st = 0;
    if (FILE* f = std::fopen("/proc/stat", "r")) {
      if (std::fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", v, v + 1, v + 2, v + 3,
                      v + 4, v + 5, v + 6, v + 7) != 8)
        v[0] = 0;
      std::fclose(f);
    }
    char buf[1024] = {};
    if (FILE* f = std::fopen("/proc/self/stat", "r")) {
      size_t r = std::fread(buf, 1, sizeof buf - 1, f);
      buf[r] = 0;
      std::fclose(f);
    }
    // Fields after "(comm)": state is #3, utime #14, stime #15.
    if (const char* p = std::strrchr(buf, ')'))
      std::sscanf(p + 2, "%*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %lld %lld", &ut, &st);
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7] - ut - st;  // user nice system irq softirq steal
  }
  long long t0 = ticks();
  double w0 = now();
  double share() const {
    return (ticks() - t0) /
           ((now() - w0) * sysconf(_SC_CLK_TCK) * std::thread::hardware_concurrency());
  }
};
// A timing is "contaminated" if other processes used > 10% of the machine meanwhile.
constexpr double kQuiet = 0.10;

// Sleeps >= 150 ms (lets the previous library's worker threads go idle), then until other processes
// use < kQuiet of the machine over a 250 ms window, at most max_s. Returns the seconds spent.
double settle(double max_s) {
  double start = now();
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  while (now() - start < max_s) {
    OthersClock oc;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    if (oc.share() < kQuiet) break;
  }
  return now() - start;
}

// Median seconds per call; each of `reps` repetitions runs enough calls to last >= min_s.
double time_call(const std::function<void()>& call, double min_s, int reps, double* others) {
  OthersClock oc;
  call();  // warm-up (thread pools, packing buffers, JIT)
  long it = 1;
  double t;
  for (;; it *= 2) {
    t = now();
    for (long i = 0; i < it; ++i) call();
    t = now() - t;
    if (t >= 0.01) break;
  }
  it = std::max<long>(1, std::ceil(it * min_s / t));
  std::vector<double> v;
  for (int r = 0; r < reps; ++r) {
    t = now();
    for (long i = 0; i < it; ++i) call();
    v.push_back((now() - t) / it);
  }
  std::nth_element(v.begin(), v.begin() + reps / 2, v.end());
  *others = oc.share();
  return v[reps / 2];
}

// Measured single-core FMA peak (GFLOP/s): independent vector FMA chains, best of 5.
// Single-threaded so that one competing process on the 2-core machine does not halve it; multiply
// by the thread count.
template <class T>
double fma_peak_1core() {
#ifdef __AVX512F__
  typedef T V __attribute__((vector_size(64)));
#else
  typedef T V __attribute__((vector_size(32)));
#endif
  constexpr int W = sizeof(V) / sizeof(T), N = 10;
  const long iters = 20'000'000;
  static volatile T sink;
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    V acc[N], x = V{} + T(0.9999999), y = V{} + T(1e-7);
    for (int j = 0; j < N; ++j) acc[j] = V{} + T(j);
    double t = now();
    for (long i = 0; i < iters; ++i)
      for (int j = 0; j < N; ++j) acc[j] = acc[j] * x + y;
    t = now() - t;
    for (int j = 0; j < N; ++j) sink = sink + acc[j][0];
    best = std::max(best, 2.0 * W * N * iters / t / 1e9);
  }
  return best;
}

const char* env_or_unset(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "(unset)";
}

std::string loadavg() {
  char b[128] = "?\n";
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (!std::fgets(b, sizeof b, f)) b[0] = 0;
    std::fclose(f);
  }
  return b;
}

struct {
  long timings = 0, contaminated = 0;
  double waited = 0, wait_budget = 1800;
} g_stats;

struct Cell {
  std::string dtype, shape, op;
  long double flops;
  std::vector<std::vector<double>> secs;
  std::vector<bool> fail;
};

// Relative gap between the two best sweep medians: small means the best value was reproduced.
double gap(std::vector<double> v) {
  if (v.size() < 2) return INFINITY;
  std::sort(v.begin(), v.end());
  return v[1] / v[0] - 1;
}
// Extra sweeps re-time the (candidate, cell) pairs whose gap is above this.
constexpr double kAgree = 0.05;

// Runs all (shape, op) cells of one dtype for one sweep; on sweep 0 also checks correctness.
// With `redo`, only re-times the (candidate, cell) pairs whose gap is still above kAgree.
template <class T>
void sweep(const std::vector<Candidate>& cands, const std::vector<Shape>& shapes,
           std::vector<Cell>& cells, size_t& ci, bool first, bool redo, double min_s, int reps) {
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
      R.assign(size_t(m) * n, 0);
      Rabs.assign(size_t(m) * n, 0);
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
      if (op == Op::TN)
        for (int i = 0; i < m; ++i)
          for (int l = 0; l < k; ++l) A[size_t(l) * m + i] = X[size_t(i) * k + l];
      if (op == Op::NT)
        for (int l = 0; l < k; ++l)
          for (int j = 0; j < n; ++j) B[size_t(j) * k + l] = Y[size_t(l) * n + j];
      if (first)
        cells.push_back({dt, std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n),
                         op_name[int(op)], 2.0L * m * n * k,
                         std::vector<std::vector<double>>(cands.size()),
                         std::vector<bool>(cands.size())});
      Cell& cell = cells[ci++];
      for (size_t c = 0; c < cands.size(); ++c) {
        const GemmFn<T>& f = fn<T>(cands[c]);
        if (!f || (redo && gap(cell.secs[c]) <= kAgree)) continue;
        // Check: |C - R| <= k eps (|A||B|) elementwise, the classic gamma_k bound with 2x slack.
        if (first) {
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
            std::printf("FAIL %s %s %s %s: max rel err %.3g > tol %.3g\n", cands[c].name.c_str(),
                        dt, cell.shape.c_str(), cell.op.c_str(), err, tol);
        }
        // Time it; re-time (after waiting for a quiet machine) if another process interfered.
        for (int attempt = 0; attempt < 3; ++attempt) {
          g_stats.waited += settle(std::clamp(g_stats.wait_budget - g_stats.waited, 0.0, 60.0));
          double others;
          cell.secs[c].push_back(time_call([&] { f(op, m, n, k, A.data(), B.data(), C.data()); },
                                           min_s, reps, &others));
          ++g_stats.timings;
          if (others < kQuiet) break;
          ++g_stats.contaminated;
        }
      }
    }
  }
}

// Table 3: a training-like loop alternating each library's f32 GEMM (512x128x128 NN) with an OpenMP
// elementwise pass (SiLU of the product), as scoregrad interleaves its own OpenMP kernels with
// GEMMs. Shows thread-runtime interference, e.g. a pthread-based BLAS pool against OpenMP threads.
void mixed_table(const std::vector<Candidate>& cands, double min_s, int reps, int sweeps) {
  const int m = 512, k = 128, n = 128;
  std::vector<float> A(m * k, 0.5f), B(k * n, 0.25f), C(m * n), D(m * n);
  auto silu = [&] {
#pragma omp parallel for
    for (int i = 0; i < m * n; ++i) D[i] = C[i] / (1 + std::exp(-C[i]));
  };
  auto best_of = [&](const std::function<void()>& call) {
    double best = INFINITY, others;
    for (int s = 0; s < sweeps; ++s) {
      g_stats.waited += settle(std::clamp(g_stats.wait_budget - g_stats.waited, 0.0, 60.0));
      best = std::min(best, time_call(call, min_s, reps, &others));
    }
    return 1e6 * best;
  };
  double t_silu = best_of(silu);
  std::printf(
      "\n| f32 512x128x128 NN, then OpenMP SiLU | GEMM alone us | GEMM + SiLU us/iter |"
      " vs GEMM alone + SiLU alone (%.1f us) |\n|---|---:|---:|---:|\n",
      t_silu);
  for (auto& c : cands) {
    auto gemm = [&] { c.f32(Op::NN, m, n, k, A.data(), B.data(), C.data()); };
    double t_gemm = best_of(gemm), t_both = best_of([&] { gemm(), silu(); });
    std::printf("| %s | %.1f | %.1f | %.2fx |\n", c.name.c_str(), t_gemm, t_both,
                t_both / (t_gemm + t_silu));
  }
}

int main(int argc, char** argv) {
  int sweeps = 3, extra = 3, reps = 5, threads = 2;
  double min_ms = 50, peak[2] = {0, 0};
  std::string only, label, which = "all";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--only")
      only = argv[i + 1];
    else if (a == "--sweeps")
      sweeps = std::atoi(argv[i + 1]);
    else if (a == "--extra")
      extra = std::atoi(argv[i + 1]);
    else if (a == "--wait-budget")
      g_stats.wait_budget = std::atof(argv[i + 1]);
    else if (a == "--reps")
      reps = std::atoi(argv[i + 1]);
    else if (a == "--min-ms")
      min_ms = std::atof(argv[i + 1]);
    else if (a == "--threads")
      threads = std::atoi(argv[i + 1]);
    else if (a == "--label")
      label = argv[i + 1];
    else if (a == "--shapes")
      which = argv[i + 1];  // all | square | score | none
    else if (a == "--peak32")
      peak[0] = std::atof(argv[i + 1]);
    else if (a == "--peak64")
      peak[1] = std::atof(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
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
    if (only.empty() || ("," + only + ",").find("," + c.name + ",") != std::string::npos)
      cands.push_back(c);

  const dnnl_version_t* dv = dnnl_version();
  Dl_info di{};
  dladdr(reinterpret_cast<void*>(&cblas_sgemm), &di);
  std::printf("## GEMM candidates: %s\n\n",
              label.empty() ? (only.empty() ? "all" : only.c_str()) : label.c_str());
  std::printf(
      "- threads=%d sweeps=%d reps=%d min-ms=%.0f; OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s\n",
      threads, sweeps, reps, min_ms, env_or_unset("OPENBLAS_CORETYPE"),
      env_or_unset("OPENBLAS_L2_SIZE"));
  std::printf(
      "- Eigen %d.%d.%d (nbThreads=%d); OpenBLAS \"%s\" core=%s threads=%d, cblas_sgemm from %s\n",
      EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION, Eigen::nbThreads(),
      openblas_get_config(), openblas_get_corename(), openblas_get_num_threads(),
      di.dli_fname ? di.dli_fname : "?");
  std::printf("- BLIS %s arch=%s threads=%ld; oneDNN %d.%d.%d (OpenMP, %d threads, isa id 0x%x)\n",
              bli_info_get_version_str(), bli_arch_string(bli_arch_query_id()),
              long(bli_thread_get_num_threads()), dv->major, dv->minor, dv->patch,
              omp_get_max_threads(), unsigned(dnnl_get_effective_cpu_isa()));

  std::vector<Shape> square = {
      {256, 256, 256}, {512, 512, 512}, {1024, 1024, 1024}, {2048, 2048, 2048}};
  std::vector<Shape> score = {{512, 2, 128},  {512, 128, 128}, {128, 512, 128},
                              {64, 1152, 64}, {8, 64, 64},     {1, 1, 1}};
  std::vector<Shape> shapes;
  if (which == "all" || which == "square") shapes = square;
  if (which == "all" || which == "score") shapes.insert(shapes.end(), score.begin(), score.end());
  std::vector<Cell> cells;
  // FMA peak: max over probes before each sweep (a busy machine lowers a probe).
  double meas[2] = {0, 0};
  for (int s = 0; s < sweeps + extra; ++s) {
    int todo = 0;
    for (auto& cell : cells)
      for (auto& v : cell.secs) todo += !v.empty() && gap(v) > kAgree;
    if (s >= sweeps && todo == 0) break;
    g_stats.waited += settle(std::clamp(g_stats.wait_budget - g_stats.waited, 0.0, 60.0));
    meas[0] = std::max(meas[0], threads * fma_peak_1core<float>());
    meas[1] = std::max(meas[1], threads * fma_peak_1core<double>());
    if (s < sweeps)
      std::printf("- sweep %d/%d starts, /proc/loadavg: %s", s + 1, sweeps, loadavg().c_str());
    else
      std::printf("- extra sweep %d/%d for %d unsettled pairs, /proc/loadavg: %s", s - sweeps + 1,
                  extra, todo, loadavg().c_str());
    std::fflush(stdout);
    size_t ci = 0;
    sweep<float>(cands, shapes, cells, ci, s == 0, s >= sweeps, min_ms / 1e3, reps);
    sweep<double>(cands, shapes, cells, ci, s == 0, s >= sweeps, min_ms / 1e3, reps);
  }
  std::printf("- done, /proc/loadavg: %s", loadavg().c_str());
  for (int i = 0; i < 2; ++i)
    if (peak[i] <= 0) peak[i] = meas[i];
  std::printf(
      "- measured FMA peak (1 core x %d): f32 %.1f GFLOP/s, f64 %.1f GFLOP/s; "
      "%%pk below uses %.1f / %.1f\n",
      threads, meas[0], meas[1], peak[0], peak[1]);
  if (cells.empty()) {  // --shapes none
    mixed_table(cands, min_ms / 1e3, reps, sweeps);
    return 0;
  }
  // Noise: how often the worst sweep was far off the best (a competing process).
  int n = 0, off = 0, unsettled = 0;
  double worst = 1;
  for (auto& cell : cells)
    for (auto& v : cell.secs)
      if (!v.empty()) {
        double r = *std::max_element(v.begin(), v.end()) / *std::min_element(v.begin(), v.end());
        ++n, off += r > 1.25, worst = std::max(worst, r), unsettled += gap(v) > kAgree;
      }
  std::printf(
      "- interference: %ld of %ld timings saw other processes use > %.0f%% of the CPUs "
      "(each re-timed, up to 3 tries); %.0f s spent in pauses before timings "
      "(wait budget for a quiet machine: %.0f s)\n",
      g_stats.contaminated, g_stats.timings, 100 * kQuiet, g_stats.waited, g_stats.wait_budget);
  std::printf(
      "- noise: worst sweep > 1.25x slower than best in %d of %d timed (candidate, cell) "
      "pairs (max %.1fx); best two medians still > %.0f%% apart after extra sweeps: %d "
      "(marked *)\n",
      off, n, worst, 100 * kAgree, unsettled);
  // Table 1: best median GFLOP/s (% of peak); 2nd/best = gap between the two best sweep medians,
  // max over the row.
  std::printf("\n| dtype | MxKxN | op |");
  for (auto& c : cands) std::printf(" %s GF/s (%%pk) |", c.name.c_str());
  std::printf(" 2nd/best |\n|---|---|---|");
  for (size_t c = 0; c <= cands.size(); ++c) std::printf("---:|");
  std::printf("\n");
  for (auto& cell : cells) {
    if (cell.flops < 1e3L) continue;  // 1x1x1 is only a per-call overhead probe (table 2)
    double g = 0, pk = peak[cell.dtype == "f64"];
    std::printf("| %s | %s | %s |", cell.dtype.c_str(), cell.shape.c_str(), cell.op.c_str());
    for (size_t c = 0; c < cands.size(); ++c) {
      auto& v = cell.secs[c];
      if (v.empty()) {
        std::printf(" n/a |");
        continue;
      }
      double best = *std::min_element(v.begin(), v.end()), gf = double(cell.flops / best / 1e9);
      g = std::max(g, gap(v));
      std::printf(cell.fail[c] ? " FAIL %.1f |" : " %.1f (%.0f%%)%s |", gf, 100 * gf / pk,
                  gap(v) > kAgree ? "*" : "");
    }
    if (std::isinf(g))
      std::printf(" - |\n");
    else
      std::printf(" +%.0f%% |\n", 100 * g);
  }
  // Table 2: microseconds per call for the small (score-network) shapes: per-call overhead.
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
      if (v.empty())
        std::printf(" n/a |");
      else
        std::printf(cell.fail[c] ? " FAIL %.2f |" : " %.2f%s |",
                    1e6 * *std::min_element(v.begin(), v.end()), gap(v) > kAgree ? "*" : "");
    }
    std::printf("\n");
  }
  mixed_table(cands, min_ms / 1e3, reps, sweeps);
  return 0;
}
