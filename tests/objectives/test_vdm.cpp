// The VDM loss: encoder constants, the prior and reconstruction terms against closed forms, the
// continuous VLB's invariance to the schedule's interior (Gaussian data, Bayes-optimal denoiser:
// L = (D/2) ln[(1 + SNR_max s^2) / (1 + SNR_min s^2)]), the discrete-time loss above it and
// decreasing in T, antithetic time sampling, the variance-minimising schedule gradient against
// the gradient of a quadrature of E[L^2], the ancestral sampler, option errors, the stand-in
// device (bitwise the CPU's loss and gradients), and a small network trained with a learned
// schedule. Statistical checks use fixed seeds and standard errors (autodiff/verify/stats.hpp).
#include <algorithm>
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <numeric>
#include <sstream>

#include "autodiff/sg.hpp"
#include "autodiff/verify/stats.hpp"
#include "nn/layers.hpp"
#include "nn/optim.hpp"
#include "objectives/identities.hpp"
#include "objectives/vdm.hpp"
#include "tests/support/expect.hpp"

using namespace sg;
using namespace sg::obj;

namespace {
constexpr DType f64 = DType::f64;

// The Gaussian reference case: f ~ N(0, kS^2 I_kD) with the optimal denoiser (docs/vdm.md).
constexpr double kS = 0.8;
constexpr int64_t kD = 2;
Tensor gaussian_data(int64_t n, Generator& gen) { return randn({n, kD}, gen, f64) * kS; }
// One draw: the batch mean of the diffusion loss on n examples (gamma conditioning).
Estimator gaussian_loss_mean(const NoiseSchedule& sched, VdmOptions o, int64_t n) {
  o.conditioning = VdmConditioning::gamma;
  return [&sched, o, n](Generator& g) {
    NoGradGuard off;
    return mean(vdm_diffusion_loss(sched, vdm_gaussian_denoiser(kS), gaussian_data(n, g), g, o));
  };
}
// Same shape as the learned-endpoint schedule at its default range, with a visibly curved
// interior (kernels N(0, 1), a wide l1).
std::unique_ptr<LearnedEndpointsSchedule> curved_schedule(Generator& gen, int64_t features = 8) {
  auto s = std::make_unique<LearnedEndpointsSchedule>(
      MonotoneNetOptions{.features = features, .init_std = 1.0, .dtype = f64}, gen);
  NoGradGuard off;  // sigmoids centred across [-1, 1], steep, with weights of both sizes
  s->shape.l1.weight = full({1, 1}, 0.2, f64).requires_grad_();
  s->shape.l2.weight = (s->shape.l2.weight * 6.0).detach().requires_grad_();
  *s->shape.l2.bias = (randn({features}, gen, f64) * 3.0).requires_grad_();
  s->shape.l3.weight = (abs(s->shape.l3.weight) * 3.0 * double(features)).detach().requires_grad_();
  return s;
}
std::vector<Tensor> interior_grads(NoiseSchedule& s, const std::vector<Tensor>& grads) {
  std::vector<Tensor> out;
  const auto named = s.named_parameters();
  for (size_t k = 0; k < named.size(); ++k)
    if (s.is_interior(named[k].first)) out.push_back(reshape(grads[k], {-1}));
  return out;
}

// A small conditioned MLP: net(z_in, c) = Mlp([z_in, c]) -> D outputs.
struct TinyNet : nn::Module {
  TinyNet(int64_t in, int64_t out, Generator& gen, DType dt)
      : mlp(child("mlp", std::make_unique<nn::Mlp>(std::vector<int64_t>{in + 1, 64, 64, out},
                                                   nn::Activation::silu, gen,
                                                   nn::LayerOptions{.dtype = dt}, true))) {}
  Tensor operator()(const Tensor& z, const Tensor& c) const {
    return mlp(concat({z, unsqueeze(c, -1)}, 1));
  }
  nn::Mlp& mlp;
};
}  // namespace

