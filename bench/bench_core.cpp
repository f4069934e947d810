// bench_core: Google Benchmark cases for scoregrad's core engine (CPU, wall-clock time).
//   op_chain/*        per-op overhead: 1000 elementwise ops on 1-element f32 tensors
//                     (ns_per_op = time per iteration / 1000)
//   mlp/*             score MLP [x,t] 3->128->128->128->2 (SiLU), batch 512, f32: forward + grad
//                     w.r.t. all weights and biases, at 1 and 2 OpenMP threads
//   mlp_hvp_x/*       grad vs Hessian-vector product (forward-over-reverse, reverse-over-reverse)
//                     of a scalar loss of that MLP w.r.t. its flattened input x
//   gemm_f32|f64/n:*  sg::matmul n x n x n; GFLOPS and frac_peak (peak from SG_BENCH_PEAK_F32/F64,
//                     default 440 / 220 GFLOP/s)
//   mlp_divergence/*  divergence of the MLP as a field R^2 -> R^2 (batch 512): exact vs Hutchinson
//   reduce/*          float32 sum over axis 0 / axis 1 / all of a [rows, cols] tensor (double
//                     accumulation), beside scale/* (x * 2, the same bytes read) as a bandwidth
//                     yardstick; 1 thread
//   cnf/*             2-D CNF (concat-squash 64-64-64, tanh), batch 512, f32, dopri5 at
//                     rtol = atol = 10^-tol_exp, exact trace: log-likelihood alone, and with the
//                     gradient of -mean log p w.r.t. the parameters by backprop through the solver
//                     (nfe, VJP rule calls per iteration)
// Run through scripts/bench_core (repetitions, JSON, markdown table).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "autodiff/sg.hpp"
#include "nn/networks.hpp"
#include "sde/likelihood.hpp"

namespace {

constexpr int kChainOps = 1000;
constexpr int64_t kBatch = 512;

double env_or(const char* name, double fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atof(v) : fallback;
}
const double kPeakF32 = env_or("SG_BENCH_PEAK_F32", 440.0);  // GFLOP/s, both cores
const double kPeakF64 = env_or("SG_BENCH_PEAK_F64", 220.0);

// Sets the OpenMP thread count for the benchmark's lifetime (the calling thread's ICV, read by
// every parallel region of the CPU backend, GEMM included) and restores it afterwards.
class ThreadsGuard {
 public:
  explicit ThreadsGuard(int n) : prev_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~ThreadsGuard() { omp_set_num_threads(prev_); }

 private:
  int prev_;
};

// ns per op: with kIsIterationInvariantRate | kInvert the value is time / (iterations * v);
// v = ops * 1e-9 gives (time per iteration / ops) in ns.
benchmark::Counter ns_per_op() {
  return benchmark::Counter(kChainOps * 1e-9, benchmark::Counter::kIsIterationInvariantRate |
                                                  benchmark::Counter::kInvert);
}

// ---- 1. per-op overhead -------------------------------------------------------------------
sg::Tensor op_chain(const sg::Tensor& x, const sg::Tensor& c) {
  sg::Tensor y = x;
  for (int i = 0; i < kChainOps; i += 4) {
    y = sg::sin(y);
    y = sg::mul(y, c);
    y = sg::tanh(y);
    y = sg::add(y, c);
  }
  return y;
}

void BM_OpChainFwdBwd(benchmark::State& state) {
  const sg::Tensor x = sg::full({1}, 0.3).requires_grad_();
  const sg::Tensor c = sg::full({1}, 0.9);
  for (auto _ : state) {
    sg::Tensor y = op_chain(x, c);
    auto g = sg::grad(y, {x});
    benchmark::DoNotOptimize(g);
  }
  state.counters["ns_per_op"] = ns_per_op();
}

void BM_OpChainRecordOnly(benchmark::State& state) {  // forward with recording, no backward
  const sg::Tensor x = sg::full({1}, 0.3).requires_grad_();
  const sg::Tensor c = sg::full({1}, 0.9);
  for (auto _ : state) {
    sg::Tensor y = op_chain(x, c);
    benchmark::DoNotOptimize(y);
  }
  state.counters["ns_per_op"] = ns_per_op();
}

void BM_OpChainNoGrad(benchmark::State& state) {
  const sg::Tensor x = sg::full({1}, 0.3).requires_grad_();
  const sg::Tensor c = sg::full({1}, 0.9);
  sg::NoGradGuard ng;
  for (auto _ : state) {
    sg::Tensor y = op_chain(x, c);
    benchmark::DoNotOptimize(y);
  }
  state.counters["ns_per_op"] = ns_per_op();
}

// ---- the score MLP ----------------------------------------------------------------------------
struct Mlp {
  std::vector<sg::Tensor> params;  // W1, b1, ..., W4, b4; W: [in, out]

