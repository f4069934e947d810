// The Variational Diffusion Model loss (Kingma, Salimans, Poole & Ho 2021): the negative VLB of
// discrete data in nats, its gradients with the variance-minimising schedule gradient, and the
// ancestral sampler. Owns the encoder/decoder, the prior, reconstruction and diffusion terms in
// discrete and continuous time, antithetic time sampling and the base-2 Fourier features.
// Derivations: docs/vdm.md.
//
//   sg::obj::LearnedEndpointsSchedule gamma({}, gen);
//   sg::nn::MlpScoreNet net(D, {...}, gen);                 // receives (z, c), c in [0, 1]
//   auto fn = [&](const sg::Tensor& z, const sg::Tensor& c) { return net(z, c); };
//   auto step = sg::obj::vdm_value_and_grad(gamma, fn, net.parameters(), x, gen, {.levels = 17});
//   // step.loss (nats per example), step.net_grads, step.schedule_grads (for optimizers)
//
// Data x are the integer levels 0 .. levels-1 held in a floating tensor [B, ...] (8-bit images:
// 256, the 8x8 digits: 17); encoded as f = 2 (x + 1/2) / levels - 1. All terms are per example
// ([B], summed over a sample's dimensions), so the batch gives their mean and standard error.
//
// The network. A TimeScoreFn net(z_in, c) returning a tensor of z's shape:
//   eps_hat = net(z_in, c) + z      (the base-measure skip; without it eps_hat = net(z_in, c))
// z_in = z, or [z, sin(2^n 2 pi z), cos(2^n 2 pi z)] concatenated on axis 1 (Fourier features,
// n in [fourier_min, fourier_max)), and c the conditioning: by default the normalised gamma
// c = (gamma_t - gamma_min) / (gamma_max - gamma_min) of the schedule's configured range (in
// [0, 1] for the fixed schedule, so a network built for t in [0, 1] plugs in), or gamma_t
// itself, or t. Conditioning on gamma (not t) is what makes the continuous VLB depend on the
// schedule only through its endpoints, for any network.
#pragma once
#include <vector>

#include "objectives/objectives.hpp"
#include "objectives/vdm_schedule.hpp"