TEST_CASE("vdm: encoder constants, prior and reconstruction against closed forms", "[vdm]") {
  // f = 2 (x + 1/2) / K - 1
  const std::vector<double> f256 =
      vdm_encode(from_vector({0, 127, 255}, {3}, f64), 256).to_vector();
  CHECK(f256[0] == -0.99609375);
  CHECK(f256[1] == -0.00390625);
  CHECK(f256[2] == 0.99609375);
  const std::vector<double> f17 = vdm_encode(from_vector({0, 8, 16}, {3}, f64), 17).to_vector();
  CHECK(f17[0] == Approx(-16.0 / 17).epsilon(1e-15));
  CHECK(f17[1] == 0.0);
  CHECK(f17[2] == Approx(16.0 / 17).epsilon(1e-15));

  Generator gen(11);
  const int64_t B = 3, D = 5, K = 17;
  const Tensor x = cast(cast(rand({B, D}, gen, f64) * double(K), DType::i64), f64);
  const Tensor f = vdm_encode(x, K);
  // prior: KL(N(alpha_1 f, sigma_1^2) || N(0, 1)) = -log sigma_1 + (sigma_1^2 + alpha_1^2 f^2)/2 -
  // 1/2
  const double g1 = 5.0, var1 = 1 / (1 + std::exp(-g1)), a2 = 1 - var1;
  const std::vector<double> prior = vdm_prior_loss(f, full({}, g1, f64)).to_vector();
  const std::vector<double> fv = f.to_vector();
  for (int64_t b = 0; b < B; ++b) {
    double kl = 0;
    for (int64_t d = 0; d < D; ++d)
      kl += -0.5 * std::log(var1) + 0.5 * (var1 + a2 * fv[b * D + d] * fv[b * D + d]) - 0.5;
    CHECK(prior[b] == Approx(kl).epsilon(1e-13));
  }
  // reconstruction: -log softmax_k(-1/2 ((f + sigma eps - e_k) / sigma)^2)[x], sigma = e^{g0/2}
  const double g0 = -4.0, sig = std::exp(0.5 * g0);
  const Tensor eps0 = randn({B, D}, gen, f64);
  const std::vector<double> rec =
      vdm_reconstruction_loss(x, full({}, g0, f64), eps0, K).to_vector();
  const std::vector<double> ev = eps0.to_vector(), xv = x.to_vector();
  for (int64_t b = 0; b < B; ++b) {
    double nll = 0;
    for (int64_t d = 0; d < D; ++d) {
      const double z = fv[b * D + d] + sig * ev[b * D + d];
      std::vector<double> logit(K);
      for (int64_t k = 0; k < K; ++k) {
        const double u = (z - (2.0 * (double(k) + 0.5) / double(K) - 1.0)) / sig;
        logit[k] = -0.5 * u * u;
      }
      const double mx = *std::max_element(logit.begin(), logit.end());
      double se = 0;
      for (double l : logit) se += std::exp(l - mx);
      nll += -(logit[static_cast<size_t>(xv[b * D + d])] - mx - std::log(se));
    }
    CHECK(rec[b] == Approx(nll).epsilon(1e-12));
  }
  // the decoder's logit of the true level is -eps0^2 / 2
  CHECK(vdm_decoder_logprobs(f + eps0 * sig, full({}, g0, f64), K).shape() == Shape({B, D, K}));
  // bits per dimension: nats / (D ln 2), no offset
  CHECK(vdm_bits_per_dim(full({1}, std::log(2.0) * 64, f64), 64).item() == Approx(1.0));
}

TEST_CASE("vdm: antithetic times are a shifted grid; Fourier features", "[vdm]") {
  Generator gen(12);
  std::vector<double> t = vdm_times(8, true, gen, zeros({1}, f64)).to_vector();
  std::sort(t.begin(), t.end());
  for (size_t i = 1; i < t.size(); ++i) CHECK(t[i] - t[i - 1] == Approx(0.125).epsilon(1e-12));
  CHECK(t.front() >= 0.0);
  CHECK(t.back() < 1.0);
  const Tensor z = from_vector({0.1, -0.3}, {1, 2}, f64);
  const Tensor ff = vdm_fourier_features(z, 6, 8);
  REQUIRE(ff.shape() == Shape({1, 10}));  // [z, sin n=6, sin n=7, cos n=6, cos n=7]
  const std::vector<double> v = ff.to_vector();
  CHECK(v[2] == Approx(std::sin(64 * 2 * M_PI * 0.1)).epsilon(1e-12));
  CHECK(v[5] == Approx(std::sin(128 * 2 * M_PI * -0.3)).epsilon(1e-12));
  CHECK(v[8] == Approx(std::cos(128 * 2 * M_PI * 0.1)).epsilon(1e-12));
}

