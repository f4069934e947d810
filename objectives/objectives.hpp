// Score-matching objectives: each a small function over a score (or energy) function, data
// and a generator, returning a scalar loss differentiable in the parameters (second order
// through the tape where the objective itself differentiates the model). Losses sum over a
// sample's dimensions and average over the batch (axis 0). Formula, estimator and
// expectation are stated beside each one.
//
//   auto s = [&](const sg::Tensor& x) { return net(x, t); };
//   auto l1 = sg::obj::ssm(s, x, gen, {.projection = sg::obj::Projection::rademacher});
//   auto l2 = sg::obj::dsm(s, x, /*sigma=*/0.1, gen);
#pragma once
#include <functional>

#include "autodiff/core/rng.hpp"
#include "autodiff/core/tensor.hpp"
#include "sde/sde.hpp"

namespace sg::obj {

using ScoreFn = std::function<Tensor(const Tensor& x)>;  // [B, ...] -> [B, ...]
using TimeScoreFn = std::function<Tensor(const Tensor& x, const Tensor& t)>;  // t: [B]
using EnergyFn = std::function<Tensor(const Tensor& x)>;                      // [B, ...] -> [B]

// Every tensor an objective builds (projections, noise, times, basis vectors) lies on the data's
// device, so a model whose parameters live there trains there; the draws equal the CPU's for
// the same generator.

// Sum over every axis but the batch axis: [B, ...] -> [B].
Tensor per_sample(const Tensor& x);

// s(x) = -dE/dx (recorded when grad mode is on, so losses on it train E).
ScoreFn score_of_energy(EnergyFn energy);

// Explicit SM:  E_x ½ |s(x) - grad log p(x)|^2, against a known score.
Tensor explicit_sm(const ScoreFn& s, const Tensor& x, const Tensor& true_score);

// Implicit (Hyvarinen) SM:  E_x [½ |s(x)|^2 + tr ds/dx], exact trace (D backward passes).
// Equals explicit SM minus ½ E|grad log p|^2, a constant in the parameters.
Tensor implicit_sm(const ScoreFn& s, const Tensor& x);
Tensor implicit_sm_per_sample(const ScoreFn& s, const Tensor& x);  // [B], before the batch mean

// Projection distributions and their second moments E[v v^T]:
// gaussian N(0, I): I;  rademacher {+-1}^D: I;  sphere (unit-norm, as in the SSM code): I / D.
enum class Projection { gaussian, rademacher, sphere };
Tensor draw_projection(Projection p, const Tensor& like, Generator& gen);
// `projections` draws for each sample of x: [B, ...] for 1, [P, B, ...] otherwise.
Tensor draw_projections(Projection p, const Tensor& x, int projections, Generator& gen);

struct SsmOptions {
  Projection projection = Projection::rademacher;
  int projections = 1;            // independent projections per sample, averaged
  bool variance_reduced = false;  // SSM-VR: ½|s|^2 in closed form instead of ½(v^T s)^2
};
// SSM:     E_x E_v [v^T (ds/dx) v + ½ (v^T s)^2]
// SSM-VR:  E_x E_v [v^T (ds/dx) v] + ½ |s|^2   (needs E[v v^T] = I; with sphere v the first
//          term is tr/D while ½|s|^2 is not divided, so VR is only offered for gaussian and
//          rademacher projections)
// Expectation over v: implicit SM, or implicit SM / D for sphere projections.
Tensor ssm(const ScoreFn& s, const Tensor& x, Generator& gen, SsmOptions o = {});
// The same with the projections given ([P, B, ...] or [B, ...]).
Tensor ssm_with(const ScoreFn& s, const Tensor& x, const Tensor& v, bool variance_reduced = false);
Tensor ssm_per_sample(const ScoreFn& s, const Tensor& x, Generator& gen, SsmOptions o = {});
Tensor ssm_per_sample_with(const ScoreFn& s, const Tensor& x, const Tensor& v,
                           bool variance_reduced = false);

// FD-SSM for energies (Pang et al. 2020), v uniform on the sphere of radius eps:
//   (D / eps^2) E[ ⅛ (E(x+v) - E(x-v))^2 + 2E(x) - E(x+v) - E(x-v) ]
// one batched forward on [x, x+v, x-v], no second-order graph. Expands to
// (D/eps^2)[½ (v^T s)^2 + v^T (ds/dx) v] + O(eps^2): expectation implicit SM + O(eps^2),
// exactly SSM with unit-sphere projections times D when E is quadratic.
Tensor fd_ssm_energy(const EnergyFn& energy, const Tensor& x, Generator& gen, double eps = 0.1);
Tensor fd_ssm_energy_with(const EnergyFn& energy, const Tensor& x, const Tensor& v);  // |v| = eps
// FD-SSM for score networks (variance-reduced form), v on the sphere of radius eps:
//   E[ ⅛ |s(x+v) + s(x-v)|^2 + (D / (2 eps^2)) (s(x+v) - s(x-v))^T v ]
// -> E[½ |s|^2 + tr ds/dx] + O(eps^2); one batched forward on [x+v, x-v].
Tensor fd_ssm_score(const ScoreFn& s, const Tensor& x, Generator& gen, double eps = 0.1);
Tensor fd_ssm_score_with(const ScoreFn& s, const Tensor& x, const Tensor& v);
Tensor fd_ssm_score_per_sample(const ScoreFn& s, const Tensor& x, Generator& gen, double eps = 0.1);
Tensor fd_ssm_score_per_sample_with(const ScoreFn& s, const Tensor& x, const Tensor& v);
// FD-DSM for energies: x~ = x + sigma z, v on the sphere of radius eps sqrt(D):
//   E[ (sigma ½ (log p(x~+v) - log p(x~-v)) + v^T z)^2 ] / (2 eps^2)
// -> E ½ |sigma s(x~) + z|^2, the sigma^2-weighted DSM below (one batched forward).
Tensor fd_dsm_energy(const EnergyFn& energy, const Tensor& x, double sigma, Generator& gen,
                     double eps = 1e-3);

// DSM (Vincent 2011) at one noise level, x~ = x + sigma z:
//   E ½ lambda |s(x~) + z / sigma|^2,  lambda = sigma^weight_power (2: ½|sigma s + z|^2).
// Equals explicit SM on the noised data q_sigma plus a constant in the parameters.
Tensor dsm(const ScoreFn& s, const Tensor& x, double sigma, Generator& gen,
           double weight_power = 2);
Tensor dsm_with(const ScoreFn& s, const Tensor& x, double sigma, const Tensor& z,
                double weight_power = 2);

// Noise-conditional DSM (NCSN): a level sigma_i per sample, uniform over `sigmas` ([L]),
// weight sigma_i^2:  E_i E ½ |sigma_i s(x~, sigma_i) + z|^2. s receives sigma as [B].
Tensor ncsn_dsm(const TimeScoreFn& s, const Tensor& x, const Tensor& sigmas, Generator& gen);
// Geometric noise levels sigma_begin ... sigma_end (NCSN), on `device`; ncsn_dsm needs them on
// the data's device (DeviceError otherwise).
Tensor geometric_sigmas(double sigma_begin, double sigma_end, int64_t levels,
                        DType dtype = DType::f32, Device device = {});

// Continuous-time DSM over an SDE, x_t = alpha(t) x + std(t) z:
//   (1 / (T - t_eps)) int_{t_eps}^{T} lambda(t) E ½ |s(x_t, t) + z / std(t)|^2 dt
// lambda(t) = std(t)^2 (variance weighting, the score_sde default) or g(t)^2 (likelihood
// weighting, the -ELBO's score-matching term). Time is uniform on [t_eps, T] or importance-
// sampled (sample_importance_time) from q(t) proportional to g^2 / std^2 on [t_eps, T]; the
// estimator divides by q, so it is unbiased for the same integral: weight lambda / (std^2 q
// (T - t_eps)), for likelihood weighting the constant int_{t_eps}^{T} (g^2/std^2) / (T - t_eps).
enum class Weighting { variance, likelihood };
enum class TimeSampling { uniform, importance };
struct SdeDsmOptions {
  Weighting weighting = Weighting::variance;
  TimeSampling sampling = TimeSampling::uniform;
  double t_eps = 1e-5;
};
Tensor dsm_sde(const TimeScoreFn& s, const Sde& sde, const Tensor& x, Generator& gen,
               SdeDsmOptions o = {});

// Draws t in [t_eps, T] from q(t) proportional to g(t)^2 / std(t)^2 and returns (t, q(t)), both
// on `device`: Huang's time density (HuangTimeSampler, time_sampler.hpp, exact inverse CDF for
// VP, sub-VP and VE) conditioned on [t_eps, T], the range the estimators integrate over. t_eps
// must lie in (0, T) (ValueError: the density is not integrable down to 0 for VP). The whole
// density over [0, T], flat below t_eps, is HuangTimeSampler::sample.
std::pair<Tensor, Tensor> sample_importance_time(const Sde& sde, int64_t n, double t_eps,
                                                 Generator& gen, DType dtype = DType::f32,
                                                 Device device = {});

}  // namespace sg::obj
