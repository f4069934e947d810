// Identities of Variational Diffusion Models (docs/vdm.md) for `scoregrad verify`: the continuous
// VLB's invariance to the schedule's interior (Gaussian data, optimal denoiser, closed form), the
// discrete-time loss above it and decreasing in T, the prior term and the encoder constants, and
// the VP-to-gamma map. Registered through vdm_identities() (see identities.cpp's list).
#include <cmath>

#include "autodiff/sg.hpp"
#include "objectives/identities.hpp"
#include "objectives/vdm.hpp"

namespace sg::obj {
namespace {

constexpr DType f64 = DType::f64;
constexpr double kStd = 0.8;  // f ~ N(0, 0.8^2 I_2)
constexpr int64_t kDims = 2;

// A learned-endpoint schedule (default range) whose interior is redrawn at random: any values
// keep it monotone, and its endpoints stay gamma(0) = -13.3, gamma(1) = 5.
std::unique_ptr<LearnedEndpointsSchedule> random_interior(Generator& gen) {
  auto s = std::make_unique<LearnedEndpointsSchedule>(
      MonotoneNetOptions{.features = 8, .init_std = 3.0, .dtype = f64}, gen);
  NoGradGuard off;
  *s->shape.l2.bias = (randn({8}, gen, f64) * 3.0).requires_grad_();
  return s;
}
// Per-example diffusion losses of one batch of n, i.i.d. times (independent examples).
std::vector<double> diffusion_samples(const NoiseSchedule& s, int64_t n, int64_t T,
                                      Generator& gen) {
  NoGradGuard off;
  const Tensor f = randn({n, kDims}, gen, f64) * kStd;
  const VdmOptions o{.timesteps = T, .antithetic = false, .conditioning = VdmConditioning::gamma};
  return vdm_diffusion_loss(s, vdm_gaussian_denoiser(kStd), f, gen, o).to_vector();
}
IdentityResult above(std::string name, std::string statement, double lhs, double rhs) {
  IdentityResult r = deterministic(std::move(name), std::move(statement), lhs, rhs, 0.0);
  r.pass = lhs > rhs;
  return r;
}

std::vector<IdentityResult> invariance() {
  Generator gen(1601);
  FixedLinearSchedule fixed;
  const auto curved = random_interior(gen);
  const double ref = vdm_gaussian_continuous_loss(-13.3, 5.0, kStd, kDims);
  const std::string st = "E L_inf = (D/2) ln[(1 + SNR_max s^2)/(1 + SNR_min s^2)], s = 0.8, D = 2";
  VpSchedule vp(VpSde(), 1e-3);
  return {mean_within("vdm: continuous VLB, fixed linear schedule", st,
                      diffusion_samples(fixed, 200000, 0, gen), ref),
          mean_within("vdm: continuous VLB, random interior, same endpoints", st,
                      diffusion_samples(*curved, 200000, 0, gen), ref),
          mean_within("vdm: continuous VLB, VP schedule (t_eps = 1e-3)", st,
                      diffusion_samples(vp, 200000, 0, gen),
                      vdm_gaussian_continuous_loss(vp.gamma_min(), vp.gamma_max(), kStd, kDims))};
}

std::vector<IdentityResult> discrete_time() {
  Generator gen(1602);
  FixedLinearSchedule fixed;
  const double cont = vdm_gaussian_continuous_loss(-13.3, 5.0, kStd, kDims);
  std::vector<IdentityResult> rows;
  double prev = vdm_gaussian_discrete_loss(fixed, 10, kStd, kDims);
  rows.push_back(mean_within("vdm: discrete loss estimator, T = 10",
                             "E L_T = 1/2 sum (SNR(s_i) - SNR(t_i)) D s^2 / (1 + SNR(t_i) s^2)",
                             diffusion_samples(fixed, 200000, 10, gen), prev));
  for (int64_t T : {100, 1000}) {
    const double LT = vdm_gaussian_discrete_loss(fixed, T, kStd, kDims);
    rows.push_back(above(cat("vdm: L_T decreases in T (T = ", T / 10, " -> ", T, ")"),
                         "L_{T/10} > L_T (closed form)", prev, LT));
    prev = LT;
  }
  rows.push_back(above("vdm: discrete loss exceeds the continuous (T = 1000)",
                       "L_T > L_inf (Riemann sum of a decreasing integrand)", prev, cont));
  return rows;
}

std::vector<IdentityResult> prior_and_encoder() {
  Generator gen(1603);
  const std::vector<double> f = vdm_encode(from_vector({0, 255}, {2}, f64), 256).to_vector();
  const double f17 = vdm_encode(from_vector({16}, {1}, f64), 17).item();
  // KL(N(alpha_1 f, sigma_1^2) || N(0, 1)) per dimension at gamma_1 = 5, f = 0.3
  const double g1 = 5.0, var1 = 1.0 / (1.0 + std::exp(-g1));
  const double kl = -0.5 * std::log(var1) + 0.5 * (var1 + (1 - var1) * 0.09) - 0.5;
  const double prior = vdm_prior_loss(full({1, 1}, 0.3, f64), full({}, g1, f64)).item();
  return {
      deterministic("vdm: encoder, 256 levels", "f(0) = 2 (0 + 1/2)/256 - 1 = -0.99609375", f[0],
                    -0.99609375, 0.0),
      deterministic("vdm: encoder, 256 levels (top)", "f(255) = 0.99609375", f[1], 0.99609375, 0.0),
      deterministic("vdm: encoder, 17 levels", "f(16) = 16/17", f17, 16.0 / 17.0, 1e-15),
      deterministic("vdm: prior term", "L_prior = KL(q(z_1|x) || N(0,1)), gamma_1 = 5, f = 0.3",
                    prior, kl, 1e-15)};
}

std::vector<IdentityResult> vp_map() {
  const VpSde vp;
  const Tensor t = linspace(1e-4, 1.0, 1001, f64);
  const auto [alpha, std] = vp.marginal(t);
  VpSchedule sched(vp, 1e-5);
  const auto [g, dg] = gamma_and_derivative(sched, t);
  return {deterministic("vdm: VP map, alpha^2", "sigmoid(-log(e^B - 1)) = e^-B (max rel. error)",
                        max(abs(sigmoid(-g) / square(alpha) - 1.0)).item(), 0.0, 1e-12),
          deterministic("vdm: VP map, sigma^2", "sigmoid(log(e^B - 1)) = 1 - e^-B (max rel. error)",
                        max(abs(sigmoid(g) / square(std) - 1.0)).item(), 0.0, 1e-12),
          deterministic("vdm: VP map, gamma' by forward mode", "gamma' = beta / sigma^2 (max rel.)",
                        max(abs(dg * square(std) / vp.beta(t) - 1.0)).item(), 0.0, 1e-12)};
}

}  // namespace

std::vector<Identity> vdm_identities() {
  return {{"vdm-invariance", invariance},
          {"vdm-discrete", discrete_time},
          {"vdm-prior-encoder", prior_and_encoder},
          {"vdm-vp-map", vp_map}};
}

}  // namespace sg::obj