TEST_CASE("vdm: the continuous VLB depends on the schedule only through its endpoints",
          "[vdm][statistical]") {
  // f ~ N(0, s^2 I), D = 2, the optimal denoiser conditioned on gamma.
  const int64_t n = 4000;
  Generator gen(13);
  FixedLinearSchedule fixed;
  auto curved = curved_schedule(gen);
  const Tensor grid = linspace(0.0, 1.0, 101, f64);
  const double apart = max(abs(fixed(grid) - (*curved)(grid))).item();
  INFO("max |gamma_fixed - gamma_curved| = " << apart);
  CHECK(apart > 2.0);  // the interiors differ
  const double ref = vdm_gaussian_continuous_loss(-13.3, 5.0, kS, kD);
  const auto estimate = [&](const NoiseSchedule& sched) {
    return gaussian_loss_mean(sched, {}, n);
  };
  const MeanCheck a = mean_equals(estimate(fixed), ref, {.samples = 100, .seed = 1}, "fixed");
  const MeanCheck b = mean_equals(estimate(*curved), ref, {.samples = 100, .seed = 2}, "curved");
  INFO(a << "\n" << b);
  CHECK(a.pass);
  CHECK(b.pass);
  // the per-example variance does depend on the interior (what the schedule gradient minimises)
  const double qa = vdm_gaussian_second_moment(fixed, kS, kD),
               qb = vdm_gaussian_second_moment(*curved, kS, kD);
  INFO("E[L^2]: fixed " << qa << ", curved " << qb);
  CHECK(std::abs(qa - qb) > 0.05 * qa);
  // a different endpoint changes the value: VP's gamma(1e-3), gamma(1)
  VpSchedule vp(VpSde(), 1e-3);
  const MeanCheck c = mean_equals(
      estimate(vp), vdm_gaussian_continuous_loss(vp.gamma_min(), vp.gamma_max(), kS, kD),
      {.samples = 100, .seed = 3}, "vp");
  INFO(c);
  CHECK(c.pass);
}

TEST_CASE("vdm: the discrete-time loss exceeds the continuous one and decreases in T",
          "[vdm][statistical]") {
  const int64_t n = 4000;
  Generator gen(14);
  FixedLinearSchedule fixed;
  auto curved = curved_schedule(gen);
  for (const NoiseSchedule* sched : {static_cast<const NoiseSchedule*>(&fixed),
                                     static_cast<const NoiseSchedule*>(curved.get())}) {
    const auto [g0, g1] = sched->endpoints(zeros({1}, f64));
    const double cont = vdm_gaussian_continuous_loss(g0.item(), g1.item(), kS, kD);
    double prev = INFINITY;
    for (int64_t T : {1, 2, 5, 10, 50, 100, 1000, 10000}) {
      const double LT = vdm_gaussian_discrete_loss(*sched, T, kS, kD);
      INFO(sched->name() << " T " << T << ": L_T " << LT << ", L_inf " << cont);
      CHECK(LT > cont);
      CHECK(LT < prev);
      prev = LT;
    }
    CHECK(prev - cont < 1e-3 * cont);  // T = 10000 is close
    // the estimator's mean is the closed form at T = 10
    const MeanCheck c = mean_equals(gaussian_loss_mean(*sched, {.timesteps = 10}, n),
                                    vdm_gaussian_discrete_loss(*sched, 10, kS, kD),
                                    {.samples = 100, .seed = 4}, "L_10");
    INFO(c);
    CHECK(c.pass);
  }
}

TEST_CASE("vdm: antithetic time sampling lowers the variance of the batch estimate",
          "[vdm][statistical]") {
  const int64_t n = 256;
  FixedLinearSchedule fixed;
  const PairedCheck p = paired_compare(gaussian_loss_mean(fixed, {.antithetic = true}, n),
                                       gaussian_loss_mean(fixed, {.antithetic = false}, n),
                                       {.samples = 2000, .seed = 5});
  INFO(p);
  CHECK(p.a_less_noisy);
  CHECK(p.difference.pass);  // same expectation
}

