// SDE simulation: Euler-Maruyama's weak order 1 (Ornstein-Uhlenbeck) and strong order 1/2
// (geometric Brownian motion, where the exact solution uses the same Brownian path); forward
// SDE samples against the closed-form marginals; the samplers against Gaussian data whose
// score is known in closed form.
#include <catch2/catch.hpp>

#include "autodiff/sg.hpp"
#include "sde/sampling.hpp"

using namespace sg;

namespace {
constexpr DType f64 = DType::f64;
bool all_finite(const Tensor& x) {
  for (double v : x.to_vector())
    if (!std::isfinite(v)) return false;
  return true;
}
double slope(const std::vector<double>& h, const std::vector<double>& e) {
  return (std::log(e.front()) - std::log(e.back())) / (std::log(h.front()) - std::log(h.back()));
}
}  // namespace

TEST_CASE("Euler-Maruyama has weak order 1 on an Ornstein-Uhlenbeck process", "[sde][em]") {
  // dX = -theta X dt + s dW, X0 = 1: E[X_T] = e^{-theta T}; EM's mean is (1 - theta h)^N.
  const double theta = 1.0, s = 0.5;
  const BrownianPath W(3, {200000}, 0.0, 1.0, 20, f64);
  const Tensor x0 = ones({200000}, f64);
  std::vector<double> hs, errs;
  for (int64_t steps : {5, 10, 20}) {
    const Tensor x =
        euler_maruyama([&](const Tensor& x, double) { return x * -theta; },
                       [&](const Tensor& x, double) { return full_like(x, s); }, x0, W, steps);
    hs.push_back(1.0 / double(steps));
    errs.push_back(std::abs(mean(x).item() - std::exp(-theta)));
  }
  INFO("weak errors " << errs[0] << " " << errs[1] << " " << errs[2] << ", slope "
                      << slope(hs, errs));
  CHECK(std::abs(slope(hs, errs) - 1.0) < 0.25);
}

TEST_CASE("Euler-Maruyama has strong order 1/2 on geometric Brownian motion", "[sde][em]") {
  // dX = m X dt + s X dW: X_T = exp((m - s^2/2) T + s W_T) on the same path.
  const double m = 0.5, s = 0.8;
  const int64_t fine = 1024;
  const BrownianPath W(5, {4000}, 0.0, 1.0, fine, f64);
  const Tensor x0 = ones({4000}, f64);
  const Tensor exact = exp(W.increment(0, fine) * s + (m - s * s / 2));
  std::vector<double> hs, errs;
  for (int64_t steps : {16, 64, 256}) {
    const Tensor x = euler_maruyama([&](const Tensor& x, double) { return x * m; },
                                    [&](const Tensor& x, double) { return x * s; }, x0, W, steps);
    hs.push_back(1.0 / double(steps));
    errs.push_back(mean(abs(x - exact)).item());
  }
  INFO("strong errors " << errs[0] << " " << errs[1] << " " << errs[2] << ", slope "
                        << slope(hs, errs));
  CHECK(std::abs(slope(hs, errs) - 0.5) < 0.15);
}

TEST_CASE("forward SDE samples match the closed-form marginal moments", "[sde][marginals]") {
  const int64_t n = 10000, steps = 250;  // EM bias O(h): allowed 5e-3 relative below
  const Tensor c = from_vector({1.5, -0.5}, {1, 2}, f64);
  const Tensor x0 = expand(c, {n, 2}).contiguous();
  for (const char* name : {"vp", "subvp", "ve"}) {
    const auto sde = make_sde(name);
    for (double t1 : {0.1, 0.5}) {
      const BrownianPath W(11, {n, 2}, 0.0, t1, steps, f64);
      const Tensor x = euler_maruyama(
          [&](const Tensor& x, double t) { return sde->drift(x, full({x.dim(0)}, t, f64)); },
          [&](const Tensor& x, double t) {
            return full_like(x, sde->diffusion(scalar(t, f64)).item());
          },
          x0, W, steps);
      const auto [alpha, std] = sde->marginal(scalar(t1, f64));
      const double a = alpha.item();
      // VE's marginal() follows score_sde and reports sigma(t), treating data as pre-smoothed
      // by sigma_min; started from exact data the variance is sigma(t)^2 - sigma_min^2.
      const double sd =
          std::string(name) == "ve" ? std::sqrt(std.item() * std.item() - 1e-4) : std.item();
      const Tensor m = mean(x, {0}), v = var(x, {0});
      const double se_m = sd / std::sqrt(double(n)),
                   se_v = sd * sd * std::sqrt(2.0 / double(n - 1));
      INFO(name << " t=" << t1 << ": mean " << m << " expected " << c * a << ", var " << v
                << " expected " << sd * sd);
      CHECK(max(abs(m - c * a)).item() < 4 * se_m + 5e-3 * std::max(1.0, sd));
      CHECK(max(abs(v - sd * sd)).item() < 4 * se_v + 5e-3 * sd * sd);
    }
  }
}

