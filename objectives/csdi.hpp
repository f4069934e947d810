// CSDI (Tashiro et al. 2021; spec/math.md section 5): self-supervised training masks (random
// ratio, historical, mix), the DDPM noise schedule (quad, N = 50), the masked epsilon loss and
// ancestral sampling of only the target entries, given a denoiser eps(input, cond_mask, n) such
// as nn::CsdiNet. Tables are [B, K, L] (K features, L time points); masks are bool or 0/1 float.
//
//   sg::Generator gen(0);
//   auto sched = sg::obj::csdi_quad_schedule();                           // N = 50
//   auto eps = sg::obj::csdi_denoiser(net);
//   sg::Tensor cond = sg::obj::csdi_training_mask(observed, sg::obj::CsdiMask::random, gen);
//   sg::Tensor loss = sg::obj::csdi_loss(eps, x0, observed, cond, sched, gen);
//   sg::Tensor s = sg::obj::csdi_impute(eps, x0, cond, sched, 100, gen);  // [100, B, K, L]
//
// Everything built here (masks, steps, noise, schedule tensors) lies on the data's device; the
// draws equal the CPU's for the same generator.
#pragma once
#include <functional>
#include <vector>

#include "autodiff/sg.hpp"
#include "nn/csdi.hpp"

namespace sg::obj {

// ---- training masks (the conditioning set cond, a subset of observed; target = observed - cond)
enum class CsdiMask { random, historical, mix };
// Per sample b: r ~ U(0,1), hide round(r * n_obs(b)) of its observed entries chosen uniformly
// without replacement (the largest of i.i.d. uniforms, as CSDI's topk); cond = the rest.
Tensor csdi_random_mask(const Tensor& observed, Generator& gen);
// cond[b] = observed[b] * pattern[b - 1 mod B] (another sample's pattern; pattern defaults to
// observed, as CSDI's get_hist_mask). Deterministic.
Tensor csdi_historical_mask(const Tensor& observed, const Tensor& pattern = {});
// random / historical / mix (per sample u ~ U(0,1): random when u > 1/2, else historical).
// Result: observed's shape, dtype and device.
Tensor csdi_training_mask(const Tensor& observed, CsdiMask strategy, Generator& gen,
                          const Tensor& pattern = {});

// ---- DDPM schedule
struct DdpmSchedule {
  std::vector<double> beta, alpha, alpha_bar;  // alpha = 1 - beta, alpha_bar = prod alpha
  int64_t steps() const { return int64_t(beta.size()); }
};
// beta_n = linspace(sqrt(beta_start), sqrt(beta_end), N)_n^2 (CSDI's "quad")
DdpmSchedule csdi_quad_schedule(int64_t steps = 50, double beta_start = 1e-4,
                                double beta_end = 0.5);
// beta_n = linspace(beta_start, beta_end, N)_n (CSDI's "linear")
DdpmSchedule csdi_linear_schedule(int64_t steps = 50, double beta_start = 1e-4,
                                  double beta_end = 0.5);

// eps_theta(input [B, 2, K, L], cond_mask [B, K, L], step int64 [B]) -> [B, K, L]
using CsdiDenoiser =
    std::function<Tensor(const Tensor& input, const Tensor& cond_mask, const Tensor& step)>;
CsdiDenoiser csdi_denoiser(const nn::CsdiNet& net);  // the net must outlive the function

// ---- the masked epsilon loss, n ~ U{0..N-1}, eps ~ N(0, I), x_n = sqrt(ab_n) x0 + sqrt(1-ab_n)
// eps:
//   L = sum(((eps - eps_theta([cond x0; (1-cond) x_n], cond, n)) * target)^2) / max(sum target, 1)
Tensor csdi_loss(const CsdiDenoiser& eps, const Tensor& x0, const Tensor& observed,
                 const Tensor& cond_mask, const DdpmSchedule& s, Generator& gen);
// The same with the steps (int64 [B]) and the noise ([B, K, L]) given.
Tensor csdi_loss_with(const CsdiDenoiser& eps, const Tensor& x0, const Tensor& observed,
                      const Tensor& cond_mask, const DdpmSchedule& s, const Tensor& step,
                      const Tensor& noise);

// ---- ancestral sampling of the targets (observed conditioning values fed as the clean channel)
// One step n -> n-1 (0-based n; z omitted at n = 0):
//   x_{n-1} = (x_n - beta_n / sqrt(1 - ab_n) eps_theta) / sqrt(alpha_n) + sigma_n z,
//   sigma_n^2 = beta_n (1 - ab_{n-1}) / (1 - ab_n)
Tensor csdi_ancestral_step(const CsdiDenoiser& eps, const Tensor& x0, const Tensor& cond_mask,
                           const Tensor& x_n, int64_t n, const DdpmSchedule& s, Generator& gen);
// n_samples imputations per series: [S, B, K, L], equal to x0 exactly on cond_mask, drawn from
// x_N ~ N(0, I) by N ancestral steps elsewhere; `chunk` samples per batched pass (0: all).
// No gradients are recorded.
Tensor csdi_impute(const CsdiDenoiser& eps, const Tensor& x0, const Tensor& cond_mask,
                   const DdpmSchedule& s, int64_t n_samples, Generator& gen, int64_t chunk = 0);

}  // namespace sg::obj