TEST_CASE("vdm: the variance gradient is the gradient of E[L_diff^2]; the VLB's is zero",
          "[vdm][statistical]") {
  const int64_t n = 2000;
  Generator gen(15);
  auto sched = curved_schedule(gen, 4);
  // reference: d/d eta of the quadrature of E[L^2], central differences per interior element
  std::vector<double> ref;
  {
    NoGradGuard off;
    for (auto& [name, p] : sched->named_parameters()) {
      if (!sched->is_interior(name)) continue;
      Tensor base = p->detach();
      for (int64_t e = 0; e < base.numel(); ++e) {
        const double h = 1e-5;
        const Tensor bump =
            reshape(one_hot(from_indices({e}, {1}), base.numel(), f64), base.shape());
        *p = (base + bump * h).requires_grad_();
        const double up = vdm_gaussian_second_moment(*sched, kS, kD);
        *p = (base - bump * h).requires_grad_();
        const double down = vdm_gaussian_second_moment(*sched, kS, kD);
        ref.push_back((up - down) / (2 * h));
      }
      *p = base.requires_grad_();
    }
  }
  const auto grads = [&](ScheduleGradient mode) {
    return [&, mode](Generator& g) {
      const VdmOptions o{.conditioning = VdmConditioning::gamma, .schedule_gradient = mode};
      const VdmStep st = vdm_diffusion_value_and_grad(*sched, vdm_gaussian_denoiser(kS), {},
                                                      gaussian_data(n, g), g, o);
      return concat(interior_grads(*sched, st.schedule_grads), 0);
    };
  };
  const MeanCheck var =
      mean_equals(grads(ScheduleGradient::automatic), from_vector(ref, {int64_t(ref.size())}, f64),
                  {.samples = 200, .seed = 6}, "d E[L^2] / d eta");
  INFO(var);
  CHECK(var.pass);
  CHECK(var.elements == 13);
  // the reference is far from zero (the check has power) ...
  double ref_norm = 0;
  for (double r : ref) ref_norm = std::max(ref_norm, std::abs(r));
  CHECK(ref_norm > 20 * var.std_error);
  // ... while the VLB's gradient in the interior is zero in expectation
  const MeanCheck vlb =
      mean_equals(grads(ScheduleGradient::vlb), 0.0, {.samples = 200, .seed = 7}, "d E[L] / d eta");
  INFO(vlb);
  CHECK(vlb.pass);
}

TEST_CASE("vdm: training the interior on the variance gradient lowers E[L^2], not E[L]",
          "[vdm][statistical]") {
  const int64_t n = 1000;
  Generator gen(16);
  auto sched = curved_schedule(gen, 4);
  const double q0 = vdm_gaussian_second_moment(*sched, kS, kD);
  std::vector<std::pair<std::string, Tensor*>> interior;
  for (auto& [name, p] : sched->named_parameters())
    if (sched->is_interior(name)) interior.emplace_back(name, p);
  nn::Adam opt(interior, {.lr = 0.05});
  const VdmOptions o{.conditioning = VdmConditioning::gamma};
  for (int step = 0; step < 60; ++step) {
    const VdmStep st = vdm_diffusion_value_and_grad(*sched, vdm_gaussian_denoiser(kS), {},
                                                    gaussian_data(n, gen), gen, o);
    REQUIRE(st.variance_gradient);
    std::vector<Tensor> g = interior_grads(*sched, st.schedule_grads);
    for (size_t k = 0; k < g.size(); ++k) g[k] = reshape(g[k], interior[k].second->shape());
    opt.step(g);
  }
  const double q1 = vdm_gaussian_second_moment(*sched, kS, kD);
  // lower bound over all schedules with these endpoints (Cauchy-Schwarz, equality when gamma' m
  // is constant): E[L^2] >= (1 + 2/D) E[L]^2
  const double L = vdm_gaussian_continuous_loss(-13.3, 5.0, kS, kD),
               qmin = (1 + 2.0 / double(kD)) * L * L;
  INFO("E[L^2]: " << q0 << " -> " << q1 << ", bound " << qmin);
  CHECK(q1 >= qmin);
  CHECK(q1 - qmin < 0.3 * (q0 - qmin));
  REQUIRE_NOTHROW(check_monotone(*sched));
  const auto [g0, g1] = sched->endpoints(zeros({1}, f64));
  CHECK(g0.item() == -13.3);  // endpoints untouched
  const MeanCheck c = mean_equals(gaussian_loss_mean(*sched, {}, 4000),
                                  vdm_gaussian_continuous_loss(-13.3, 5.0, kS, kD),
                                  {.samples = 100, .seed = 8}, "E[L] after");
  INFO(c);
  CHECK(c.pass);
}

