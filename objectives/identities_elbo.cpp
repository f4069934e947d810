// Identities of the variational view (Huang et al. 2021) on the Gaussian case G under VP:
// the probability-flow likelihood in closed form, the tight ELBO, the score-matching gap, the
// denoising constant, the two ELBO forms, and the CNF limit of the general bound.
#include <cmath>

#include "autodiff/sg.hpp"
#include "objectives/elbo.hpp"
#include "objectives/gaussian.hpp"
#include "objectives/identities.hpp"
#include "sde/likelihood.hpp"

namespace sg::obj {
namespace {

constexpr DType f64 = DType::f64;

std::vector<IdentityResult> pf_ode() {
  const GaussianData G = GaussianData::case_g();
  VpSde vp;
  Generator g(606);
  const Tensor x = G.sample(5, g);
  const double t_eps = 1e-3;
  const ScoreModelFn s = [&](const Tensor& y, const Tensor& t) { return G.score(y, t, vp); };
  const LikelihoodResult r =
      probability_flow_log_likelihood(vp, s, x, t_eps, {.ode = {.rtol = 1e-9, .atol = 1e-9}});
  const Tensor xT = G.flow(x, t_eps, 1.0, vp);
  // change of variables through the exact flow: log q_eps(x) - log q_T(x_T) + log N(x_T; 0, I)
  const Tensor ref = G.log_density(x, full({5}, t_eps, f64), vp) -
                     G.log_density(xT, full({5}, 1.0, f64), vp) + vp.prior_logp(xT);
  return {
      deterministic("pf-ode: flow map of Gaussian data",
                    "x_T = m_T + (x - m_eps) Sigma_eps^-1/2 Sigma_T^1/2 (max abs)",
                    max(abs(r.z - xT)).item(), 0.0, 1e-6),
      deterministic(
          "pf-ode: Gaussian log-likelihood in closed form",
          "log p_ODE(x) = log N(x_T; 0, I) + 1/2 [log det Sigma_T - log det Sigma_eps] (max abs)",
          max(abs(r.logp - ref)).item(), 0.0, 1e-6)};
}

std::vector<IdentityResult> elbo_tight() {
  const GaussianData G = GaussianData::case_g();
  VpSde vp;
  Generator g(707);
  const int64_t n = 200000;
  const Tensor x = expand(from_vector({0.3, 0.2}, {1, 2}, f64), {n, 2}).contiguous();
  const ScoreModelFn s = [&](const Tensor& y, const Tensor& t) { return G.score(y, t, vp); };
  const ElboOptions o{.t_eps = 1e-5,
                      .sampling = TimeSampling::importance,
                      .exact_divergence = true,
                      .prior_logp = [&](const Tensor& yT) {
                        return G.log_density(yT, full({yT.dim(0)}, 1.0, f64), vp);
                      }};
  NoGradGuard values_only;
  const double logp = G.log_density0(from_vector({0.3, 0.2}, {1, 2}, f64)).item();
  return {mean_within("elbo: tight for the exact score and prior (implicit form)",
                      "E[ELBO(x)] = log q_0(x) at x0 = (0.3, 0.2)",
                      elbo_implicit(vp, s, x, g, o).to_vector(), logp),
          mean_within("elbo: tight for the exact score and prior (denoising form)",
                      "E[ELBO_eps(x)] = log q_0(x) + O(t_eps)",
                      elbo_denoising(vp, s, x, g, o).to_vector(), logp)};
}

// s_wrong = s + delta, delta(y, t) = 0.5 tanh(y) (1 - t/2)
std::vector<IdentityResult> elbo_gap() {
  const GaussianData G = GaussianData::case_g();
  VpSde vp;
  const int64_t n = 100000;
  Generator g(808);
  const Tensor x = G.sample(n, g);
  Tensor last_y, last_t;
  const auto delta = [](const Tensor& y, const Tensor& t) {
    return tanh(y) * unsqueeze(1.0 - t * 0.5, -1) * 0.5;
  };
  const ScoreModelFn s_true = [&](const Tensor& y, const Tensor& t) { return G.score(y, t, vp); };
  const ScoreModelFn s_wrong = [&](const Tensor& y, const Tensor& t) {
    last_y = y.detach();
    last_t = t.detach();
    return G.score(y, t, vp) + delta(y, t);
  };
  const ElboOptions o{.t_eps = 1e-5, .exact_divergence = true};
  Generator g1(9), g2(9);  // common random numbers for the two bounds
  NoGradGuard values_only;
  const Tensor ew = elbo_implicit(vp, s_wrong, x, g1, o), et = elbo_implicit(vp, s_true, x, g2, o);
  const Tensor gg = square(vp.diffusion(last_t));
  const Tensor d = delta(last_y, last_t);
  const Tensor gap =
      sum(d * d, {1}) * gg * 0.5 * (1.0 - o.t_eps);  // (1/q) ½ g^2 |s_w - s|^2, q uniform
  IdentityResult r =
      mean_within("elbo: falls below by the g^2-weighted score-matching error",
                  "E[ELBO_wrong - ELBO_exact] = -1/2 int g^2 E|s_wrong - grad log q_t|^2 dt",
                  (ew - et + gap).to_vector(), 0.0);
  r.estimate = mean(ew - et).item();
  r.reference = -mean(gap).item();
  r.pass = std::abs(r.estimate - r.reference) <= r.tolerance * r.std_error;
  return {r};
}

std::vector<IdentityResult> elbo_constant_and_forms() {
  VpSde vp;
  std::vector<IdentityResult> rows;
  const double t_eps = 1e-3;
  const auto [a1, s1] = vp.marginal(scalar(1.0, f64));
  const auto [ae, se] = vp.marginal(scalar(t_eps, f64));
  const double closed = 0.5 * std::log(square(s1).item() / square(se).item());
  rows.push_back(deterministic("elbo: denoising constant (VP, per dim, t_eps 1e-3)",
                               "C / D = 1/2 ln(var(T) / var(t_eps)) = 4.5577",
                               elbo_denoising_constant(vp, 1, t_eps), closed, 1e-8));
  // The two forms estimate the same bound on [t_eps, T], here for a wrong score.
  const GaussianData G = GaussianData::case_g();
  const ScoreModelFn s = [&](const Tensor& y, const Tensor& t) {
    return G.score(y, t, vp) * 0.8 + 0.1;
  };
  Generator g(909);
  const Tensor x = G.sample(100000, g);
  const ElboOptions o{
      .t_eps = t_eps, .sampling = TimeSampling::importance, .exact_divergence = true};
  NoGradGuard values_only;
  const MeanEstimate ei = mean_and_std_error(elbo_implicit(vp, s, x, g, o));
  const MeanEstimate ed = mean_and_std_error(elbo_denoising(vp, s, x, g, o));
  const double se2 = std::sqrt(ei.std_error * ei.std_error + ed.std_error * ed.std_error);
  rows.push_back({"elbo: implicit and denoising forms agree",
                  "E[ELBO_implicit] = E[ELBO_denoising] on [t_eps, T]", ei.mean, ed.mean, se2, 4.0,
                  true, std::abs(ei.mean - ed.mean) <= 4.0 * se2});
  return rows;
}

std::vector<IdentityResult> elbo_cnf_limit() {
  // Generative ODE dX = mu dt with mu(y, t) = tanh(y A^T) + 0.2 t; as sigma -> 0 (a = 0) the bound
  // equals the CNF log-likelihood along dY = -mu ds.
  const Tensor A = from_vector({-0.5, 0.8, -0.3, 0.4}, {2, 2}, f64);
  const TimeField mu = [&](const Tensor& y, double t) { return tanh(matmul(y, A.mT())) + 0.2 * t; };
  const TimeField a0 = [](const Tensor& y, double) { return zeros_like(y); };
  const Tensor x = from_vector({0.3, -0.4, 1.0, 0.5}, {2, 2}, f64);
  const LikelihoodResult cnf =
      cnf_log_likelihood([&](double s, const Tensor& z) { return -mu(z, 1.0 - s); }, x,
                         {.t0 = 0, .t1 = 1, .ode = {.rtol = 1e-10, .atol = 1e-10}});
  Generator g(1001);
  const Tensor e0 = elbo_general(
      mu, [](double) { return 0.0; }, a0, x, 1.0, 2000, g);
  const int64_t n = 2000;
  const Tensor xr = reshape(expand(unsqueeze(x, 0), {n, 2, 2}), {2 * n, 2});
  const Tensor es = reshape(elbo_general(
                                mu, [](double) { return 0.01; }, a0, xr, 1.0, 200, g),
                            {n, 2});
  return {deterministic("elbo (general pair): sigma = 0 is the CNF log-likelihood",
                        "ELBO = log p0(Y_T) - int div mu (Euler, 2000 steps; max abs)",
                        max(abs(e0 - cnf.logp)).item(), 0.0, 2e-3),
          deterministic("elbo (general pair): sigma = 0.01 is close to it",
                        "|E ELBO_sigma - log p_CNF| = O(sigma^2 + h) (200 steps)",
                        max(abs(mean(es, {0}) - cnf.logp)).item(), 0.0, 2e-2)};
}

}  // namespace

std::vector<Identity> elbo_identities() {
  return {{"pf-ode", pf_ode},
          {"elbo-tight", elbo_tight},
          {"elbo-gap", elbo_gap},
          {"elbo-forms", elbo_constant_and_forms},
          {"elbo-cnf-limit", elbo_cnf_limit}};
}

}  // namespace sg::obj
