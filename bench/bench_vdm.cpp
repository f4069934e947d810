// VDM against DSM, one training step each on the same network and batch (issue 16 item 8: a VDM
// step costs at most 1.3x a DSM step). A step is the loss and the gradient of every trained
// parameter, as in bench_objectives.cpp and the side-by-side suite (no optimizer update: Adam's
// update is the same per parameter for both, and the schedule adds 2k parameters to the network's
// tens of thousands). Two networks, as the command builds them:
//   unet  the U-Net of configs/digits_vdm.yaml (channels 16, multipliers [1, 2], groups 8, no
//         attention, no dropout) on 8x8 digits, batch 64 (train.batch);
//   mlp   nn::MlpScoreNet on 64-d vectors (hidden 128, 3 layers, embed 16: the command's
//         defaults), batch 512.
// Data: integer levels 0 .. 16 (the digits' 17 levels) for VDM, their encoding 2 (x + 1/2)/17 - 1
// for DSM. The steps, as cli/train.cpp takes them:
//   dsm            dsm_sde over the VP SDE (beta 0.1 .. 20, t_eps 1e-5, variance weighting,
//                  uniform time), score = net(x, t) / std(t) (Experiment::score)
//   vdm_fixed      vdm_value_and_grad, FixedLinearSchedule, continuous time (no schedule grads)
//   vdm_learned    LearnedEndpointsSchedule (1024 features), continuous time, the default
//                  schedule gradient (the interior on the variance: two reverse passes)
//   vdm_learned_vlb  the same schedule, every parameter on the VLB (one reverse pass)
//   vdm_T1000      LearnedEndpointsSchedule, discrete time T = 1000 (the default schedule
//                  gradient, which is the VLB in discrete time)
// and, to split the cost (vdm_split/*; the schedule on the batch's B times):
//   sched_jvp      gamma_and_derivative (forward + JVP), endpoints, no gradient
//   sched_jvp_bwd  the same and one reverse pass to the schedule's parameters
//   recon_fwd, recon_fwd_bwd  the reconstruction term (decoder over the levels), and its reverse
//                  pass to gamma_0
//   mlp64/{exp,log_softmax}_{decoder_logits,normal}  those ops on the decoder's logits and on
//                  N(0, 1) values of the same shape [512, 64, 17]
// and vdm_step/*/vdm_fixed_diffusion_only: the diffusion term alone (vdm_diffusion_value_and_grad,
// fixed schedule), the part of the VLB that corresponds to DSM.
#include <benchmark/benchmark.h>

#include "autodiff/sg.hpp"
#include "nn/networks.hpp"
#include "objectives/vdm.hpp"