TEST_CASE("vdm: the ancestral sampler recovers a single data point", "[vdm]") {
  // data = one point x*: the optimal predictor is eps_hat = (z - alpha f*) / sigma
  Generator gen(17);
  const int64_t K = 17;
  const Tensor xstar = from_vector({0, 3, 8, 16}, {1, 4}, f64);
  const Tensor fstar = vdm_encode(xstar, K);
  LearnedEndpointsSchedule sched({.features = 8, .dtype = f64}, gen);
  const TimeScoreFn net = [&](const Tensor& z, const Tensor& gamma) {
    const Tensor g = batch_view(gamma, z);
    return (z - sqrt(sigmoid(-g)) * fstar) / sqrt(sigmoid(g));
  };
  const VdmOptions o{
      .levels = K, .base_measure_skip = false, .conditioning = VdmConditioning::gamma};
  const Tensor x = vdm_sample(sched, net, {64, 4}, gen, o, 200, f64);
  CHECK(max(abs(x - xstar)).item() == 0.0);
  CHECK_THROWS_AS(vdm_sample(sched, net, {64, 4}, gen, o, 0, f64), ValueError);
}

TEST_CASE("vdm: option errors", "[vdm]") {
  Generator gen(18);
  LearnedEndpointsSchedule sched({.features = 4, .dtype = f64}, gen);
  const Tensor x = zeros({4, 2}, f64);
  const TimeScoreFn zero = [](const Tensor& z, const Tensor&) { return z * 0.0; };
  const auto msg = [&](VdmOptions o) {
    return test::message_of<ValueError>([&] { vdm_value_and_grad(sched, zero, {}, x, gen, o); });
  };
  CHECK(msg({.levels = 1}).find("levels") != std::string::npos);
  CHECK(msg({.timesteps = -1}).find("timesteps") != std::string::npos);
  CHECK(msg({.fourier_features = true, .fourier_min = 3, .fourier_max = 3}).find("fourier") !=
        std::string::npos);
  CHECK(msg({.timesteps = 10, .schedule_gradient = ScheduleGradient::variance})
            .find("continuous time") != std::string::npos);
  CHECK(
      msg({.conditioning = VdmConditioning::time, .schedule_gradient = ScheduleGradient::variance})
          .find("gamma conditioning") != std::string::npos);
  // automatic: the variance gradient only where it is valid
  CHECK(vdm_value_and_grad(sched, zero, {}, x, gen, {}).variance_gradient);
  CHECK_FALSE(vdm_value_and_grad(sched, zero, {}, x, gen, {.timesteps = 10}).variance_gradient);
  MonotoneNetSchedule net_sched({.features = 4, .dtype = f64}, gen);
  CHECK_FALSE(vdm_value_and_grad(net_sched, zero, {}, x, gen, {}).variance_gradient);
  const TimeScoreFn bad = [](const Tensor& z, const Tensor&) { return sum(z, {1}); };
  CHECK_THROWS_AS(vdm_terms(sched, bad, x, gen, {}), ShapeError);
}

