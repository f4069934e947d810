// Huang, Lim & Courville's importance-sampled time (spec 1.3, 1.6; sdeflow-light's
// `sample_debiasing_t`): the debiasing density over the whole of [0, T],
//
//   q(t) = r(t) / Z           for t_eps <= t <= T,   r(t) = g(t)^2 / std(t)^2
//   q(t) = r(t_eps) / Z       for 0 <= t < t_eps     (flat: r ~ 1/t is not integrable at 0)
//   Z    = r(t_eps) t_eps + int_{t_eps}^{T} r(t) dt,
//
// with g and std the SDE's own diffusion and marginal std. Its CDF is
//   F(t) = r(t_eps) t / Z                                     (t <= t_eps)
//   F(t) = (r(t_eps) t_eps + R(t) - R(t_eps)) / Z,  R' = r    (t >= t_eps)
// and t = F^-1(u) inverts it. With B(t) = int_0^t beta, R in closed form:
//   VP      r = beta / (1 - e^-B)                R = log(e^B - 1) = B + log(1 - e^-B)
//           R^-1(v): B = log(1 + e^v), t = 2B / (b0 + sqrt(b0^2 + 2 (b1 - b0) B))
//   sub-VP  r = beta (1 + e^-B) / (1 - e^-B)     R = B + 2 log(1 - e^-B) = 2 log(2 sinh(B/2))
//           R^-1(v): B = 2 asinh(e^{v/2} / 2), t as for VP
//   VE      r = 2 ln(s1/s0), a constant (scoregrad's std is sigma(t), not the exact
//           sqrt(sigma^2 - s0^2) that sdeflow-light's VE sampler uses): q = 1/T, uniform
// For VP with b0 = 0.1, b1 = 20, T = 1, t_eps = 1e-3: Z = 20.2559423097, F^-1(0.5) = 0.2515765254.
// Any other Sde (a subclass of these included) gets R by Gauss-Legendre quadrature in log t on
// panels refined until Z changes by under 1e-14 relative, and F^-1 by safeguarded Newton on the
// same quadrature, so F(F^-1(u)) = u to rounding either way. That path evaluates the SDE
// through this sampler's life: the SDE must outlive it.
//
//   sg::obj::HuangTimeSampler q(sde, 1e-3);
//   double p = q.density(0.25), u = q.cdf(0.25), t = q.inverse_cdf(0.5);
//   auto [t, qt] = q.sample(n, gen, x.dtype(), x.device());  // t ~ q on [0, T], and q(t)
//
// Estimators of an integral over [t_eps, T] (dsm_sde, the ELBO, the registry's objectives)
// draw through sample_importance_time: q conditioned on [t_eps, T], which is g^2/std^2
// normalised there. The flat piece holds mass r(t_eps) t_eps / Z (about 1/Z for VP: 5% at
// t_eps = 1e-3) and would enter such an integral with weight 0; sdeflow-light's training loss
// does use draws there, unweighted, which is sample() with the loss left unweighted.
#pragma once
#include <utility>
#include <vector>

#include "autodiff/core/rng.hpp"
#include "autodiff/core/tensor.hpp"
#include "sde/sde.hpp"

namespace sg::obj {

class HuangTimeSampler {
 public:
  // t_eps in (0, T), finite (ValueError naming HuangTimeSampler and t_eps); a density that is
  // not finite and positive on [t_eps, T] is a ValueError naming the SDE.
  HuangTimeSampler(const Sde& sde, double t_eps);

  double T() const { return T_; }
  double t_eps() const { return t_eps_; }
  double normalizer() const { return Z_; }  // Z above
  bool closed_form() const { return kind_ != Kind::quadrature; }
  // r(t) = g^2 / std^2 of the SDE (unflattened, unnormalised), t in (0, T].
  double rate(double t) const;

  // q(t): 0 outside [0, T]. cdf: 0 below 0, 1 above T. inverse_cdf: u in [0, 1], t in [0, T].
  // A NaN t or a u outside [0, 1] is a ValueError naming the method and the argument.
  double density(double t) const;
  double cdf(double t) const;
  double inverse_cdf(double u) const;
  std::vector<double> density(const std::vector<double>& t) const;
  std::vector<double> cdf(const std::vector<double>& t) const;
  std::vector<double> inverse_cdf(const std::vector<double>& u) const;
  // The same elementwise on a tensor, computed on the host in float64, returned in t's dtype
  // and on t's device.
  Tensor density(const Tensor& t) const;
  Tensor cdf(const Tensor& t) const;
  Tensor inverse_cdf(const Tensor& u) const;

  // n draws t = F^-1(u), u uniform (one float64 draw of n from gen, on the host), and q(t):
  // both [n], on `device` (the same numbers on every device).
  std::pair<Tensor, Tensor> sample(int64_t n, Generator& gen, DType dtype = DType::f32,
                                   Device device = {}) const;
  // q conditioned on [lo, hi] (0 <= lo < hi <= T): t = F^-1(F(lo) + u (F(hi) - F(lo))) and its
  // density q(t) / (F(hi) - F(lo)).
  std::pair<Tensor, Tensor> sample_between(double lo, double hi, int64_t n, Generator& gen,
                                           DType dtype = DType::f32, Device device = {}) const;

 private:
  enum class Kind { vp, subvp, ve, quadrature };
  // R(t) - R(t_eps) for t in [t_eps, T], and its inverse on [0, R(T) - R(t_eps)].
  std::vector<double> integral(const std::vector<double>& t) const;
  std::vector<double> inverse_integral(const std::vector<double>& v) const;
  std::vector<double> rates(const std::vector<double>& t) const;
  void build_table();

  const Sde* sde_;
  Kind kind_;
  double T_, t_eps_;
  double b0_ = 0, b1_ = 0, ve_rate_ = 0;  // VP / sub-VP beta, VE's constant r
  double r_eps_ = 0, R_eps_ = 0, Z_ = 0;  // r(t_eps), R(t_eps) (closed forms), Z
  // Quadrature: panel edges in log t from log t_eps to log T and the integral of r up to each.
  std::vector<double> edges_, cum_;
};

}  // namespace sg::obj
