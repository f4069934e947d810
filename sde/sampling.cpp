// Brownian paths, Euler-Maruyama and the score-based samplers (see sampling.hpp).
#include "sde/sampling.hpp"

#include <cmath>

#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"

namespace sg {

BrownianPath::BrownianPath(uint64_t seed, Shape shape, double t0, double t1, int64_t n, DType dtype,
                           Device device)
    : seed_(seed),
      shape_(std::move(shape)),
      t0_(t0),
      t1_(t1),
      n_(n),
      dtype_(dtype),
      device_(device) {
  if (n <= 0) fail<ValueError>("BrownianPath: fine_steps must be positive, got ", n);
}
// sum_{k0 <= k < k1} sqrt(dt) N_k, each N_k from its own counter range
Tensor BrownianPath::increment(int64_t k0, int64_t k1) const {
  if (k0 < 0 || k1 > n_ || k0 >= k1)
    fail<ValueError>("BrownianPath: bad range [", k0, ", ", k1, ") of ", n_);
  const double dt = (t1_ - t0_) / double(n_);
  const uint64_t numel = static_cast<uint64_t>(shape_.numel());
  Tensor total;
  for (int64_t k = k0; k < k1; ++k) {
    Generator g(seed_);
    g.set_state(seed_, static_cast<uint64_t>(k) * numel);
    const Tensor z = randn(shape_, g, dtype_, device_);
    total = total.defined() ? total + z : z;
  }
  return total * std::sqrt(std::abs(dt));
}

Tensor euler_maruyama(const SdeDrift& mu, const SdeDiffusion& sigma, const Tensor& x0,
                      const BrownianPath& W, int64_t steps) {
  if (steps <= 0 || W.fine_steps() % steps)
    fail<ValueError>("euler_maruyama: ", steps, " steps must divide the path's ", W.fine_steps(),
                     " fine steps");
  if (!(W.device() == x0.device()))
    fail<DeviceError>("euler_maruyama: x0 ", x0.shape().str(), " is on ", device_name(x0.device()),
                      " but the Brownian path ", W.shape().str(), " is on ",
                      device_name(W.device()));
  const int64_t r = W.fine_steps() / steps;
  const double h = (W.t1() - W.t0()) / double(steps);
  Tensor x = x0;
  for (int64_t k = 0; k < steps; ++k) {
    const double t = W.t0() + h * double(k);
    x = x + mu(x, t) * h + sigma(x, t) * W.increment(k * r, (k + 1) * r);
  }
  return x;
}

// f - (1 - lambda/2) g^2 s
Tensor ReverseSde::drift(const Tensor& x, double t) const {
  const Tensor tt = full({x.dim(0)}, t, x.dtype(), x.device());
  const Tensor g = sde->diffusion(tt);
  return sde->drift(x, tt) - batch_view(g * g, x) * score(x, tt) * (1 - lambda / 2);
}
Tensor ReverseSde::diffusion(double t, Device device) const {
  return sde->diffusion(scalar(t, DType::f64, device)) * std::sqrt(std::max(0.0, 1 - lambda));
}

namespace {
// Every discretized sampler: at least one step over [t_eps, T), t_eps >= 0.
void check_grid(const char* who, const Sde& sde, const SamplerOptions& o) {
  if (o.steps < 1) fail<ValueError>(who, ": steps must be >= 1, got ", o.steps);
  if (!(o.t_eps >= 0 && o.t_eps < sde.T()))
    fail<ValueError>(who, ": t_eps must lie in [0, ", sde.T(), "), got ", o.t_eps);
}
}  // namespace

Tensor sample_reverse_em(const Sde& sde, const ScoreModelFn& s, const Shape& shape, Generator& gen,
                         SamplerOptions o, DType dtype) {
  check_grid("sample_reverse_em", sde, o);
  NoGradGuard off;
  const ReverseSde rev{&sde, s, o.lambda};
  Tensor x = sde.prior_sample(shape, gen, dtype, o.device);
  const double h = (sde.T() - o.t_eps) / double(o.steps);
  for (int64_t k = 0; k < o.steps; ++k) {
    const double t = sde.T() - h * double(k);
    // x_{t-h} = x_t - drift h + sqrt(1 - lambda) g sqrt(h) z
    x = x - rev.drift(x, t) * h +
        randn(shape, gen, dtype, o.device) * (rev.diffusion(t, o.device).item() * std::sqrt(h));
  }
  return x;
}

double langevin_alpha(const Sde& sde, double t, double h) {
  const auto* vp = dynamic_cast<const VpSde*>(&sde);
  if (!vp) return 1.0;
  // exp(-int_{t-h}^t beta): the discrete alpha_i = 1 - beta_i of the DDPM chain to first order
  // (score_sde uses 1 - beta(t) h, which is negative once beta(t) h > 1, e.g. for fewer than 20
  // steps at beta_max = 20), and in (0, 1] for every step size.
  const double lo = std::max(t - h, 0.0);
  const double B =
      (vp->integral_beta(scalar(t, DType::f64)) - vp->integral_beta(scalar(lo, DType::f64))).item();
  return std::exp(-std::max(B, 0.0));
}

Tensor sample_pc(const Sde& sde, const ScoreModelFn& s, const Shape& shape, Generator& gen,
                 SamplerOptions o, DType dtype) {
  check_grid("sample_pc", sde, o);
  if (o.corrector_steps < 0)
    fail<ValueError>("sample_pc: corrector_steps must be >= 0, got ", o.corrector_steps);
  if (!(o.snr >= 0 && std::isfinite(o.snr)))
    fail<ValueError>("sample_pc: snr must be finite and >= 0, got ", o.snr);
  NoGradGuard off;
  const ReverseSde rev{&sde, s, 0.0};
  Tensor x = sde.prior_sample(shape, gen, dtype, o.device);
  const double h = (sde.T() - o.t_eps) / double(o.steps);
  Shape axes;
  for (int d = 1; d < static_cast<int>(shape.rank()); ++d) axes.push_back(d);
  for (int64_t k = 0; k < o.steps; ++k) {
    const double t = sde.T() - h * double(k);
    const Tensor tt = full({shape[0]}, t, dtype, o.device);
    // Langevin corrector: x += eps s + sqrt(2 eps) z, eps = 2 alpha (snr |z| / |s|)^2
    const double alpha = langevin_alpha(sde, t, h);
    for (int64_t c = 0; c < o.corrector_steps; ++c) {
      const Tensor grad = s(x, tt), z = randn(shape, gen, dtype, o.device);
      // norms averaged over the batch, as in score_sde: one step size for all samples
      const double gn = mean(sqrt(sum(grad * grad, axes))).item(),
                   zn = mean(sqrt(sum(z * z, axes))).item();
      // A zero score carries no information (an untrained network): no step rather than an
      // infinite one. A non-finite score is left to reach the samples, where the caller sees it.
      if (!(gn > 0) || !std::isfinite(gn)) continue;
      const double eps = 2 * alpha * std::pow(o.snr * zn / gn, 2);
      x = x + grad * eps + z * std::sqrt(2 * eps);
    }
    // reverse-diffusion predictor (Euler-Maruyama of the reverse SDE)
    x = x - rev.drift(x, t) * h +
        randn(shape, gen, dtype, o.device) * (rev.diffusion(t, o.device).item() * std::sqrt(h));
  }
  return x;
}

Tensor sample_probability_flow(const Sde& sde, const ScoreModelFn& s, const Shape& shape,
                               Generator& gen, SamplerOptions o, DType dtype, ode::Result* stats) {
  NoGradGuard off;
  const ReverseSde pf{&sde, s, 1.0};
  const ode::Dynamics f = [&](double t, const ode::State& y) {
    return ode::State{pf.drift(y[0], t)};
  };
  if (!(o.t_eps >= 0 && o.t_eps < sde.T()))
    fail<ValueError>("sample_probability_flow: t_eps must lie in [0, ", sde.T(), "), got ",
                     o.t_eps);
  ode::Options oo = o.ode;
  if (oo.rtol == ode::Options{}.rtol && oo.atol == ode::Options{}.atol) oo.rtol = oo.atol = 1e-5;
  ode::Result r =
      ode::odeint(f, {sde.prior_sample(shape, gen, dtype, o.device)}, sde.T(), o.t_eps, oo);
  if (!r.ok())
    fail<ValueError>("sample_probability_flow: the ODE solve stopped: ",
                     ode::status_name(r.status));
  if (stats) *stats = r;
  return r.y[0];
}

}  // namespace sg
