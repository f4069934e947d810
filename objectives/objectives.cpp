// The score-matching objectives (formulas in objectives.hpp).
#include "objectives/objectives.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"
#include "autodiff/transforms/transforms.hpp"
#include "objectives/time_sampler.hpp"

namespace sg::obj {
namespace {

int64_t dims_per_sample(const Tensor& x) { return x.numel() / std::max<int64_t>(x.dim(0), 1); }
// x repeated P times along the batch axis: [P * B, ...].
Tensor repeat_batch(const Tensor& x, int64_t P) {
  Shape s = x.shape();
  s.insert(0, P);
  Shape flat = x.shape();
  flat[0] = P * x.dim(0);
  return reshape(expand(unsqueeze(x, 0), s), flat);
}
void check_batch(const char* op, const Tensor& x) {
  if (x.rank() < 2) fail<ShapeError>(op, ": data must be [batch, ...], got ", describe(x));
}
// Uniform on the sphere of radius r in each sample's D dimensions, of x's shape, dtype and device.
Tensor sphere(const Tensor& x, double r, Generator& gen) {
  const Tensor u = randn(x.shape(), gen, x.dtype(), x.device());
  Shape axes;
  for (int d = 1; d < u.rank(); ++d) axes.push_back(d);
  return u * rsqrt(sum(u * u, axes, true)) * r;
}

}  // namespace

Tensor per_sample(const Tensor& x) { return x.rank() <= 1 ? x : sum(x, sample_axes(x)); }

ScoreFn score_of_energy(EnergyFn energy) {
  return [energy = std::move(energy)](const Tensor& x) {
    return -grad([&](const Tensor& z) { return sum(energy(z)); }, x);
  };
}

// E ½ |s(x) - grad log p(x)|^2
Tensor explicit_sm(const ScoreFn& s, const Tensor& x, const Tensor& true_score) {
  check_batch("explicit_sm", x);
  const Tensor r = s(x) - true_score;
  return mean(per_sample(r * r)) * 0.5;
}

// E [½ |s|^2 + tr ds/dx], the trace by D backward passes over one forward
Tensor implicit_sm(const ScoreFn& s, const Tensor& x) { return mean(implicit_sm_per_sample(s, x)); }
Tensor implicit_sm_per_sample(const ScoreFn& s, const Tensor& x) {
  check_batch("implicit_sm", x);
  const bool keep = grad_enabled();
  EnableGradGuard on;
  const Tensor xt = detail::track(x);
  const Tensor y = s(xt);
  if (!(y.shape() == x.shape()))
    fail<ShapeError>("implicit_sm: score ", describe(y), " for data ", describe(x));
  const int64_t B = x.dim(0), D = dims_per_sample(x);
  Tensor tr;
  for (int64_t i = 0; i < D; ++i) {
    const Tensor e = reshape(expand(detail::unit_vectors(i, 1, D, x), {B, D}), x.shape());
    const Tensor g = sg::grad({y}, {xt}, {e}, {.create_graph = keep, .allow_unused = true})[0];
    const Tensor part = per_sample(g * e);
    tr = tr.defined() ? tr + part : part;
  }
  return per_sample(y * y) * 0.5 + tr;
}

Tensor draw_projection(Projection p, const Tensor& like, Generator& gen) {
  switch (p) {
    case Projection::gaussian:
      return randn_like(like, gen);
    case Projection::rademacher:
      return rademacher_like(like, gen);
    case Projection::sphere:
      break;
  }
  return sphere(like, 1.0, gen);
}

// E_v [v^T (ds/dx) v + ½ (v^T s)^2]  (or + ½|s|^2 for VR), v: [B, ...] or [P, B, ...]
Tensor ssm_with(const ScoreFn& s, const Tensor& x, const Tensor& v, bool variance_reduced) {
  return mean(ssm_per_sample_with(s, x, v, variance_reduced));
}
Tensor ssm_per_sample_with(const ScoreFn& s, const Tensor& x, const Tensor& v,
                           bool variance_reduced) {
  check_batch("ssm", x);
  const int64_t P = v.rank() == x.rank() + 1 ? v.dim(0) : 1;
  const Tensor vr = P == 1 && v.rank() == x.rank() ? v : reshape(v, [&] {
    Shape s2 = x.shape();
    s2[0] = P * x.dim(0);
    return s2;
  }());
  const bool keep = grad_enabled();
  EnableGradGuard on;
  const Tensor xt = detail::track(P == 1 ? x : repeat_batch(x, P));
  if (!(vr.shape() == xt.shape()))
    fail<ShapeError>("ssm: projections ", describe(v), " for data ", describe(x));
  const Tensor y = s(xt);
  const Tensor sv = per_sample(y * vr);  // v^T s
  const Tensor vJ =
      sg::grad({sum(sv)}, {xt}, {}, {.create_graph = keep, .allow_unused = true})[0];  // v^T ds/dx
  const Tensor vJv = per_sample(vJ * vr);
  const Tensor second = variance_reduced ? per_sample(y * y) * 0.5 : sv * sv * 0.5;
  return mean(reshape(vJv + second, {P, x.dim(0)}), {0});  // average over projections
}

Tensor draw_projections(Projection p, const Tensor& x, int projections, Generator& gen) {
  Shape vs = x.shape();
  if (projections > 1) vs.insert(0, projections);
  if (p != Projection::sphere) return draw_projection(p, zeros(vs, x.dtype(), x.device()), gen);
  const Tensor u = randn(vs, gen, x.dtype(), x.device());
  Shape axes;  // each projection normalised over its sample's own axes
  for (int d = projections > 1 ? 2 : 1; d < u.rank(); ++d) axes.push_back(d);
  return u * rsqrt(sum(u * u, axes, true));
}
Tensor ssm_per_sample(const ScoreFn& s, const Tensor& x, Generator& gen, SsmOptions o) {
  if (o.projections < 1) fail<ValueError>("ssm: projections must be >= 1, got ", o.projections);
  if (o.variance_reduced && o.projection == Projection::sphere)
    fail<ValueError>(
        "ssm: the variance-reduced form needs E[v v^T] = I (gaussian or rademacher projections)");
  return ssm_per_sample_with(s, x, draw_projections(o.projection, x, o.projections, gen),
                             o.variance_reduced);
}
Tensor ssm(const ScoreFn& s, const Tensor& x, Generator& gen, SsmOptions o) {
  return mean(ssm_per_sample(s, x, gen, o));
}

// (D / eps^2) E[⅛ (E+ - E-)^2 + 2 E0 - E+ - E-], eps = |v| per sample
Tensor fd_ssm_energy_with(const EnergyFn& energy, const Tensor& x, const Tensor& v) {
  check_batch("fd_ssm_energy", x);
  const int64_t B = x.dim(0);
  const double D = static_cast<double>(dims_per_sample(x));
  const Tensor e = energy(concat({x, x + v, x - v}, 0));
  if (!(e.shape() == Shape({3 * B})))
    fail<ShapeError>("fd_ssm_energy: energy must return [3B], got ", describe(e));
  const Tensor e0 = slice(e, 0, 0, B), ep = slice(e, 0, B, 2 * B), em = slice(e, 0, 2 * B, 3 * B);
  const Tensor d = ep - em;
  return mean((d * d * 0.125 + e0 * 2.0 - ep - em) * D / per_sample(v * v));
}
Tensor fd_ssm_energy(const EnergyFn& energy, const Tensor& x, Generator& gen, double eps) {
  return fd_ssm_energy_with(energy, x, sphere(x, eps, gen));
}

// E[⅛ |s+ + s-|^2 + (D / (2 eps^2)) (s+ - s-)^T v]
Tensor fd_ssm_score_with(const ScoreFn& s, const Tensor& x, const Tensor& v) {
  return mean(fd_ssm_score_per_sample_with(s, x, v));
}
Tensor fd_ssm_score_per_sample_with(const ScoreFn& s, const Tensor& x, const Tensor& v) {
  check_batch("fd_ssm_score", x);
  const int64_t B = x.dim(0);
  const double D = static_cast<double>(dims_per_sample(x));
  const Tensor y = s(concat({x + v, x - v}, 0));
  const Tensor yp = slice(y, 0, 0, B), ym = slice(y, 0, B, 2 * B);
  const Tensor a = yp + ym;
  return per_sample(a * a) * 0.125 + per_sample((yp - ym) * v) * (0.5 * D) / per_sample(v * v);
}
Tensor fd_ssm_score(const ScoreFn& s, const Tensor& x, Generator& gen, double eps) {
  return fd_ssm_score_with(s, x, sphere(x, eps, gen));
}
Tensor fd_ssm_score_per_sample(const ScoreFn& s, const Tensor& x, Generator& gen, double eps) {
  return fd_ssm_score_per_sample_with(s, x, sphere(x, eps, gen));
}

// E[(sigma ½ (log p(x~+v) - log p(x~-v)) + v^T z)^2] / (2 eps^2), |v| = eps sqrt(D)
Tensor fd_dsm_energy(const EnergyFn& energy, const Tensor& x, double sigma, Generator& gen,
                     double eps) {
  check_batch("fd_dsm_energy", x);
  const int64_t B = x.dim(0);
  const double D = static_cast<double>(dims_per_sample(x));
  const Tensor z = randn_like(x, gen);
  const Tensor xn = x + z * sigma;
  const Tensor v = sphere(x, eps * std::sqrt(D), gen);
  const Tensor e = energy(concat({xn + v, xn - v}, 0));
  const Tensor half_dlogp = (slice(e, 0, B, 2 * B) - slice(e, 0, 0, B)) * 0.5;  // log p = -E
  const Tensor a = half_dlogp * sigma + per_sample(v * z);
  return mean(a * a) / (2 * eps * eps);
}

// E ½ sigma^p |s(x + sigma z) + z / sigma|^2
Tensor dsm_with(const ScoreFn& s, const Tensor& x, double sigma, const Tensor& z,
                double weight_power) {
  check_batch("dsm", x);
  if (!(sigma > 0)) fail<ValueError>("dsm: sigma must be positive, got ", sigma);
  const Tensor r = s(x + z * sigma) + z * (1.0 / sigma);
  return mean(per_sample(r * r)) * (0.5 * std::pow(sigma, weight_power));
}
Tensor dsm(const ScoreFn& s, const Tensor& x, double sigma, Generator& gen, double weight_power) {
  return dsm_with(s, x, sigma, randn_like(x, gen), weight_power);
}

Tensor geometric_sigmas(double begin, double end, int64_t levels, DType dtype, Device device) {
  return exp(linspace(std::log(begin), std::log(end), levels, DType::f64, device)).to(dtype);
}
// E_i E ½ |sigma_i s(x + sigma_i z, sigma_i) + z|^2
Tensor ncsn_dsm(const TimeScoreFn& s, const Tensor& x, const Tensor& sigmas, Generator& gen) {
  check_batch("ncsn_dsm", x);
  detail::check_device("ncsn_dsm", "x", x, "sigmas", sigmas);
  const int64_t B = x.dim(0), L = sigmas.numel();
  const Tensor level = minimum(cast(rand({B}, gen, DType::f64, x.device()) * double(L), DType::i64),
                               full({B}, double(L - 1), DType::i64, x.device()));
  const Tensor sig = index_select(sigmas.to(x.dtype()), 0, level);
  const Tensor sv = batch_view(sig, x);
  const Tensor z = randn_like(x, gen);
  const Tensor r = s(x + sv * z, sig) * sv + z;
  return mean(per_sample(r * r)) * 0.5;
}

std::pair<Tensor, Tensor> sample_importance_time(const Sde& sde, int64_t n, double t_eps,
                                                 Generator& gen, DType dtype, Device device) {
  if (!(t_eps > 0 && t_eps < sde.T()))
    fail<ValueError>("sample_importance_time: t_eps must lie in (0, ", sde.T(), "), got ", t_eps);
  if (n < 0) fail<ValueError>("sample_importance_time: n must be >= 0, got ", n);
  // Huang's density conditioned on [t_eps, T]: q(t) = (g^2/std^2)(t) / int_{t_eps}^{T} g^2/std^2.
  return HuangTimeSampler(sde, t_eps).sample_between(t_eps, sde.T(), n, gen, dtype, device);
}

// (1/(T - t_eps)) int lambda(t) E ½ |s(x_t, t) + z/std|^2 dt, estimated per sample
Tensor dsm_sde(const TimeScoreFn& s, const Sde& sde, const Tensor& x, Generator& gen,
               SdeDsmOptions o) {
  check_batch("dsm_sde", x);
  if (!(o.t_eps >= 0 && o.t_eps < sde.T()))
    fail<ValueError>("dsm_sde: t_eps must lie in [0, ", sde.T(), "), got ", o.t_eps);
  const int64_t B = x.dim(0);
  const double span = sde.T() - o.t_eps;
  Tensor t, weight;  // weight = lambda / std^2 / (q (T - t_eps)) for importance, lambda / std^2 for
                     // uniform
  if (o.sampling == TimeSampling::uniform) {
    t = rand({B}, gen, x.dtype(), x.device()) * span + o.t_eps;
  } else {
    Tensor q;
    std::tie(t, q) = sample_importance_time(sde, B, o.t_eps, gen, x.dtype(), x.device());
    weight = 1.0 / (q * span);
  }
  const auto [alpha, std] = sde.marginal(t);
  const Tensor z = randn_like(x, gen);
  const Tensor xt = batch_view(alpha, x) * x + batch_view(std, x) * z;
  const Tensor r = s(xt, t) * batch_view(std, x) + z;  // std s + z
  Tensor lam_over_var;
  if (o.weighting == Weighting::variance) {
    lam_over_var = ones_like(t);
  } else {
    const Tensor g = sde.diffusion(t);
    lam_over_var = g * g / (std * std);
  }
  Tensor w = weight.defined() ? lam_over_var * weight : lam_over_var;
  return mean(per_sample(r * r) * w) * 0.5;
}

}  // namespace sg::obj