namespace sg::obj {

enum class VdmConditioning { normalized_gamma, gamma, time };
// How the schedule's parameters are trained (vdm_value_and_grad):
//   vlb       every parameter on the gradient of the loss (as the public VDM code);
//   variance  the interior (NoiseSchedule::is_interior) on the gradient of the diffusion
//             estimator's second moment E[L_diff^2], the rest on the loss (the paper);
//             needs continuous time and gamma conditioning (ValueError otherwise);
//   automatic variance when that is valid and the schedule has interior parameters, else vlb.
enum class ScheduleGradient { automatic, vlb, variance };

struct VdmOptions {
  int64_t levels = 256;    // the data's levels (>= 2)
  int64_t timesteps = 0;   // T: 0 = continuous time, > 0 = T discrete steps
  bool antithetic = true;  // t_i = (u + i/B) mod 1, one u per batch; false: t_i i.i.d. U(0, 1)
  bool base_measure_skip = true;
  bool fourier_features = false;
  int fourier_min = 6, fourier_max = 8;  // exponents n: sin/cos(2^n 2 pi z), n in [min, max)
  VdmConditioning conditioning = VdmConditioning::normalized_gamma;
  ScheduleGradient schedule_gradient = ScheduleGradient::automatic;
};
// ValueError naming the field: levels >= 2, timesteps >= 0, 0 <= fourier_min < fourier_max <= 30.
void check_vdm_options(const VdmOptions& o);

// f = 2 (x + 1/2) / levels - 1 (x rounded to the nearest level first).
Tensor vdm_encode(const Tensor& x, int64_t levels);
// log p(k | z0) over the levels, [..., levels]: a factorised decoder with
// logits_k = -1/2 ((z0_rescaled - enc(k)) e^{-gamma_0 / 2})^2, z0_rescaled = z0 / alpha_0.
Tensor vdm_decoder_logprobs(const Tensor& z0_rescaled, const Tensor& gamma_0, int64_t levels);
// L_recon = -log p(x | z0) with z0 / alpha_0 = f + e^{gamma_0 / 2} eps0: [B].
Tensor vdm_reconstruction_loss(const Tensor& x, const Tensor& gamma_0, const Tensor& eps0,
                               int64_t levels);
// L_prior = KL(q(z1 | x) || N(0, I)) = 1/2 sum_i (alpha_1^2 f_i^2 + sigma_1^2 - log sigma_1^2 - 1).
Tensor vdm_prior_loss(const Tensor& f, const Tensor& gamma_1);
// [z, sin(w_n z) ..., cos(w_n z) ...] on axis 1, w_n = 2^n 2 pi for n in [min, max).
Tensor vdm_fourier_features(const Tensor& z, int min_exponent, int max_exponent);
// B times in [0, 1): antithetic (u + i/B) mod 1 or i.i.d.; on like's dtype and device.
Tensor vdm_times(int64_t B, bool antithetic, Generator& gen, const Tensor& like);

// L_diff for encoded (continuous) data f [B, ...], per example:
//   continuous  1/2 gamma'(t) |eps - eps_hat(z_t; gamma_t)|^2,      gamma' by forward mode
//   discrete    1/2 T expm1(gamma_t - gamma_s) |eps - eps_hat|^2,  t = i/T, i ~ U{1..T}, s = t -
//   1/T
// with z_t = alpha_t f + sigma_t eps. Expectation: the diffusion part of the -VLB.
Tensor vdm_diffusion_loss(const NoiseSchedule& schedule, const TimeScoreFn& net, const Tensor& f,
                          Generator& gen, const VdmOptions& o = {});

struct VdmTerms {
  Tensor prior, recon, diffusion;  // [B] nats each
  Tensor total() const;            // prior + recon + diffusion
};
// The three terms of -VLB(x) = L_prior + L_recon + L_diff for data levels x. Draws, in order:
// eps0 (recon), the times, eps (diffusion).
VdmTerms vdm_terms(const NoiseSchedule& schedule, const TimeScoreFn& net, const Tensor& x,
                   Generator& gen, const VdmOptions& o = {});
// Mean over the batch of the total, nats per example.
Tensor vdm_loss(const NoiseSchedule& schedule, const TimeScoreFn& net, const Tensor& x,
                Generator& gen, const VdmOptions& o = {});
// Bits per dimension of a per-example -VLB in nats over D dimensions: nats / (D ln 2), no offset
// (the data are modelled as discrete).
Tensor vdm_bits_per_dim(const Tensor& nats, int64_t dims);

// One training step's values and gradients.
struct VdmStep {
  VdmTerms terms;                      // per example
  Tensor loss;                         // mean total, nats per example
  std::vector<Tensor> net_grads;       // aligned with net_params
  std::vector<Tensor> schedule_grads;  // aligned with schedule.named_parameters()
  bool variance_gradient = false;      // whether the interior got the variance gradient
};
// d loss / d net_params and the schedule's gradients (see ScheduleGradient), from one reverse pass
// over the network; with the variance gradient a second reverse pass over the schedule alone
// turns the adjoints of gamma_t and gamma'(t) into
//   d/d eta mean_b L_diff,b^2 = mean_b 2 L_diff,b (dL_diff,b/d gamma_t,b dgamma_t,b/d eta +
//                                                 dL_diff,b/d gamma'_b dgamma'_b/d eta)
// (docs/vdm.md: E[L_diff] does not depend on eta, so this is the gradient of the variance). It
// assumes the network treats examples independently (no batch statistics). Undefined gradients:
// parameters the loss does not reach.
VdmStep vdm_value_and_grad(NoiseSchedule& schedule, const TimeScoreFn& net,
                           const std::vector<Tensor>& net_params, const Tensor& x, Generator& gen,
                           const VdmOptions& o = {});
// The same for the diffusion term alone on encoded data f (terms.prior and terms.recon zero).
VdmStep vdm_diffusion_value_and_grad(NoiseSchedule& schedule, const TimeScoreFn& net,
                                     const std::vector<Tensor>& net_params, const Tensor& f,
                                     Generator& gen, const VdmOptions& o = {});

// Ancestral sampling with `steps` steps (t = i/steps down to 0), from z_1 ~ N(0, I):
//   z_s = sqrt(alpha_s^2 / alpha_t^2) (z_t - sigma_t c eps_hat) + sqrt(sigma_s^2 c) eps,
//   c = -expm1(gamma_s - gamma_t),
// then the decoder's most likely level (the nearest encoded level of z_0 / alpha_0). Returns the
// levels as `dtype` on `device`, shape `shape` ([N, ...]). steps >= 1 (ValueError).
Tensor vdm_sample(const NoiseSchedule& schedule, const TimeScoreFn& net, const Shape& shape,
                  Generator& gen, const VdmOptions& o = {}, int64_t steps = 1000,
                  DType dtype = DType::f32, Device device = {});

// Closed forms for Gaussian data f ~ N(0, s^2 I_D) with the Bayes-optimal denoiser (docs/vdm.md
// section 3), the reference cases of the tests and identities.
// The optimal network behind the base-measure skip, conditioned on gamma (VdmConditioning::gamma):
// net(z, gamma) = eps_hat - z, eps_hat = z sigma / (alpha^2 s^2 + sigma^2).
TimeScoreFn vdm_gaussian_denoiser(double s);
// L_inf = (D/2) ln[(1 + e^{-gamma_0} s^2) / (1 + e^{-gamma_1} s^2)], any schedule with these ends.
double vdm_gaussian_continuous_loss(double gamma_0, double gamma_1, double s, int64_t dims);
// L_T = 1/2 sum_{i=1}^T (SNR(s_i) - SNR(t_i)) D s^2 / (1 + SNR(t_i) s^2), t_i = i/T, s_i = t_i -
// 1/T.
double vdm_gaussian_discrete_loss(const NoiseSchedule& schedule, int64_t T, double s, int64_t dims);
// E[L_diff^2] = 1/4 (D^2 + 2D) int_0^1 gamma'^2 m^2 dt, m = SNR s^2 / (1 + SNR s^2) (composite
// Simpson on `points` times, odd); >= (1 + 2/D) L_inf^2 for every schedule.
double vdm_gaussian_second_moment(const NoiseSchedule& schedule, double s, int64_t dims,
                                  int64_t points = 4001);

// The VDM identities for `scoregrad verify` (objectives/identities_vdm.cpp; identities.hpp).
struct Identity;
std::vector<Identity> vdm_identities();

}  // namespace sg::obj
