// Forward (noising) SDEs dY = f(Y, t) dt + g(t) dB with closed-form Gaussian marginals
// q(y_t | x) = N(alpha(t) x, std(t)^2 I): VP, sub-VP and VE, as in score_sde (sde_lib.py).
// Times are float64 scalars; tensors take the state's dtype and device (every method builds
// its results on its tensor arguments' device; prior_sample, which has none, takes one).
//
//   sg::VpSde sde;                                  // beta_min 0.1, beta_max 20, T = 1
//   auto [alpha, std] = sde.marginal(t);            // t: [B] tensor -> [B], [B]
//   auto xt = alpha[:,None] x + std[:,None] eps;
#pragma once
#include <memory>
#include <string>
#include <utility>

#include "autodiff/core/rng.hpp"
#include "autodiff/core/tensor.hpp"

namespace sg {

class Sde {
 public:
  virtual ~Sde() = default;
  virtual std::string name() const = 0;
  double T() const { return 1.0; }
  // f(y, t) for t: [B] (or a scalar tensor), y: [B, ...].
  virtual Tensor drift(const Tensor& y, const Tensor& t) const = 0;
  // g(t), shape of t.
  virtual Tensor diffusion(const Tensor& t) const = 0;
  // alpha(t) and std(t) of q(y_t | x) = N(alpha x, std^2 I), each of t's shape.
  virtual std::pair<Tensor, Tensor> marginal(const Tensor& t) const = 0;
  // Divergence of the drift, div_y f(y, t) = c(t) D for the linear drifts here: returns c(t).
  virtual Tensor drift_div_per_dim(const Tensor& t) const = 0;
  // The prior p_T: N(0, prior_std^2 I).
  virtual double prior_std() const = 0;
  // A draw from p_T on `device` (the CPU by default); the same numbers on every device.
  Tensor prior_sample(const Shape& shape, Generator& gen, DType dtype = DType::f32,
                      Device device = {}) const;
  // log N(y; 0, prior_std^2 I) summed over all axes but the first: [B].
  Tensor prior_logp(const Tensor& y) const;
  // y_t = alpha(t) x + std(t) eps, with t broadcast over x's trailing axes.
  Tensor perturb(const Tensor& x, const Tensor& t, const Tensor& eps) const;
};

// Variance preserving: beta(t) = b0 + t (b1 - b0), f = -beta y / 2, g = sqrt(beta),
// alpha = exp(-B/2), std^2 = 1 - e^-B, B(t) = t b0 + t^2 (b1 - b0) / 2.
// Needs 0 <= beta_min <= beta_max, beta_max > 0, both finite (ValueError naming the argument).
class VpSde : public Sde {
 public:
  explicit VpSde(double beta_min = 0.1, double beta_max = 20.0);
  std::string name() const override { return "vp"; }
  Tensor drift(const Tensor& y, const Tensor& t) const override;
  Tensor diffusion(const Tensor& t) const override;
  std::pair<Tensor, Tensor> marginal(const Tensor& t) const override;
  Tensor drift_div_per_dim(const Tensor& t) const override;
  double prior_std() const override { return 1.0; }
  Tensor beta(const Tensor& t) const;
  Tensor integral_beta(const Tensor& t) const;  // B(t)
  double beta_min() const { return b0_; }
  double beta_max() const { return b1_; }

 protected:
  double b0_, b1_;
};

// sub-VP: the VP drift with g^2 = beta (1 - e^{-2B}) and std = 1 - e^{-B} (not a square root).
class SubVpSde : public VpSde {
 public:
  using VpSde::VpSde;
  std::string name() const override { return "subvp"; }
  Tensor diffusion(const Tensor& t) const override;
  std::pair<Tensor, Tensor> marginal(const Tensor& t) const override;
};

// Variance exploding: sigma(t) = s0 (s1/s0)^t, f = 0, g = sigma(t) sqrt(2 ln(s1/s0)),
// alpha = 1, std = sigma(t) (data taken as pre-smoothed by s0, as in score_sde).
// Needs 0 < sigma_min < sigma_max, both finite (ValueError naming the argument).
class VeSde : public Sde {
 public:
  explicit VeSde(double sigma_min = 0.01, double sigma_max = 50.0);
  std::string name() const override { return "ve"; }
  Tensor drift(const Tensor& y, const Tensor& t) const override;
  Tensor diffusion(const Tensor& t) const override;
  std::pair<Tensor, Tensor> marginal(const Tensor& t) const override;
  Tensor drift_div_per_dim(const Tensor& t) const override;
  double prior_std() const override { return s1_; }
  Tensor sigma(const Tensor& t) const;

 private:
  double s0_, s1_;
};

std::unique_ptr<Sde> make_sde(const std::string& name);  // "vp", "subvp", "ve" with defaults

// t of shape [B] viewed so that it broadcasts against y [B, ...].
Tensor batch_view(const Tensor& t, const Tensor& y);

}  // namespace sg
