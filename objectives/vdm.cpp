// The VDM loss, its gradients (with the variance-minimising schedule gradient) and the ancestral
// sampler (formulas in vdm.hpp, derivations in docs/vdm.md).
#include "objectives/vdm.hpp"

#include <cmath>
#include <numbers>

#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"

namespace sg::obj {
namespace {

void check_data(const char* op, const Tensor& x) {
  if (x.rank() < 2) fail<ShapeError>(op, ": data must be [batch, ...], got ", describe(x));
  if (!is_floating(x.dtype()))
    fail<DTypeError>(op, ": data must be floating (levels as values), got ", describe(x));
}
// enc(k) = 2 (k + 1/2) / K - 1 for k = 0 .. K-1: [K]
Tensor encoded_levels(int64_t K, const Tensor& like) {
  return (arange(K, like.dtype(), like.device()) + 0.5) * (2.0 / double(K)) - 1.0;
}
Tensor conditioning(const NoiseSchedule& s, const Tensor& gamma_t, const Tensor& t,
                    VdmConditioning c) {
  switch (c) {
    case VdmConditioning::gamma:
      return gamma_t;
    case VdmConditioning::time:
      return t;
    case VdmConditioning::normalized_gamma:
      break;
  }
  return (gamma_t - s.gamma_min()) / (s.gamma_max() - s.gamma_min());
}
// eps_hat = net(z_in, c) (+ z)
Tensor predict_noise(const NoiseSchedule& s, const TimeScoreFn& net, const Tensor& z,
                     const Tensor& gamma_t, const Tensor& t, const VdmOptions& o) {
  const Tensor zin = o.fourier_features ? vdm_fourier_features(z, o.fourier_min, o.fourier_max) : z;
  const Tensor out = net(zin, conditioning(s, gamma_t, t, o.conditioning));
  if (!(out.shape() == z.shape()))
    fail<ShapeError>("vdm: the network returned ", describe(out), " for z ", describe(z),
                     " (it must predict the noise, of z's shape)");
  return o.base_measure_skip ? out + z : out;
}

// L_diff per example, with the schedule's outputs it was computed from.
struct DiffusionDraw {
  Tensor loss, gamma_t, dgamma;  // dgamma: continuous time only
};
DiffusionDraw diffusion_draw(const NoiseSchedule& s, const TimeScoreFn& net, const Tensor& f,
                             Generator& gen, const VdmOptions& o) {
  const int64_t B = f.dim(0), T = o.timesteps;
  Tensor t = vdm_times(B, o.antithetic, gen, f);
  DiffusionDraw d;
  Tensor gamma_s;
  if (T == 0) {
    std::tie(d.gamma_t, d.dgamma) = gamma_and_derivative(s, t);
  } else {
    // i = floor(u T) + 1 in {1 .. T}; t = i / T, s = (i - 1) / T
    const Tensor i =
        minimum(cast(cast(t * double(T), DType::i64), f.dtype()) + 1.0, full_like(t, double(T)));
    t = i / double(T);
    const Tensor g = s(concat({t, (i - 1.0) / double(T)}, 0));
    d.gamma_t = slice(g, 0, 0, B);
    gamma_s = slice(g, 0, B, 2 * B);
  }
  const Tensor eps = randn_like(f, gen);
  const Tensor gv = batch_view(d.gamma_t, f);
  const Tensor z = sqrt(sigmoid(-gv)) * f + sqrt(sigmoid(gv)) * eps;  // alpha_t f + sigma_t eps
  const Tensor r = eps - predict_noise(s, net, z, d.gamma_t, t, o);
  const Tensor mse = per_sample(r * r);
  d.loss = T == 0 ? d.dgamma * mse * 0.5 : expm1(d.gamma_t - gamma_s) * mse * (0.5 * double(T));
  return d;
}

bool use_variance_gradient(const NoiseSchedule& s, const VdmOptions& o) {
  bool has_interior = false;
  for (const auto& [name, p] : const_cast<NoiseSchedule&>(s).named_parameters())
    has_interior = has_interior || s.is_interior(name);
  const bool valid = o.timesteps == 0 && o.conditioning != VdmConditioning::time;
  switch (o.schedule_gradient) {
    case ScheduleGradient::vlb:
      return false;
    case ScheduleGradient::variance:
      if (o.timesteps != 0)
        fail<ValueError>(
            "vdm: schedule_gradient 'variance' needs continuous time (timesteps = 0, got ",
            o.timesteps, "): in discrete time the schedule's interior changes the VLB");
      if (o.conditioning == VdmConditioning::time)
        fail<ValueError>(
            "vdm: schedule_gradient 'variance' needs gamma conditioning: conditioned on t, the "
            "network makes the VLB depend on the schedule's interior");
      return has_interior;
    case ScheduleGradient::automatic:
      break;
  }
  return valid && has_interior;
}

VdmStep value_and_grad(NoiseSchedule& s, const TimeScoreFn& net,
                       const std::vector<Tensor>& net_params, const Tensor& data, bool encoded,
                       Generator& gen, const VdmOptions& o) {
  check_vdm_options(o);
  check_data("vdm_value_and_grad", data);
  VdmStep step;
  step.variance_gradient = use_variance_gradient(s, o);
  EnableGradGuard on;
  const Tensor f = encoded ? data : vdm_encode(data, o.levels);
  if (encoded) {
    step.terms.prior = step.terms.recon = zeros({data.dim(0)}, data.dtype(), data.device());
  } else {
    const auto [g0, g1] = s.endpoints(f);
    step.terms.recon = vdm_reconstruction_loss(data, g0, randn_like(f, gen), o.levels);
    step.terms.prior = vdm_prior_loss(f, g1);
  }
  const DiffusionDraw d = diffusion_draw(s, net, f, gen, o);
  step.terms.diffusion = d.loss;
  step.loss = mean(step.terms.total());

  // Pass 1 (reverse, through the network): the loss's gradient for the network and every
  // schedule parameter on the VLB, and, for the variance gradient, the adjoints of gamma_t and
  // gamma'(t) (total derivatives: an endpoint's gradient includes its path through gamma_t).
  const auto named = s.named_parameters();
  std::vector<Tensor> inputs = net_params;
  std::vector<size_t> vlb_slots, interior_slots;
  for (size_t k = 0; k < named.size(); ++k) {
    if (step.variance_gradient && s.is_interior(named[k].first)) {
      interior_slots.push_back(k);
    } else {
      vlb_slots.push_back(k);
      inputs.push_back(*named[k].second);
    }
  }
  if (step.variance_gradient) {
    inputs.push_back(d.gamma_t);
    inputs.push_back(d.dgamma);
  }
  const std::vector<Tensor> g = grad({step.loss}, inputs, {}, {.allow_unused = true});
  step.net_grads.assign(g.begin(), g.begin() + static_cast<std::ptrdiff_t>(net_params.size()));
  step.schedule_grads.resize(named.size());
  for (size_t j = 0; j < vlb_slots.size(); ++j)
    step.schedule_grads[vlb_slots[j]] = g[net_params.size() + j];
  if (step.variance_gradient) {
    // Pass 2 (reverse, through the schedule only): d/d eta mean_b L_b^2 = sum_b 2 L_b adj_b
    // dgamma_b/d eta, where adj_b = (1/B) dL_b/dgamma_b is pass 1's adjoint.
    const Tensor two_l = d.loss.detach() * 2.0;
    const Tensor adj_t = g[g.size() - 2], adj_d = g[g.size() - 1];
    std::vector<Tensor> eta;
    for (size_t k : interior_slots) eta.push_back(*named[k].second);
    const std::vector<Tensor> ge =
        grad({d.gamma_t, d.dgamma}, eta, {two_l * adj_t, two_l * adj_d}, {.allow_unused = true});
    for (size_t j = 0; j < interior_slots.size(); ++j)
      step.schedule_grads[interior_slots[j]] = ge[j];
  }
  return step;
}

}  // namespace

void check_vdm_options(const VdmOptions& o) {
  if (o.levels < 2) fail<ValueError>("vdm: levels must be >= 2, got ", o.levels);
  if (o.timesteps < 0)
    fail<ValueError>("vdm: timesteps must be >= 0 (0: continuous time), got ", o.timesteps);
  if (o.fourier_features &&
      !(0 <= o.fourier_min && o.fourier_min < o.fourier_max && o.fourier_max <= 30))
    fail<ValueError>("vdm: fourier_min, fourier_max must satisfy 0 <= min < max <= 30, got ",
                     o.fourier_min, ", ", o.fourier_max);
}

Tensor VdmTerms::total() const { return prior + recon + diffusion; }

// 2 (x + 1/2) / K - 1
Tensor vdm_encode(const Tensor& x, int64_t levels) {
  return (x + 0.5) * (2.0 / double(levels)) - 1.0;
}

// log_softmax_k(-1/2 ((z - enc(k)) e^{-gamma_0/2})^2)
Tensor vdm_decoder_logprobs(const Tensor& z0_rescaled, const Tensor& gamma_0, int64_t levels) {
  const Tensor d =
      (unsqueeze(z0_rescaled, -1) - encoded_levels(levels, z0_rescaled)) * exp(gamma_0 * -0.5);
  return log_softmax(d * d * -0.5, -1);
}

// -sum log p(x | z0), z0 / alpha_0 = f + e^{gamma_0/2} eps0
Tensor vdm_reconstruction_loss(const Tensor& x, const Tensor& gamma_0, const Tensor& eps0,
                               int64_t levels) {
  const Tensor f = vdm_encode(x, levels);
  const Tensor lp = vdm_decoder_logprobs(f + exp(gamma_0 * 0.5) * eps0, gamma_0, levels);
  // x's level as a mask: |enc(k) - f| < 1/K holds for k = x only (levels are 2/K apart)
  const Tensor hit =
      cast(abs(unsqueeze(f, -1) - encoded_levels(levels, f)) < 1.0 / double(levels), f.dtype());
  return -per_sample(sum(lp * hit, {-1}));
}

// 1/2 sum (alpha_1^2 f^2 + sigma_1^2 - log sigma_1^2 - 1)
Tensor vdm_prior_loss(const Tensor& f, const Tensor& gamma_1) {
  return per_sample(sigmoid(-gamma_1) * f * f + sigmoid(gamma_1) - log_sigmoid(gamma_1) - 1.0) *
         0.5;
}

// [z, sin(2^n 2 pi z) ..., cos(2^n 2 pi z) ...] on axis 1
Tensor vdm_fourier_features(const Tensor& z, int min_exponent, int max_exponent) {
  std::vector<Tensor> sins, coss;
  for (int n = min_exponent; n < max_exponent; ++n) {
    const Tensor h = z * (std::ldexp(1.0, n) * 2.0 * std::numbers::pi);
    sins.push_back(sin(h));
    coss.push_back(cos(h));
  }
  std::vector<Tensor> all{z};
  all.insert(all.end(), sins.begin(), sins.end());
  all.insert(all.end(), coss.begin(), coss.end());
  return concat(all, 1);
}

// (u + i/B) mod 1, or i.i.d. U(0, 1)
Tensor vdm_times(int64_t B, bool antithetic, Generator& gen, const Tensor& like) {
  if (!antithetic) return rand({B}, gen, like.dtype(), like.device());
  const Tensor t = rand({1}, gen, like.dtype(), like.device()) +
                   arange(B, like.dtype(), like.device()) * (1.0 / double(B));
  return where(t >= 1.0, t - 1.0, t);
}

Tensor vdm_diffusion_loss(const NoiseSchedule& schedule, const TimeScoreFn& net, const Tensor& f,
                          Generator& gen, const VdmOptions& o) {
  check_vdm_options(o);
  check_data("vdm_diffusion_loss", f);
  return diffusion_draw(schedule, net, f, gen, o).loss;
}

VdmTerms vdm_terms(const NoiseSchedule& schedule, const TimeScoreFn& net, const Tensor& x,
                   Generator& gen, const VdmOptions& o) {
  check_vdm_options(o);
  check_data("vdm_terms", x);
  const Tensor f = vdm_encode(x, o.levels);
  const auto [g0, g1] = schedule.endpoints(f);
  VdmTerms r;
  r.recon = vdm_reconstruction_loss(x, g0, randn_like(f, gen), o.levels);
  r.prior = vdm_prior_loss(f, g1);
  r.diffusion = diffusion_draw(schedule, net, f, gen, o).loss;
  return r;
}

Tensor vdm_loss(const NoiseSchedule& schedule, const TimeScoreFn& net, const Tensor& x,
                Generator& gen, const VdmOptions& o) {
  return mean(vdm_terms(schedule, net, x, gen, o).total());
}

// nats / (D ln 2)
Tensor vdm_bits_per_dim(const Tensor& nats, int64_t dims) {
  return nats / (double(dims) * std::numbers::ln2);
}

VdmStep vdm_value_and_grad(NoiseSchedule& schedule, const TimeScoreFn& net,
                           const std::vector<Tensor>& net_params, const Tensor& x, Generator& gen,
                           const VdmOptions& o) {
  return value_and_grad(schedule, net, net_params, x, false, gen, o);
}
VdmStep vdm_diffusion_value_and_grad(NoiseSchedule& schedule, const TimeScoreFn& net,
                                     const std::vector<Tensor>& net_params, const Tensor& f,
                                     Generator& gen, const VdmOptions& o) {
  return value_and_grad(schedule, net, net_params, f, true, gen, o);
}

// z_s = sqrt(alpha_s^2 / alpha_t^2) (z_t - sigma_t c eps_hat) + sqrt(sigma_s^2 c) eps
Tensor vdm_sample(const NoiseSchedule& schedule, const TimeScoreFn& net, const Shape& shape,
                  Generator& gen, const VdmOptions& o, int64_t steps, DType dtype, Device device) {
  check_vdm_options(o);
  if (steps < 1) fail<ValueError>("vdm_sample: steps must be >= 1, got ", steps);
  if (shape.rank() < 2) fail<ShapeError>("vdm_sample: shape must be [N, ...], got ", shape.str());
  NoGradGuard off;
  const int64_t N = shape[0];
  Tensor z = randn(shape, gen, dtype, device);
  for (int64_t i = 0; i < steps; ++i) {
    const double t = double(steps - i) / double(steps), s = double(steps - i - 1) / double(steps);
    const Tensor g = schedule(from_vector({t, s}, {2}, dtype, device));
    const Tensor gt = select(g, 0, 0), gs = select(g, 0, 1);
    const Tensor eps_hat = predict_noise(schedule, net, z, expand(reshape(gt, {1}), {N}),
                                         full({N}, t, dtype, device), o);
    const Tensor c = -expm1(gs - gt);
    z = sqrt(sigmoid(-gs) / sigmoid(-gt)) * (z - sqrt(sigmoid(gt)) * c * eps_hat) +
        sqrt(sigmoid(gs) * c) * randn_like(z, gen);
  }
  // argmax_k of the decoder = the nearest level: k = floor((z0/alpha_0 + 1) K / 2), clamped
  const double K = double(o.levels);
  const Tensor g0 = schedule.endpoints(z).first;
  const Tensor u = clamp((z / sqrt(sigmoid(-g0)) + 1.0) * (K / 2.0), 0.0, K - 0.5);
  return cast(cast(u, DType::i64), dtype);
}

// eps_hat - z = z (sigma / (alpha^2 s^2 + sigma^2) - 1)
TimeScoreFn vdm_gaussian_denoiser(double s) {
  return [s](const Tensor& z, const Tensor& gamma) {
    const Tensor g = batch_view(gamma, z);
    const Tensor a2 = sigmoid(-g), s2 = sigmoid(g);
    return z * (sqrt(s2) / (a2 * (s * s) + s2)) - z;
  };
}
double vdm_gaussian_continuous_loss(double gamma_0, double gamma_1, double s, int64_t dims) {
  return 0.5 * double(dims) *
         std::log((1 + std::exp(-gamma_0) * s * s) / (1 + std::exp(-gamma_1) * s * s));
}
double vdm_gaussian_discrete_loss(const NoiseSchedule& schedule, int64_t T, double s,
                                  int64_t dims) {
  if (T < 1) fail<ValueError>("vdm_gaussian_discrete_loss: T must be >= 1, got ", T);
  NoGradGuard off;
  const auto [dt, dev] = schedule_placement(schedule);
  const std::vector<double> g =
      schedule(linspace(0.0, 1.0, T + 1, dt, dev)).to(Device::cpu()).to_vector();
  double L = 0;
  for (int64_t i = 1; i <= T; ++i) {
    const double vs = std::exp(-g[i - 1]), vt = std::exp(-g[i]);
    L += 0.5 * (vs - vt) * double(dims) * s * s / (1 + vt * s * s);
  }
  return L;
}
double vdm_gaussian_second_moment(const NoiseSchedule& schedule, double s, int64_t dims,
                                  int64_t points) {
  if (points < 3 || points % 2 == 0)
    fail<ValueError>("vdm_gaussian_second_moment: points must be odd and >= 3, got ", points);
  NoGradGuard off;
  const auto [dt, dev] = schedule_placement(schedule);
  const auto [g, dg] = gamma_and_derivative(schedule, linspace(0.0, 1.0, points, dt, dev));
  const Tensor snr = exp(-g);
  const Tensor m = snr * (s * s) / (snr * (s * s) + 1.0);
  const std::vector<double> y = square(dg * m).to(Device::cpu()).to_vector();
  double acc = y.front() + y.back();  // Simpson: h/3 (y_0 + 4 y_1 + 2 y_2 + ... + y_n)
  for (int64_t i = 1; i + 1 < points; ++i) acc += (i % 2 ? 4.0 : 2.0) * y[i];
  return 0.25 * double(dims * dims + 2 * dims) * acc / (3.0 * double(points - 1));
}

}  // namespace sg::obj
