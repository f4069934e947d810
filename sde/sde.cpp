// VP, sub-VP and VE SDEs (formulas beside each method; see sde.hpp).
#include "sde/sde.hpp"

#include <cmath>

#include "autodiff/core/error.hpp"
#include "autodiff/ops/ops.hpp"

namespace sg {

Tensor batch_view(const Tensor& t, const Tensor& y) {
  if (t.rank() == 0) return t;
  Shape s = Shape::filled(y.rank(), 1);
  s[0] = t.dim(0);
  return reshape(t, s);
}
Tensor Sde::prior_sample(const Shape& shape, Generator& gen, DType dtype, Device device) const {
  return randn(shape, gen, dtype, device) * prior_std();
}
// log N(y; 0, s^2 I) = -|y|^2 / (2 s^2) - D/2 log(2 pi s^2)
Tensor Sde::prior_logp(const Tensor& y) const {
  Shape axes;
  for (int d = 1; d < y.rank(); ++d) axes.push_back(d);
  const double D = static_cast<double>(y.numel() / y.dim(0)), s2 = prior_std() * prior_std();
  return sum(y * y, axes) * (-0.5 / s2) - 0.5 * D * std::log(2 * M_PI * s2);
}
Tensor Sde::perturb(const Tensor& x, const Tensor& t, const Tensor& eps) const {
  auto [alpha, std] = marginal(t);
  return batch_view(alpha, x) * x + batch_view(std, x) * eps;
}

VpSde::VpSde(double beta_min, double beta_max) : b0_(beta_min), b1_(beta_max) {
  if (!(std::isfinite(beta_min) && beta_min >= 0))
    fail<ValueError>("VpSde: beta_min must be finite and >= 0, got ", beta_min);
  if (!(std::isfinite(beta_max) && beta_max > 0))
    fail<ValueError>("VpSde: beta_max must be finite and > 0, got ", beta_max);
  if (beta_min > beta_max)
    fail<ValueError>("VpSde: beta_min (", beta_min, ") must not exceed beta_max (", beta_max, ")");
}
// beta(t) = b0 + t (b1 - b0)
Tensor VpSde::beta(const Tensor& t) const { return t * (b1_ - b0_) + b0_; }
// B(t) = t b0 + t^2 (b1 - b0) / 2
Tensor VpSde::integral_beta(const Tensor& t) const { return t * b0_ + t * t * (0.5 * (b1_ - b0_)); }
// f = -beta(t) y / 2
Tensor VpSde::drift(const Tensor& y, const Tensor& t) const {
  return batch_view(beta(t), y) * y * -0.5;
}
Tensor VpSde::diffusion(const Tensor& t) const { return sqrt(beta(t)); }
// alpha = e^{-B/2}, std = sqrt(1 - e^{-B}) (computed as sqrt(-expm1(-B)) for small t)
std::pair<Tensor, Tensor> VpSde::marginal(const Tensor& t) const {
  const Tensor B = integral_beta(t);
  return {exp(B * -0.5), sqrt(-expm1(-B))};
}
Tensor VpSde::drift_div_per_dim(const Tensor& t) const { return beta(t) * -0.5; }

// g^2 = beta (1 - e^{-2B})
Tensor SubVpSde::diffusion(const Tensor& t) const {
  return sqrt(beta(t) * -expm1(integral_beta(t) * -2.0));
}
// alpha = e^{-B/2}, std = 1 - e^{-B}
std::pair<Tensor, Tensor> SubVpSde::marginal(const Tensor& t) const {
  const Tensor B = integral_beta(t);
  return {exp(B * -0.5), -expm1(-B)};
}

VeSde::VeSde(double sigma_min, double sigma_max) : s0_(sigma_min), s1_(sigma_max) {
  if (!(std::isfinite(sigma_min) && sigma_min > 0))
    fail<ValueError>("VeSde: sigma_min must be finite and > 0, got ", sigma_min);
  if (!(std::isfinite(sigma_max) && sigma_max > 0))
    fail<ValueError>("VeSde: sigma_max must be finite and > 0, got ", sigma_max);
  if (!(sigma_min < sigma_max))
    fail<ValueError>("VeSde: sigma_min (", sigma_min, ") must be below sigma_max (", sigma_max,
                     ")");
}
// sigma(t) = s0 (s1 / s0)^t
Tensor VeSde::sigma(const Tensor& t) const { return exp(t * std::log(s1_ / s0_)) * s0_; }
Tensor VeSde::drift(const Tensor& y, const Tensor&) const { return zeros_like(y); }
Tensor VeSde::diffusion(const Tensor& t) const {
  return sigma(t) * std::sqrt(2 * std::log(s1_ / s0_));
}
std::pair<Tensor, Tensor> VeSde::marginal(const Tensor& t) const {
  return {ones_like(t), sigma(t)};
}
Tensor VeSde::drift_div_per_dim(const Tensor& t) const { return zeros_like(t); }

std::unique_ptr<Sde> make_sde(const std::string& name) {
  if (name == "vp") return std::make_unique<VpSde>();
  if (name == "subvp") return std::make_unique<SubVpSde>();
  if (name == "ve") return std::make_unique<VeSde>();
  fail<ValueError>("unknown SDE '", name, "' (vp, subvp, ve)");
}

}  // namespace sg