  Mlp(uint64_t seed, bool trainable) {
    sg::Generator gen(seed);
    const int64_t dims[] = {3, 128, 128, 128, 2};
    sg::NoGradGuard ng;
    for (int l = 0; l < 4; ++l) {
      sg::Tensor w = sg::randn({dims[l], dims[l + 1]}, gen) * (1.0 / std::sqrt(double(dims[l])));
      sg::Tensor b = sg::zeros({dims[l + 1]});
      if (trainable) w.requires_grad_(), b.requires_grad_();
      params.push_back(w);
      params.push_back(b);
    }
  }
  // x: [B, 2], t: [B, 1] -> [B, 2]
  sg::Tensor operator()(const sg::Tensor& x, const sg::Tensor& t) const {
    sg::Tensor h = sg::concat({x, t}, 1);
    for (int l = 0; l < 4; ++l) {
      h = sg::matmul(h, params[2 * l]) + params[2 * l + 1];
      if (l < 3) h = sg::silu(h);
    }
    return h;
  }
};

struct MlpData {
  sg::Tensor x, t, v;
  MlpData() {
    sg::Generator gen(1);
    x = sg::randn({kBatch, 2}, gen);
    t = sg::rand({kBatch, 1}, gen);
    v = sg::randn({kBatch * 2}, gen);
  }
};

// ---- 2. MLP forward + backward w.r.t. all parameters -----------------------------------------
void BM_MlpFwdBwd(benchmark::State& state) {
  ThreadsGuard threads(static_cast<int>(state.range(0)));
  const Mlp net(0, /*trainable=*/true);
  const MlpData d;
  for (auto _ : state) {
    sg::Tensor loss = sg::mean(sg::square(net(d.x, d.t)));
    auto g = sg::grad(loss, net.params);
    benchmark::DoNotOptimize(g);
  }
}

void BM_MlpFwdNoGrad(benchmark::State& state) {
  ThreadsGuard threads(static_cast<int>(state.range(0)));
  const Mlp net(0, /*trainable=*/true);
  const MlpData d;
  sg::NoGradGuard ng;
  for (auto _ : state) {
    sg::Tensor loss = sg::mean(sg::square(net(d.x, d.t)));
    benchmark::DoNotOptimize(loss);
  }
}

// ---- 3. grad vs HVP w.r.t. the flattened input -------------------------------------------------
// Frozen parameters: f(x_flat) = mean(|net(x, t)|^2), x_flat in R^1024.
sg::Fn mlp_loss_of_x(const Mlp& net, const MlpData& d) {
  return [&net, &d](const sg::Tensor& xf) {
    return sg::mean(sg::square(net(sg::reshape(xf, {kBatch, 2}), d.t)));
  };
}

void BM_MlpInputGrad(benchmark::State& state) {
  const Mlp net(0, /*trainable=*/false);
  const MlpData d;
  const sg::Fn f = mlp_loss_of_x(net, d);
  const sg::Tensor xf = sg::reshape(d.x, {kBatch * 2});
  for (auto _ : state) {
    sg::Tensor g = sg::grad(f, xf);
    benchmark::DoNotOptimize(g);
  }
}

template <sg::HvpMode mode>
void BM_MlpInputHvp(benchmark::State& state) {
  const Mlp net(0, /*trainable=*/false);
  const MlpData d;
  const sg::Fn f = mlp_loss_of_x(net, d);
  const sg::Tensor xf = sg::reshape(d.x, {kBatch * 2});
  for (auto _ : state) {
    sg::Tensor h = sg::hvp(f, xf, d.v, mode);
    benchmark::DoNotOptimize(h);
  }
}

// ---- 4. GEMM ---------------------------------------------------------------------------------
template <sg::DType DT>
void BM_Gemm(benchmark::State& state) {
  const int64_t n = state.range(0);
  sg::Generator gen(2);
  const sg::Tensor a = sg::randn({n, n}, gen, DT), b = sg::randn({n, n}, gen, DT);
  sg::NoGradGuard ng;
  for (auto _ : state) {
    sg::Tensor c = sg::matmul(a, b);
    benchmark::DoNotOptimize(c);
  }
  const double gflop = 2.0 * double(n) * double(n) * double(n) * 1e-9;
  const double peak = DT == sg::DType::f32 ? kPeakF32 : kPeakF64;
  state.counters["GFLOPS"] =
      benchmark::Counter(gflop, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["frac_peak"] =
      benchmark::Counter(gflop / peak, benchmark::Counter::kIsIterationInvariantRate);
}

// ---- 5. divergence of the MLP field -------------------------------------------------------------
// Kind: 0 = field only (forward, baseline), 1 = exact (D = 2 backward passes),
//       2 = exact with chunk 2 (one backward on a 2x replicated batch), 3 = Hutchinson 1 probe.
template <int kind>
void BM_MlpDivergence(benchmark::State& state) {
  const Mlp net(0, /*trainable=*/false);
  const MlpData d;
  const sg::Fn field = [&net, &d](const sg::Tensor& x) {
    // t is per sample; the chunked exact method replicates the batch, so replicate t with it.
    const int64_t reps = x.dim(0) / kBatch;
    const sg::Tensor t = reps == 1 ? d.t : sg::concat(std::vector<sg::Tensor>(reps, d.t), 0);
    return net(x, t);
  };
  sg::Generator gen(3);
  for (auto _ : state) {
    sg::Tensor out;
    switch (kind) {
      case 0:
        out = field(d.x);
        break;
      case 1:
        out = sg::divergence(field, d.x, sg::Divergence::exact());
        break;
      case 2:
        out = sg::divergence(field, d.x, sg::Divergence::exact(2));
        break;
      default:
        out = sg::divergence(field, d.x, sg::Divergence::hutchinson(gen, 1));
        break;
    }
    benchmark::DoNotOptimize(out);
  }
}

// ---- 6. CNF log-likelihood and its backprop gradient ------------------------------------------
template <bool with_grad>
void BM_Cnf(benchmark::State& state) {
  sg::Generator gen(9);
  sg::nn::CnfDynamics net(2, {64, 64, 64}, sg::nn::Activation::tanh, gen);
  const std::vector<sg::Tensor> params = net.parameters();
  const sg::Tensor x = sg::randn({kBatch, 2}, gen);
  const sg::VectorField f = [&net](double t, const sg::Tensor& z) {
    return net(sg::scalar(t, z.dtype()), z);
  };
  sg::CnfOptions o;  // dopri5, exact trace, backprop gradient
  o.ode.rtol = o.ode.atol = std::pow(10.0, -static_cast<double>(state.range(0)));
  int64_t nfe = 0;
  double check = 0;  // mean log p, plus the gradient's L1 norm with the gradient
  const std::size_t vjp0 = sg::debug::vjp_rule_calls();
  for (auto _ : state) {
    if (with_grad) {
      const sg::LikelihoodResult r = sg::cnf_log_likelihood(f, x, o);
      const std::vector<sg::Tensor> g = sg::grad(-sg::mean(r.logp), params);
      nfe = r.solve.nfe;
      sg::NoGradGuard off;
      check = sg::mean(r.logp).item();
      for (const sg::Tensor& gi : g) check += sg::sum(sg::abs(gi)).item();
    } else {
      sg::NoGradGuard off;
      const sg::LikelihoodResult r = sg::cnf_log_likelihood(f, x, o);
      nfe = r.solve.nfe;
      check = sg::mean(r.logp).item();
    }
  }
  state.counters["nfe"] = static_cast<double>(nfe);
  state.counters["check"] = check;
  state.counters["vjp_rules"] = static_cast<double>(sg::debug::vjp_rule_calls() - vjp0) /
                                static_cast<double>(state.iterations());
}

// sum(x, axis) for axis = 0, 1 or -1 (all) of a float32 [rows, cols] tensor, one thread.
void BM_Sum(benchmark::State& state) {
  ThreadsGuard threads(1);
  const int64_t rows = state.range(0), cols = state.range(1), axis = state.range(2);
  sg::Generator gen(1);
  const sg::Tensor x = sg::randn({rows, cols}, gen);
  sg::NoGradGuard off;
  for (auto _ : state) {
    const sg::Tensor s = axis < 0 ? sg::sum(x) : sg::sum(x, {axis});
    benchmark::DoNotOptimize(s.raw_data());
  }
  state.SetBytesProcessed(state.iterations() * rows * cols * 4);
}
void BM_Scale(benchmark::State& state) {
  ThreadsGuard threads(1);
  sg::Generator gen(1);
  const sg::Tensor x = sg::randn({state.range(0), state.range(1)}, gen);
  sg::NoGradGuard off;
  for (auto _ : state) {
    const sg::Tensor s = x * 2.0;
    benchmark::DoNotOptimize(s.raw_data());
  }
  state.SetBytesProcessed(state.iterations() * state.range(0) * state.range(1) * 4);
}

}  // namespace

BENCHMARK(BM_Sum)
    ->Name("reduce/sum")
    ->ArgNames({"rows", "cols", "axis"})
    ->Args({512, 128, 0})
    ->Args({512, 128, 1})
    ->Args({4096, 1024, 0})
    ->Args({4096, 1024, 1})
    ->Args({4096, 1024, -1})
    ->Args({5000000, 2, 0})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Scale)
    ->Name("scale/x2")
    ->ArgNames({"rows", "cols"})
    ->Args({512, 128})
    ->Args({4096, 1024})
    ->Args({5000000, 2})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

