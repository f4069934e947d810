// sg_bench_compare: every workload of docs/benchmarks.md in scoregrad and (when built with
// SG_BENCH_TORCH) in LibTorch, in one process, on identical weights and inputs. Before anything
// is timed, each workload runs once in both systems and their outputs must agree (max |a - b| /
// max |a| per output, within kTolF32 / kTolF64); a pair that disagrees is reported and its
// LibTorch timing left out (the exit status is then 2). Google Benchmark then times
// "<workload>/scoregrad" and
// "<workload>/libtorch" (wall clock). Extra flags, before Google Benchmark's own:
//   --export=DIR    write DIR/<workload>.safetensors (problem + scoregrad's outputs) for the
//                   Python comparisons in bench/compare/*.py
//   --threads=N     OpenMP / LibTorch intra-op threads (default: OMP_NUM_THREADS, else 2)
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include "compare/workload.hpp"

#ifdef SG_BENCH_TORCH
constexpr bool kTorch = true;
#else
constexpr bool kTorch = false;
namespace sgb::libtorch {  // stand-ins when LibTorch is not built in
std::string version() { return "not built"; }
void set_threads(int) {}
std::unique_ptr<Workload> make(const std::string&, const HostMap&) { return nullptr; }
}  // namespace sgb::libtorch
#endif

namespace {

constexpr double kTolF32 = 1e-3;  // relative to the output's largest magnitude
constexpr double kTolF64 = 1e-9;

// Largest relative difference over every checked output ("nfe*" are counters, not results).
double disagreement(const sgb::HostMap& a, const sgb::HostMap& b, std::string& where) {
  double worst = 0;
  for (const auto& [key, ha] : a) {
    if (key.starts_with("nfe")) continue;
    const auto it = b.find(key);
    if (it == b.end() || it->second.data.size() != ha.data.size()) {
      where = key + " (missing or wrong size)";
      return INFINITY;
    }
    double scale = 1e-30, diff = 0;
    for (std::size_t i = 0; i < ha.data.size(); ++i) {
      scale = std::max(scale, std::abs(ha.data[i]));
      diff = std::max(diff, std::abs(ha.data[i] - it->second.data[i]));
    }
    if (!(diff / scale <= worst)) {  // also catches NaN
      worst = diff / scale;
      where = key;
    }
  }
  return worst;
}

double seconds_of(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void register_timed(const std::string& name, const std::string& system,
                    std::shared_ptr<sgb::Workload> w, const sgb::HostMap& outputs) {
  benchmark::RegisterBenchmark((name + "/" + system).c_str(),
                               [w, outputs](benchmark::State& state) {
                                 for (auto _ : state) w->run();
                                 for (const auto& [key, h] : outputs)
                                   if (key.starts_with("nfe")) state.counters[key] = h.data[0];
                               })
      ->UseRealTime()
      ->MeasureProcessCPUTime()  // all threads' CPU time: the load-independent figure
      ->Unit(benchmark::kMicrosecond);
}

}  // namespace

int main(int argc, char** argv) {
  std::string export_dir;
  const char* omp = std::getenv("OMP_NUM_THREADS");
  int threads = omp && *omp ? std::atoi(omp) : 2;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.starts_with("--export="))
      export_dir = a.substr(9);
    else if (a.starts_with("--threads="))
      threads = std::atoi(a.c_str() + 10);
    else
      argv[kept++] = argv[i];
  }
  argc = kept;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  omp_set_num_threads(threads);
  sgb::libtorch::set_threads(threads);
  benchmark::AddCustomContext("threads", std::to_string(threads));
  benchmark::AddCustomContext("libtorch_version", sgb::libtorch::version());
  char tol[64];
  std::snprintf(tol, sizeof tol, "%g (f32), %g (f64)", kTolF32, kTolF64);
  benchmark::AddCustomContext("agreement_tolerance", tol);

  // Time to the first gradient: the first DSM step of a freshly built MLP workload.
  {
    const sgb::HostMap p = sgb::make_problem("mlp_dsm");
    auto sg = sgb::make_scoregrad("mlp_dsm", p);
    benchmark::AddCustomContext("first_step_ms.scoregrad",
                                std::to_string(1e3 * seconds_of([&] { sg->run(); })));
    if (auto lt = sgb::libtorch::make("mlp_dsm", p))
      benchmark::AddCustomContext("first_step_ms.libtorch",
                                  std::to_string(1e3 * seconds_of([&] { lt->run(); })));
  }

  int disagreements = 0;
  for (const std::string& name : sgb::workload_names()) {
    const sgb::HostMap problem = sgb::make_problem(name);
    std::shared_ptr<sgb::Workload> sg = sgb::make_scoregrad(name, problem);
    const sgb::HostMap ref = sg->outputs();
    if (!export_dir.empty() && !(name.starts_with("gemm_") && !name.ends_with("/256")))
      sgb::export_problem(export_dir, name, problem, ref);
    register_timed(name, "scoregrad", sg, ref);
    std::shared_ptr<sgb::Workload> lt = sgb::libtorch::make(name, problem);
    if (!lt) continue;
    const sgb::HostMap out = lt->outputs();
    std::string where;
    const double err = disagreement(ref, out, where);
    const bool f64 = !ref.empty() && ref.begin()->second.f64;
    const bool ok = err <= (f64 ? kTolF64 : kTolF32);
    char line[256];
    std::snprintf(line, sizeof line, "%s %.3g (worst: %s)", ok ? "agree" : "DISAGREE", err,
                  where.c_str());
    std::fprintf(stderr, "%-24s libtorch vs scoregrad: %s\n", name.c_str(), line);
    benchmark::AddCustomContext("agreement." + name, line);
    if (ok)
      register_timed(name, "libtorch", lt, out);
    else
      ++disagreements;
  }
  benchmark::AddCustomContext("torch_built", kTorch ? "yes" : "no");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return disagreements ? 2 : 0;
}