namespace {

using namespace sg;

constexpr int64_t kLevels = 17;

enum class Step { dsm, vdm_fixed, vdm_learned, vdm_learned_vlb, vdm_T1000, vdm_fixed_diffusion };

std::unique_ptr<nn::ScoreModel> make_net(bool unet, Generator& g) {
  if (unet)
    return std::make_unique<nn::UNet>(
        1, nn::UNetOptions{.channels = 16, .multipliers = {1, 2}, .groups = 8}, g);
  return std::make_unique<nn::MlpScoreNet>(
      64, nn::MlpScoreOptions{.hidden = 128, .layers = 3, .embed_dim = 16}, g);
}

Tensor make_levels(bool unet, Generator& g) {
  const Shape shape = unet ? Shape{64, 1, 8, 8} : Shape{512, 64};
  return cast(cast(rand(shape, g) * double(kLevels), DType::i64), DType::f32);
}

void BM_step(benchmark::State& state, bool unet, Step step) {
  Generator g(0);
  const auto net = make_net(unet, g);
  const Tensor x = make_levels(unet, g);
  const std::vector<Tensor> params = net->parameters();
  Generator gen(1);
  if (step == Step::dsm) {
    const VpSde vp;
    const Tensor f = obj::vdm_encode(x, kLevels);
    const obj::TimeScoreFn s = [&](const Tensor& z, const Tensor& t) {
      return (*net)(z, t) / batch_view(vp.marginal(t).second, z);
    };
    for (auto _ : state) {
      const Tensor loss = obj::dsm_sde(s, vp, f, gen, {.t_eps = 1e-5});
      const auto gr = grad(loss, params, {.allow_unused = true});
      benchmark::DoNotOptimize(gr.data());
    }
    return;
  }
  std::unique_ptr<obj::NoiseSchedule> schedule;
  if (step == Step::vdm_fixed || step == Step::vdm_fixed_diffusion)
    schedule = std::make_unique<obj::FixedLinearSchedule>();
  else
    schedule = std::make_unique<obj::LearnedEndpointsSchedule>(obj::MonotoneNetOptions{}, g);
  const obj::TimeScoreFn s = [&](const Tensor& z, const Tensor& c) { return (*net)(z, c); };
  const obj::VdmOptions o{.levels = kLevels,
                          .timesteps = step == Step::vdm_T1000 ? 1000 : 0,
                          .schedule_gradient = step == Step::vdm_learned_vlb
                                                   ? obj::ScheduleGradient::vlb
                                                   : obj::ScheduleGradient::automatic};
  const Tensor f = obj::vdm_encode(x, kLevels);
  bool variance = false;
  for (auto _ : state) {
    const obj::VdmStep st = step == Step::vdm_fixed_diffusion
                                ? obj::vdm_diffusion_value_and_grad(*schedule, s, params, f, gen, o)
                                : obj::vdm_value_and_grad(*schedule, s, params, x, gen, o);
    benchmark::DoNotOptimize(st.net_grads.data());
    benchmark::DoNotOptimize(st.schedule_grads.data());
    variance = st.variance_gradient;
  }
  state.counters["variance_grad"] = variance ? 1 : 0;
}

// The learned-endpoints schedule alone on the batch's B times: what vdm_value_and_grad spends
// outside the network on gamma_t, gamma'(t) and the endpoints.
void BM_schedule(benchmark::State& state, bool unet, bool backward) {
  Generator g(0);
  obj::LearnedEndpointsSchedule schedule({}, g);
  const int64_t B = unet ? 64 : 512;
  const std::vector<Tensor> params = schedule.parameters();
  Generator gen(1);
  for (auto _ : state) {
    EnableGradGuard on;
    const Tensor t = rand({B}, gen);
    const auto [gt, dg] = obj::gamma_and_derivative(schedule, t);
    const auto [g0, g1] = schedule.endpoints(t);
    if (backward) {
      const auto gr = grad(sum(gt) + sum(dg) + g0 + g1, params, {.allow_unused = true});
      benchmark::DoNotOptimize(gr.data());
    } else {
      benchmark::DoNotOptimize(dg.numel());
    }
  }
}

// The reconstruction term alone (the decoder's log-softmax over the 17 levels for every
// dimension, [B, D, 17]), forward, or forward and the reverse pass to gamma_0 (what a learned
// schedule's endpoint costs).
void BM_recon(benchmark::State& state, bool unet, bool backward) {
  Generator g(0);
  const Tensor x = make_levels(unet, g);
  Generator gen(1);
  for (auto _ : state) {
    EnableGradGuard on;
    const Tensor g0 = full({}, -13.3, DType::f32).requires_grad_();
    const Tensor l = obj::vdm_reconstruction_loss(x, g0, randn_like(x, gen), kLevels);
    if (backward) {
      const auto gr = grad(mean(l), {g0});
      benchmark::DoNotOptimize(gr.data());
    } else {
      benchmark::DoNotOptimize(l.numel());
    }
  }
}

// What the reconstruction term's time is made of on the MLP's batch ([512, 64, 17]): exp and
// log_softmax over the levels on the decoder's own logits (-1/2 ((z0 - enc(k)) e^{-gamma_0/2})^2
// at gamma_0 = -13.3: all but the nearest level lie ~1e4..1e5 below the maximum) against the
// same ops on N(0, 1) values of the same shape.
void BM_decoder_op(benchmark::State& state, bool decoder_logits, bool softmax) {
  Generator g(0);
  const Tensor x = make_levels(false, g);
  const Tensor g0 = full({}, -13.3, DType::f32);
  const Tensor z0 = obj::vdm_encode(x, kLevels) + exp(g0 * 0.5) * randn_like(x, g);
  const Tensor levels = (arange(kLevels, DType::f32) + 0.5) * (2.0 / double(kLevels)) - 1.0;
  const Tensor d = (unsqueeze(z0, -1) - levels) * exp(g0 * -0.5);
  const Tensor in = decoder_logits ? d * d * -0.5 : randn({512, 64, kLevels}, g);
  NoGradGuard off;
  for (auto _ : state) {
    const Tensor out = softmax ? log_softmax(in, -1) : exp(in);
    benchmark::DoNotOptimize(out.numel());
  }
}

template <class... Args>
void add(const std::string& name, void (*fn)(benchmark::State&, Args...), Args... args) {
  benchmark::RegisterBenchmark(name.c_str(), fn, args...)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

const int registered = [] {
  for (const bool unet : {true, false}) {
    const std::string net = unet ? "unet" : "mlp64";
    for (const auto& [name, step] : std::vector<std::pair<std::string, Step>>{
             {"dsm", Step::dsm},
             {"vdm_fixed", Step::vdm_fixed},
             {"vdm_learned", Step::vdm_learned},
             {"vdm_learned_vlb", Step::vdm_learned_vlb},
             {"vdm_T1000", Step::vdm_T1000},
             {"vdm_fixed_diffusion_only", Step::vdm_fixed_diffusion}})
      add("vdm_step/" + net + "/" + name, BM_step, unet, step);
    add("vdm_split/" + net + "/sched_jvp", BM_schedule, unet, false);
    add("vdm_split/" + net + "/sched_jvp_bwd", BM_schedule, unet, true);
    add("vdm_split/" + net + "/recon_fwd", BM_recon, unet, false);
    add("vdm_split/" + net + "/recon_fwd_bwd", BM_recon, unet, true);
  }
  for (const bool logits : {true, false})
    for (const bool softmax : {true, false})
      add(std::string("vdm_split/mlp64/") + (softmax ? "log_softmax_" : "exp_") +
              (logits ? "decoder_logits" : "normal"),
          BM_decoder_op, logits, softmax);
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