TEST_CASE("vdm: loss and gradients on the stand-in device equal the CPU's bitwise", "[vdm]") {
  const auto run = [](Device dev) {
    Generator init(19);
    LearnedEndpointsSchedule sched(
        {.range = {.gamma_min = -8, .gamma_max = 4}, .features = 8, .dtype = f64}, init);
    const int64_t D = 3;
    TinyNet net(D * 5, D, init, f64);  // Fourier features n = 6, 7: D (1 + 2 * 2) inputs
    {
      NoGradGuard off;  // a non-zero last layer so every path carries gradient
      net.mlp.layers.back()->weight = (randn({64, D}, init, f64) * 0.1).requires_grad_();
    }
    sched.to(dev);
    net.to(dev);
    const Tensor x = cast(cast(rand({6, D}, init, f64) * 17.0, DType::i64), f64).to(dev);
    const TimeScoreFn fn = [&](const Tensor& z, const Tensor& c) { return net(z, c); };
    Generator gen(20);
    const VdmOptions o{.levels = 17, .fourier_features = true};
    VdmStep st = vdm_value_and_grad(sched, fn, net.parameters(), x, gen, o);
    std::vector<Tensor> all{st.loss, st.terms.total()};
    for (const Tensor& g : st.net_grads) all.push_back(g);
    for (const Tensor& g : st.schedule_grads) all.push_back(g);
    const VdmStep discrete =
        vdm_value_and_grad(sched, fn, net.parameters(), x, gen,
                           {.levels = 17, .timesteps = 20, .fourier_features = true});
    all.push_back(discrete.loss);
    for (const Tensor& g : discrete.schedule_grads) all.push_back(g);
    all.push_back(
        vdm_sample(sched, fn, {2, D}, gen, {.levels = 17, .fourier_features = true}, 5, f64, dev));
    REQUIRE(st.variance_gradient);
    return all;
  };
  const std::vector<Tensor> cpu = run(Device::cpu()), dev = run(Device::standin());
  REQUIRE(cpu.size() == dev.size());
  for (size_t i = 0; i < cpu.size(); ++i) {
    INFO("result " << i);
    CHECK(dev[i].device() == Device::standin());
    const std::vector<double> a = cpu[i].to_vector(), b = dev[i].to(Device::cpu()).to_vector();
    REQUIRE(a.size() == b.size());
    for (size_t k = 0; k < a.size(); ++k)
      CHECK(std::bit_cast<uint64_t>(a[k]) == std::bit_cast<uint64_t>(b[k]));
  }
}

TEST_CASE("vdm: a small network and a learned schedule train on a tiny dataset",
          "[vdm][statistical]") {
  // 8 examples of 4 dimensions at 17 levels (digit-like), float32
  Generator gen(21);
  const int64_t N = 8, D = 4, K = 17;
  const Tensor data = cast(cast(rand({N, D}, gen) * double(K), DType::i64), DType::f32);
  LearnedEndpointsSchedule sched({.features = 16}, gen);
  TinyNet net(D, D, gen, DType::f32);
  const TimeScoreFn fn = [&](const Tensor& z, const Tensor& c) { return net(z, c); };
  const VdmOptions o{.levels = K};
  // the -VLB in nats per example, averaged over 20 batches of 256 (each batch one sample)
  const auto evaluate = [&](uint64_t seed) {
    return mean_equals(
        [&](Generator& g) {
          NoGradGuard off;
          const Tensor idx = cast(rand({256}, g, f64) * double(N), DType::i64);
          return vdm_loss(sched, fn, index_select(data, 0, idx), g, o).to(f64);
        },
        0.0, {.samples = 20, .seed = seed}, "-VLB");
  };
  const MeanCheck before = evaluate(100);
  auto slots = net.named_parameters();
  const size_t net_count = slots.size();
  for (auto& s : sched.named_parameters()) slots.push_back(s);
  nn::Adam opt(slots, {.lr = 5e-3});
  for (int step = 0; step < 150; ++step) {
    const Tensor idx = cast(rand({64}, gen, f64) * double(N), DType::i64);
    const VdmStep st =
        vdm_value_and_grad(sched, fn, net.parameters(), index_select(data, 0, idx), gen, o);
    std::vector<Tensor> g = st.net_grads;
    g.insert(g.end(), st.schedule_grads.begin(), st.schedule_grads.end());
    REQUIRE(g.size() == slots.size());
    REQUIRE(st.variance_gradient);
    opt.step(g);
  }
  REQUIRE(net_count > 0);
  const MeanCheck after = evaluate(101);
  const double se = std::hypot(before.std_error, after.std_error);
  INFO("-VLB nats/example: before " << before.estimate << " +- " << before.std_error << ", after "
                                    << after.estimate << " +- " << after.std_error);
  CHECK(after.estimate < before.estimate - 10 * se);
  REQUIRE_NOTHROW(check_monotone(sched));
}

TEST_CASE("vdm: the identities for scoregrad verify pass", "[vdm][statistical][identities]") {
  std::vector<IdentityResult> rows;
  for (const Identity& id : vdm_identities())
    for (IdentityResult& r : id.run()) rows.push_back(std::move(r));
  std::ostringstream table;
  print_identity_table(table, rows);
  INFO(table.str());
  CHECK(rows.size() == 14);
  for (const IdentityResult& r : rows) CHECK(r.pass);
}
