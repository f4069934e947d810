// Objective and network benchmarks: one training step (loss + parameter gradient) of every
// registered objective on the same MLP score network at D = 2, 16 and 64 and on the digits
// U-Net (8x8, batch 64), with peak tensor memory per step; forward + backward of the U-Net and
// of a Transformer encoder layer. scripts/bench_core reports each objective as a ratio to DSM.
#include <benchmark/benchmark.h>

#include "autodiff/sg.hpp"
#include "nn/networks.hpp"
#include "objectives/registry.hpp"

namespace {

using namespace sg;

void run_step(benchmark::State& state, nn::ScoreModel& net, const Tensor& x,
              const std::string& objective) {
  VpSde vp;
  const obj::ObjectiveInfo& info = obj::find_objective(objective);
  const obj::TimeScoreFn s = [&](const Tensor& z, const Tensor& t) { return net(z, t); };
  const std::vector<Tensor> params = net.parameters();
  Generator gen(1);
  int64_t peak = 0;
  for (auto _ : state) {
    const int64_t before = debug::live_storage_bytes();
    debug::reset_peak_bytes();
    const Tensor loss = info.fn(s, x, gen, {.sde = &vp, .t_eps = 1e-3});
    const auto g = grad(loss, params, {.allow_unused = true});
    benchmark::DoNotOptimize(g.data());
    peak = std::max(peak, debug::peak_storage_bytes() - before);
  }
  state.counters["peak_MB"] = double(peak) / 1e6;
}

void BM_objective_mlp(benchmark::State& state, std::string objective) {
  const int64_t D = state.range(0);
  Generator g(0);
  nn::MlpScoreNet net(D, {.hidden = 128, .layers = 3, .embed_dim = 16}, g);
  run_step(state, net, randn({512, D}, g), objective);
}
void BM_objective_unet(benchmark::State& state, std::string objective) {
  Generator g(0);
  nn::UNet net(1, {.channels = 32, .multipliers = {1, 2}, .groups = 8}, g);
  run_step(state, net, randn({64, 1, 8, 8}, g), objective);
}

void BM_unet_fwd_bwd(benchmark::State& state) {
  Generator g(0);
  nn::UNet net(
      1, {.channels = 32, .multipliers = {1, 2}, .groups = 8, .attention = state.range(0) != 0}, g);
  const Tensor x = randn({64, 1, 8, 8}, g), t = rand({64}, g);
  const auto params = net.parameters();
  for (auto _ : state) {
    const auto gr = grad(mean(square(net(x, t))), params);
    benchmark::DoNotOptimize(gr.data());
  }
}
void BM_transformer_fwd_bwd(benchmark::State& state) {
  Generator g(0);
  nn::TransformerEncoderLayer layer(64, 8, 64, g);  // CSDI's sizes: 64 channels, 8 heads, ff 64
  const Tensor x = randn({32, 48, 64}, g);          // batch 32, sequence 48
  const auto params = layer.parameters();
  for (auto _ : state) {
    const auto gr = grad(mean(square(layer(x))), params);
    benchmark::DoNotOptimize(gr.data());
  }
}

const int registered = [] {
  for (const std::string& name : obj::objective_names()) {
    if (name == "vdm")  // needs discrete data and its schedule module: bench_vdm.cpp times it
      continue;
    benchmark::RegisterBenchmark(("obj_mlp/" + name).c_str(), BM_objective_mlp, name)
        ->ArgName("D")
        ->Arg(2)
        ->Arg(16)
        ->Arg(64)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    if (name != "ism")  // exact ISM on the U-Net: 64 create_graph backward passes per step, ~18 GB;
                        // left out
      benchmark::RegisterBenchmark(("obj_unet/" + name).c_str(), BM_objective_unet, name)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
  }
  return 0;
}();

BENCHMARK(BM_unet_fwd_bwd)
    ->ArgName("attention")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_transformer_fwd_bwd)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
