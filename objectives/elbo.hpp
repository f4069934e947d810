// The ELBO of the plug-in reverse SDE (Huang, Lim & Courville 2021), the variational view of
// diffusion: the generative SDE dX = [g a - f](X, T - t) dt + g dB with a = g s_theta, and the
// inference SDE = the forward noising SDE. Per-sample, single-draw estimators (one time, one
// noised point, one probe per data point), so the batch gives their mean and standard error.
//
// Implicit (divergence) form, t ~ q on [t_eps, T]:
//   ELBO(x) = E[ log p0(y_T) - (1/q(t)) ( ½|a(y_t, t)|^2 + div mu(y_t, t) ) ],  mu = g a - f
// with y_t ~ q(y_t | x) and y_T a fresh draw from q(y_T | x) (as sdeflow-light computes it).
// Denoising form, truncated to [t_eps, T] (it diverges at 0):
//   ELBO_eps(x) = E[ log p0(y_T) - (1/q(t)) ½ (g^2 / std^2) |std s + z|^2 ] + C(t_eps),
//   C(t_eps) = D int_{t_eps}^{T} (½ g^2 / std^2 + div f / D) dt   (VP: (D/2) ln(var T / var t_eps))
// Both equal the same bound on [t_eps, T] in expectation; the implicit form's [0, t_eps] piece
// is dropped (O(t_eps)). With the exact score and prior q_T the bound is tight: log q0(x).
//
// Also the bound for a general pair (mu, sigma, a) on simulated inference paths, whose sigma -> 0
// limit with a = 0 is the CNF log-likelihood of dX = mu dt (the paper's CNF special case).
#pragma once
#include <functional>

#include "objectives/objectives.hpp"
#include "sde/sampling.hpp"

namespace sg::obj {

struct ElboOptions {
  double t_eps = 1e-5;
  TimeSampling sampling = TimeSampling::uniform;  // importance: q(t) proportional to g^2/std^2
  bool exact_divergence = false;                  // implicit form: exact trace instead of one probe
  Projection probe = Projection::rademacher;
  // log p0(y_T) per sample; default: the SDE's prior N(0, prior_std^2 I).
  std::function<Tensor(const Tensor& yT)> prior_logp;
};

Tensor elbo_implicit(const Sde& sde, const ScoreModelFn& s, const Tensor& x, Generator& gen,
                     ElboOptions o = {});
Tensor elbo_denoising(const Sde& sde, const ScoreModelFn& s, const Tensor& x, Generator& gen,
                      ElboOptions o = {});
// C(t_eps) above, by a tight 1-D ODE solve of the closed-form integrand.
double elbo_denoising_constant(const Sde& sde, int64_t dims, double t_eps);

// General pair on simulated paths (Euler-Maruyama, `steps` steps, inference time s in [0, T]):
//   ELBO(x) = E[ log p0(Y_T) - int_0^T ( ½|a|^2 + div mu )(Y_s, T - s) ds ],
//   dY = (-mu + sigma a)(Y, T - s) ds + sigma(T - s) dB.
using TimeField = std::function<Tensor(const Tensor& y, double t)>;
Tensor elbo_general(const TimeField& mu, const std::function<double(double)>& sigma,
                    const TimeField& a, const Tensor& x, double T, int64_t steps, Generator& gen);

struct MeanEstimate {
  double mean = 0, std_error = 0;
  int64_t n = 0;
};
MeanEstimate mean_and_std_error(const Tensor& per_sample);
// Bits per dimension of a per-sample log-likelihood in nats over D dimensions on data scaled
// to [0, 1) from K levels: -(logp + logdet) / (D ln 2) + log2 K  (logdet of any data transform).
Tensor bits_per_dim(const Tensor& logp, int64_t dims, double levels, const Tensor& logdet = {});

}  // namespace sg::obj