BENCHMARK(BM_OpChainFwdBwd)->Name("op_chain/fwd_bwd")->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_OpChainRecordOnly)
    ->Name("op_chain/fwd_record_only")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_OpChainNoGrad)
    ->Name("op_chain/fwd_nograd")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

BENCHMARK(BM_MlpFwdBwd)
    ->Name("mlp/fwd_bwd")
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MlpFwdNoGrad)
    ->Name("mlp/fwd_nograd")
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

BENCHMARK(BM_MlpInputGrad)->Name("mlp_hvp_x/grad")->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MlpInputHvp<sg::HvpMode::forward_over_reverse>)
    ->Name("mlp_hvp_x/hvp_fwd_over_rev")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MlpInputHvp<sg::HvpMode::reverse_over_reverse>)
    ->Name("mlp_hvp_x/hvp_rev_over_rev")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

BENCHMARK(BM_Gemm<sg::DType::f32>)
    ->Name("gemm_f32")
    ->ArgName("n")
    ->Arg(256)
    ->Arg(512)
    ->Arg(1024)
    ->Arg(2048)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Gemm<sg::DType::f64>)
    ->Name("gemm_f64")
    ->ArgName("n")
    ->Arg(256)
    ->Arg(512)
    ->Arg(1024)
    ->Arg(2048)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK(BM_MlpDivergence<0>)
    ->Name("mlp_divergence/field_only")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MlpDivergence<1>)
    ->Name("mlp_divergence/exact")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MlpDivergence<2>)
    ->Name("mlp_divergence/exact_chunk2")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MlpDivergence<3>)
    ->Name("mlp_divergence/hutchinson_1")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

BENCHMARK(BM_Cnf<false>)
    ->Name("cnf/logp")
    ->ArgName("tol_exp")
    ->Arg(5)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Cnf<true>)
    ->Name("cnf/grad_backprop")
    ->ArgName("tol_exp")
    ->Arg(5)
    ->Arg(7)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("omp_max_threads", std::to_string(omp_get_max_threads()));
  benchmark::AddCustomContext("peak_gflops_f32", std::to_string(kPeakF32));
  benchmark::AddCustomContext("peak_gflops_f64", std::to_string(kPeakF64));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
