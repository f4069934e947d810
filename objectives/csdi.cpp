// CSDI's training masks, DDPM schedule, masked epsilon loss and ancestral imputation
// (objectives/csdi.hpp). Masks are computed on the host from counter-based draws (so they do
// not depend on the device) and placed on the data's device.
#include "objectives/csdi.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace sg::obj {
namespace {

Tensor csdi_bool(const Tensor& m) { return m.dtype() == DType::b8 ? m : (m > 0.5); }

void csdi_check_table(const char* what, const Tensor& x) {
  if (x.rank() != 3) fail<ShapeError>(what, ": ", describe(x), " is not [B, K, L]");
}

// A [B, ...] host mask back on `like`'s device, with its dtype.
Tensor csdi_host_mask(const std::vector<double>& v, const Tensor& like) {
  const DType dt = like.dtype() == DType::b8 ? DType::f64 : like.dtype();
  Tensor t = from_vector(v, like.shape(), dt, like.device());
  return like.dtype() == DType::b8 ? (t > 0.5) : t;
}

std::vector<double> csdi_uniforms(int64_t n, Generator& gen) {
  return rand({n}, gen, DType::f64).to_vector();
}

// Host values of the random-ratio mask (see csdi_random_mask); draws n then B*D uniforms.
std::vector<double> csdi_random_values(const std::vector<double>& obs, int64_t B, Generator& gen) {
  const int64_t D = int64_t(obs.size()) / B;
  const std::vector<double> ratio = csdi_uniforms(B, gen), u = csdi_uniforms(B * D, gen);
  std::vector<double> cond(obs.size(), 0.0);
  std::vector<int64_t> idx;
  for (int64_t b = 0; b < B; ++b) {
    idx.clear();
    for (int64_t i = 0; i < D; ++i)
      if (obs[std::size_t(b * D + i)] != 0) idx.push_back(b * D + i);
    // hide = round(r * n_obs) observed entries with the largest uniforms (CSDI's topk)
    const auto hide = int64_t(std::llround(ratio[std::size_t(b)] * double(idx.size())));
    std::stable_sort(idx.begin(), idx.end(),
                     [&](int64_t a, int64_t c) { return u[std::size_t(a)] > u[std::size_t(c)]; });
    for (std::size_t j = std::size_t(hide); j < idx.size(); ++j) cond[std::size_t(idx[j])] = 1.0;
  }
  return cond;
}

std::vector<double> csdi_hist_values(const std::vector<double>& obs,
                                     const std::vector<double>& pattern, int64_t B) {
  const int64_t D = int64_t(obs.size()) / B;
  std::vector<double> cond(obs.size());
  for (int64_t b = 0; b < B; ++b) {
    const int64_t prev = (b + B - 1) % B;  // cond[b] = obs[b] * pattern[b - 1 mod B]
    for (int64_t i = 0; i < D; ++i)
      cond[std::size_t(b * D + i)] =
          (obs[std::size_t(b * D + i)] != 0 && pattern[std::size_t(prev * D + i)] != 0) ? 1 : 0;
  }
  return cond;
}

void csdi_check_mask(const Tensor& observed, const Tensor& pattern = {}) {
  if (observed.rank() < 1 || observed.dim(0) < 1)
    fail<ShapeError>("csdi training mask: observed ", describe(observed), " has no batch axis");
  if (pattern.defined() && pattern.shape() != observed.shape())
    fail<ShapeError>("csdi training mask: pattern ", describe(pattern), " is not shaped like ",
                     "observed ", describe(observed));
}

Tensor csdi_schedule_tensor(const std::vector<double>& v, const Tensor& like) {
  return from_vector(v, {int64_t(v.size())}, like.dtype(), like.device());
}

DdpmSchedule csdi_schedule_from(std::vector<double> beta) {
  DdpmSchedule s;
  double ab = 1.0;
  for (double b : beta) {
    if (!(b > 0.0 && b < 1.0)) fail<ValueError>("DDPM schedule: beta ", b, " is not in (0, 1)");
    s.alpha.push_back(1.0 - b);
    ab *= 1.0 - b;  // alpha_bar_n = prod_{m <= n} (1 - beta_m)
    s.alpha_bar.push_back(ab);
  }
  s.beta = std::move(beta);
  return s;
}

std::vector<double> csdi_linspace(double a, double b, int64_t n) {
  if (n < 2) fail<ValueError>("DDPM schedule: steps must be >= 2, got ", n);
  std::vector<double> v(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[std::size_t(i)] = a + (b - a) * double(i) / double(n - 1);
  return v;
}

}  // namespace

Tensor csdi_random_mask(const Tensor& observed, Generator& gen) {
  csdi_check_mask(observed);
  return csdi_host_mask(csdi_random_values(observed.to_vector(), observed.dim(0), gen), observed);
}

Tensor csdi_historical_mask(const Tensor& observed, const Tensor& pattern) {
  csdi_check_mask(observed, pattern);
  const std::vector<double> obs = observed.to_vector();
  const std::vector<double> pat = pattern.defined() ? pattern.to_vector() : obs;
  return csdi_host_mask(csdi_hist_values(obs, pat, observed.dim(0)), observed);
}

Tensor csdi_training_mask(const Tensor& observed, CsdiMask strategy, Generator& gen,
                          const Tensor& pattern) {
  if (strategy == CsdiMask::random) return csdi_random_mask(observed, gen);
  if (strategy == CsdiMask::historical) return csdi_historical_mask(observed, pattern);
  csdi_check_mask(observed, pattern);
  const int64_t B = observed.dim(0);
  const std::vector<double> obs = observed.to_vector();
  const std::vector<double> rnd = csdi_random_values(obs, B, gen);
  const std::vector<double> hist =
      csdi_hist_values(obs, pattern.defined() ? pattern.to_vector() : obs, B);
  const std::vector<double> choice = csdi_uniforms(B, gen);
  const std::size_t D = obs.size() / std::size_t(B);
  std::vector<double> cond(obs.size());
  for (std::size_t i = 0; i < obs.size(); ++i)  // per sample: random if u > 1/2, else historical
    cond[i] = choice[i / D] > 0.5 ? rnd[i] : hist[i];
  return csdi_host_mask(cond, observed);
}

DdpmSchedule csdi_quad_schedule(int64_t steps, double beta_start, double beta_end) {
  std::vector<double> b = csdi_linspace(std::sqrt(beta_start), std::sqrt(beta_end), steps);
  for (double& v : b) v *= v;  // beta_n = linspace(sqrt b0, sqrt b1, N)_n^2
  return csdi_schedule_from(std::move(b));
}

DdpmSchedule csdi_linear_schedule(int64_t steps, double beta_start, double beta_end) {
  return csdi_schedule_from(csdi_linspace(beta_start, beta_end, steps));
}

CsdiDenoiser csdi_denoiser(const nn::CsdiNet& net) {
  return [&net](const Tensor& input, const Tensor& cond, const Tensor& step) {
    return net(input, cond, step);
  };
}

Tensor csdi_loss_with(const CsdiDenoiser& eps, const Tensor& x0, const Tensor& observed,
                      const Tensor& cond_mask, const DdpmSchedule& s, const Tensor& step,
                      const Tensor& noise) {
  csdi_check_table("csdi_loss: x0", x0);
  if (observed.shape() != x0.shape() || cond_mask.shape() != x0.shape() ||
      noise.shape() != x0.shape() || step.rank() != 1 || step.dim(0) != x0.dim(0))
    fail<ShapeError>("csdi_loss: x0 ", describe(x0), ", observed ", describe(observed),
                     ", cond_mask ", describe(cond_mask), ", noise ", describe(noise),
                     " must be alike and step ", describe(step), " [B]");
  const int64_t B = x0.dim(0);
  const Tensor ab =
      reshape(index_select(csdi_schedule_tensor(s.alpha_bar, x0), 0, step), {B, 1, 1});
  const Tensor xn = sqrt(ab) * x0 + sqrt(1.0 - ab) * noise;  // x_n = sqrt(ab) x0 + sqrt(1-ab) eps
  const Tensor cond = csdi_bool(cond_mask);
  // target = observed and not cond, as 0/1 in the data's dtype
  const Tensor target = where(cond, zeros_like(x0), cast(csdi_bool(observed), x0.dtype()));
  const Tensor pred = eps(nn::csdi_input(x0, xn, cond), cond, step);
  const Tensor denom = maximum(sum(target), scalar(1.0, x0.dtype(), x0.device()));
  return sum(square((noise - pred) * target)) / denom;  // sum((eps - eps_theta) m)^2 / sum m
}

Tensor csdi_loss(const CsdiDenoiser& eps, const Tensor& x0, const Tensor& observed,
                 const Tensor& cond_mask, const DdpmSchedule& s, Generator& gen) {
  csdi_check_table("csdi_loss: x0", x0);
  const int64_t B = x0.dim(0), N = s.steps();
  std::vector<int64_t> n(static_cast<std::size_t>(B));  // n ~ U{0, ..., N-1}
  const std::vector<double> u = csdi_uniforms(B, gen);
  for (int64_t b = 0; b < B; ++b)
    n[std::size_t(b)] = std::min<int64_t>(N - 1, int64_t(u[std::size_t(b)] * double(N)));
  const Tensor step = from_indices(n, {B}, x0.device());
  const Tensor noise = randn_like(x0, gen);
  return csdi_loss_with(eps, x0, observed, cond_mask, s, step, noise);
}

Tensor csdi_ancestral_step(const CsdiDenoiser& eps, const Tensor& x0, const Tensor& cond_mask,
                           const Tensor& x_n, int64_t n, const DdpmSchedule& s, Generator& gen) {
  if (n < 0 || n >= s.steps())
    fail<ValueError>("csdi_ancestral_step: step ", n, " outside [0, ", s.steps(), ")");
  const int64_t B = x0.dim(0);
  const auto i = std::size_t(n);
  const Tensor step = from_indices(std::vector<int64_t>(std::size_t(B), n), {B}, x0.device());
  const Tensor e = eps(nn::csdi_input(x0, x_n, cond_mask), cond_mask, step);
  // (x_n - beta_n / sqrt(1 - ab_n) eps) / sqrt(alpha_n)
  Tensor x =
      (x_n - e * (s.beta[i] / std::sqrt(1.0 - s.alpha_bar[i]))) * (1.0 / std::sqrt(s.alpha[i]));
  if (n > 0) {  // + sigma_n z, sigma_n^2 = beta_n (1 - ab_{n-1}) / (1 - ab_n)
    const double sigma = std::sqrt(s.beta[i] * (1.0 - s.alpha_bar[i - 1]) / (1.0 - s.alpha_bar[i]));
    x = x + randn_like(x, gen) * sigma;
  }
  return x;
}

Tensor csdi_impute(const CsdiDenoiser& eps, const Tensor& x0, const Tensor& cond_mask,
                   const DdpmSchedule& s, int64_t n_samples, Generator& gen, int64_t chunk) {
  csdi_check_table("csdi_impute: x0", x0);
  if (cond_mask.shape() != x0.shape())
    fail<ShapeError>("csdi_impute: cond_mask ", describe(cond_mask), " is not shaped like x0 ",
                     describe(x0));
  if (n_samples < 1) fail<ValueError>("csdi_impute: n_samples must be >= 1, got ", n_samples);
  if (chunk < 0) fail<ValueError>("csdi_impute: chunk must be >= 0, got ", chunk);
  NoGradGuard no_grad;
  const int64_t B = x0.dim(0), K = x0.dim(1), L = x0.dim(2);
  const int64_t per = chunk == 0 ? n_samples : std::min(chunk, n_samples);
  const Tensor cond = csdi_bool(cond_mask);
  std::vector<Tensor> parts;
  for (int64_t done = 0; done < n_samples; done += per) {
    const int64_t m = std::min(per, n_samples - done);
    const Tensor xb = reshape(expand(unsqueeze(x0, 0), {m, B, K, L}), {m * B, K, L});
    const Tensor cb = reshape(expand(unsqueeze(cond, 0), {m, B, K, L}), {m * B, K, L});
    Tensor x = randn({m * B, K, L}, gen, x0.dtype(), x0.device());  // x_N ~ N(0, I)
    for (int64_t n = s.steps() - 1; n >= 0; --n) x = csdi_ancestral_step(eps, xb, cb, x, n, s, gen);
    parts.push_back(reshape(where(cb, xb, x), {m, B, K, L}));  // observed values kept exactly
  }
  return parts.size() == 1 ? parts[0] : concat(parts, 0);
}

}  // namespace sg::obj
