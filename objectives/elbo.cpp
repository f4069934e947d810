// The ELBO estimators of the plug-in reverse SDE (see elbo.hpp).
#include "objectives/elbo.hpp"

#include <cmath>

#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"
#include "autodiff/transforms/transforms.hpp"
#include "sde/ode.hpp"

namespace sg::obj {
namespace {

// t and 1/q(t) for a batch.
std::pair<Tensor, Tensor> draw_times(const Sde& sde, int64_t B, const ElboOptions& o,
                                     Generator& gen, DType dt, Device d) {
  const double span = sde.T() - o.t_eps;
  if (o.sampling == TimeSampling::uniform)
    return {rand({B}, gen, dt, d) * span + o.t_eps, full({B}, span, dt, d)};
  auto [t, q] = sample_importance_time(sde, B, o.t_eps, gen, dt, d);
  return {t, 1.0 / q};
}
Tensor prior_term(const Sde& sde, const Tensor& x, Generator& gen, const ElboOptions& o) {
  const Tensor yT =
      sde.perturb(x, full({x.dim(0)}, sde.T(), x.dtype(), x.device()), randn_like(x, gen));
  return o.prior_logp ? o.prior_logp(yT) : sde.prior_logp(yT);
}

}  // namespace

// log p0(y_T) - (1/q) (½|a|^2 + div mu), a = g s, mu = g a - f
Tensor elbo_implicit(const Sde& sde, const ScoreModelFn& s, const Tensor& x, Generator& gen,
                     ElboOptions o) {
  const int64_t B = x.dim(0);
  const auto [t, inv_q] = draw_times(sde, B, o, gen, x.dtype(), x.device());
  const Tensor y = sde.perturb(x, t, randn_like(x, gen));
  const Tensor g = batch_view(sde.diffusion(t), x);
  // t is copied: clang < 16 cannot capture a structured binding (the fuzz build uses clang 14).
  const Fn mu = [&, t = t](const Tensor& z) { return g * g * s(z, t) - sde.drift(z, t); };
  Tensor div;
  if (o.exact_divergence) {
    div = divergence(mu, y);
  } else {
    const Tensor v = draw_projection(o.probe, y, gen);
    div = sum(vjp(mu, y, v).second * v, sample_axes(x));  // v^T (dmu/dy) v
  }
  const Tensor a = g * s(y, t);
  return prior_term(sde, x, gen, o) - (sum(a * a, sample_axes(x)) * 0.5 + div) * inv_q;
}

// log p0(y_T) - (1/q) ½ (g^2/std^2) |std s + z|^2 + C(t_eps)
Tensor elbo_denoising(const Sde& sde, const ScoreModelFn& s, const Tensor& x, Generator& gen,
                      ElboOptions o) {
  const int64_t B = x.dim(0);
  const auto [t, inv_q] = draw_times(sde, B, o, gen, x.dtype(), x.device());
  const auto [alpha, std] = sde.marginal(t);
  const Tensor z = randn_like(x, gen);
  const Tensor y = batch_view(alpha, x) * x + batch_view(std, x) * z;
  const Tensor r = s(y, t) * batch_view(std, x) + z;
  const Tensor g = sde.diffusion(t);
  const double C = elbo_denoising_constant(sde, x.numel() / B, o.t_eps);
  return prior_term(sde, x, gen, o) -
         sum(r * r, sample_axes(x)) * (g * g / (std * std)) * 0.5 * inv_q + C;
}

// D int_{t_eps}^{T} (½ g^2/std^2 + c(t)) dt, c = div f / D
double elbo_denoising_constant(const Sde& sde, int64_t dims, double t_eps) {
  if (!(t_eps > 0 && t_eps < sde.T()))
    fail<ValueError>("elbo_denoising_constant: t_eps must lie in (0, ", sde.T(), "), got ", t_eps);
  NoGradGuard off;
  const ode::Dynamics f = [&](double t, const ode::State&) {
    const Tensor tt = scalar(t, DType::f64);
    const Tensor g = sde.diffusion(tt), sd = sde.marginal(tt).second;
    return ode::State{(g * g / (sd * sd) * 0.5 + sde.drift_div_per_dim(tt)) * double(dims)};
  };
  // The integrand behaves like 1/t near 0: integrate in u = log t for an easy solve.
  const ode::Dynamics in_log = [&](double u, const ode::State& y) {
    return ode::State{f(std::exp(u), y)[0] * std::exp(u)};
  };
  const ode::Result r = ode::odeint(in_log, {scalar(0.0, DType::f64)}, std::log(t_eps),
                                    std::log(sde.T()), {.rtol = 1e-12, .atol = 1e-12});
  if (!r.ok())
    fail<ValueError>("elbo_denoising_constant: quadrature failed (", ode::status_name(r.status),
                     ")");
  return r.y[0].item();
}

Tensor elbo_general(const TimeField& mu, const std::function<double(double)>& sigma,
                    const TimeField& a, const Tensor& x, double T, int64_t steps, Generator& gen) {
  const double h = T / double(steps);
  const Shape axes = sample_axes(x);
  Tensor y = x, integral = zeros({x.dim(0)}, x.dtype(), x.device());
  for (int64_t k = 0; k < steps; ++k) {
    const double s = h * double(k), t = T - s;
    const Fn mu_t = [&](const Tensor& z) { return mu(z, t); };
    const Tensor av = a(y, t);
    integral = integral + (sum(av * av, axes) * 0.5 + divergence(mu_t, y)) * h;
    y = y + (-mu(y, t) + av * sigma(t)) * h + randn_like(y, gen) * (sigma(t) * std::sqrt(h));
  }
  const double D = static_cast<double>(x.numel() / x.dim(0));
  const Tensor prior = sum(y * y, axes) * -0.5 - 0.5 * D * std::log(2 * M_PI);
  return prior - integral;
}

MeanEstimate mean_and_std_error(const Tensor& per_sample) {
  const std::vector<double> v = per_sample.to_vector();
  MeanEstimate e;
  e.n = static_cast<int64_t>(v.size());
  for (double x : v) e.mean += x;
  e.mean /= double(e.n);
  double m2 = 0;
  for (double x : v) m2 += (x - e.mean) * (x - e.mean);
  e.std_error = e.n > 1 ? std::sqrt(m2 / double(e.n - 1) / double(e.n)) : 0.0;
  return e;
}

Tensor bits_per_dim(const Tensor& logp, int64_t dims, double levels, const Tensor& logdet) {
  const Tensor total = logdet.defined() ? logp + logdet : logp;
  return -total / (double(dims) * std::log(2.0)) + std::log2(levels);
}

}  // namespace sg::obj