TEST_CASE("samplers draw Gaussian data given its exact score", "[sde][samplers]") {
  // Data N(mu, Sigma); under VP, q_t = N(alpha mu, alpha^2 Sigma + std^2 I) with a closed-form
  // score.
  const Tensor mu = from_vector({1.0, -0.5}, {2}, f64),
               Sigma = from_vector({1.0, 0.6, 0.6, 2.0}, {2, 2}, f64);
  VpSde vp;
  const ScoreModelFn score = [&](const Tensor& x, const Tensor& t) {
    const auto [alpha, std] = vp.marginal(t);
    // per sample: -(x - a mu) (a^2 Sigma + s^2 I)^-1, batched over distinct t
    const Tensor a = reshape(alpha, {-1, 1, 1}), s2 = reshape(std * std, {-1, 1, 1});
    const Tensor S = unsqueeze(Sigma, 0) * (a * a) + unsqueeze(eye(2, f64), 0) * s2;  // [B,2,2]
    const Tensor det = select(select(S, 1, 0), 1, 0) * select(select(S, 1, 1), 1, 1) -
                       select(select(S, 1, 0), 1, 1) * select(select(S, 1, 1), 1, 0);
    const Tensor d = x - reshape(alpha, {-1, 1}) * mu;
    const Tensor d0 = select(d, 1, 0), d1 = select(d, 1, 1);
    const Tensor s00 = select(select(S, 1, 0), 1, 0), s01 = select(select(S, 1, 0), 1, 1),
                 s11 = select(select(S, 1, 1), 1, 1);
    return -stack({(s11 * d0 - s01 * d1) / det, (s00 * d1 - s01 * d0) / det}, 1);
  };
  Generator gen(21);
  const int64_t n = 4000;
  auto check = [&](const Tensor& x, const char* name) {
    const Tensor m = mean(x, {0});
    const Tensor xc = x - m;
    const Tensor cov = matmul(xc.mT(), xc) / double(n - 1);
    INFO(name << ": mean " << m << " cov " << cov);
    CHECK(max(abs(m - mu)).item() < 0.1);
    CHECK(max(abs(cov - Sigma)).item() < 0.15);
  };
  check(sample_reverse_em(vp, score, {n, 2}, gen, {.steps = 500}, f64), "reverse EM");
  check(sample_pc(vp, score, {n, 2}, gen, {.steps = 300}, f64), "predictor-corrector");
  ode::Result stats;
  check(sample_probability_flow(vp, score, {n, 2}, gen, {}, f64, &stats), "probability flow");
  CHECK(stats.nfe > 10);
}

TEST_CASE("the predictor-corrector sampler stays finite for any number of steps >= 1",
          "[sde][samplers]") {
  // score_sde's corrector uses alpha = 1 - beta(t) h, negative once beta(t) h > 1 (fewer than
  // 20 steps at beta_max = 20), which made the Langevin step size negative and the samples NaN.
  VpSde vp;
  SubVpSde subvp;
  for (int64_t steps : {1, 2, 5, 10, 19, 20, 1000}) {
    const double h = (vp.T() - 1e-3) / double(steps);
    for (int64_t k = 0; k < steps; ++k) {
      const double a = langevin_alpha(vp, vp.T() - h * double(k), h);
      INFO("steps " << steps << " k " << k << " alpha " << a);
      CHECK((a > 0 && a <= 1));
    }
  }
  // The exact score of N(0, I) data under VP is -x: finite samples for every step count.
  const ScoreModelFn score = [](const Tensor& x, const Tensor&) { return -x; };
  for (const Sde* sde : {static_cast<const Sde*>(&vp), static_cast<const Sde*>(&subvp)})
    for (int64_t steps : {1, 2, 5, 10, 19}) {
      Generator gen(3);
      const Tensor x = sample_pc(*sde, score, {500, 2}, gen, {.steps = steps}, f64);
      INFO(sde->name() << " steps " << steps);
      CHECK(all_finite(x));
    }
  // A zero score (an untrained network) takes no corrector step instead of an infinite one.
  Generator gen(4);
  const Tensor x0 = sample_pc(
      vp, [](const Tensor& x, const Tensor&) { return zeros_like(x); }, {500, 2}, gen,
      {.steps = 10}, f64);
  CHECK(max(abs(x0)).item() < 1e4);  // the predictor alone: about e^{B(1)/2} ~ 150
  // Fewer than one step, or t_eps outside [0, T), is refused.
  Generator g2(5);
  CHECK_THROWS_AS(sample_pc(vp, score, {4, 2}, g2, {.steps = 0}), ValueError);
  CHECK_THROWS_AS(sample_reverse_em(vp, score, {4, 2}, g2, {.steps = -3}), ValueError);
  CHECK_THROWS_AS(sample_pc(vp, score, {4, 2}, g2, {.t_eps = 1.0}), ValueError);
  CHECK_THROWS_AS(sample_probability_flow(vp, score, {4, 2}, g2, {.t_eps = -1}), ValueError);
}

TEST_CASE("SDE constructors refuse parameters that make no process", "[sde][options]") {
  // A VE SDE with sigma_min > sigma_max was accepted and sampling gave NaN.
  CHECK_THROWS_WITH(VeSde(60.0, 50.0),
                    Catch::Contains("sigma_min") && Catch::Contains("sigma_max"));
  CHECK_THROWS_AS(VeSde(50.0, 50.0), ValueError);
  CHECK_THROWS_WITH(VeSde(0.0, 50.0), Catch::Contains("sigma_min"));
  CHECK_THROWS_WITH(VeSde(0.01, INFINITY), Catch::Contains("sigma_max"));
  CHECK_THROWS_WITH(VpSde(-0.1, 20.0), Catch::Contains("beta_min"));
  CHECK_THROWS_WITH(VpSde(0.1, 0.0), Catch::Contains("beta_max"));
  CHECK_THROWS_WITH(VpSde(30.0, 20.0), Catch::Contains("beta_min") && Catch::Contains("beta_max"));
  CHECK_THROWS_AS(SubVpSde(NAN, 20.0), ValueError);
  CHECK_NOTHROW(VpSde(0.0, 20.0));
  CHECK_NOTHROW(VpSde(5.0, 5.0));  // constant beta
  CHECK_NOTHROW(VeSde(0.01, 50.0));
}
