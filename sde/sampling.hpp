// Brownian motion from the counter-based generator, Euler-Maruyama, the time reversal of an
// SDE given a score (the lambda-family between the plug-in reverse SDE, lambda = 0, and the
// probability-flow ODE, lambda = 1), and the samplers built on them: reverse Euler-Maruyama,
// predictor-corrector (reverse-diffusion predictor + Langevin corrector), probability-flow ODE.
//
//   sg::BrownianPath W(/*seed=*/7, {512, 2}, 0.0, 1.0, /*steps=*/1000);
//   auto x1 = sg::euler_maruyama(drift, diffusion, x0, W, /*steps=*/100);   // coarsens W exactly
//
// Devices: every tensor is built on the state's device. Where there is no input state (a
// Brownian path, a sampler drawing its own prior sample) a Device argument or option says
// where, the CPU by default; results are the same numbers on every device.
#pragma once
#include <functional>

#include "autodiff/core/rng.hpp"
#include "autodiff/core/tensor.hpp"
#include "sde/ode.hpp"
#include "sde/sde.hpp"

namespace sg {

// W on a uniform grid of `fine_steps` over [t0, t1]; increment k is
// sqrt(dt) N(0, I) drawn from counters (seed, k * numel), so any part of a path can be
// regenerated (e.g. by an adjoint) and coarser grids reuse the same path exactly.
// Increments are made on `device` (the CPU by default), the same numbers on every device.
class BrownianPath {
 public:
  BrownianPath(uint64_t seed, Shape shape, double t0, double t1, int64_t fine_steps,
               DType dtype = DType::f32, Device device = {});
  // W(t_{k1}) - W(t_{k0}) between fine grid indices k0 < k1.
  Tensor increment(int64_t k0, int64_t k1) const;
  int64_t fine_steps() const { return n_; }
  double t0() const { return t0_; }
  double t1() const { return t1_; }
  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

 private:
  uint64_t seed_;
  Shape shape_;
  double t0_, t1_;
  int64_t n_;
  DType dtype_;
  Device device_;
};

using SdeDrift = std::function<Tensor(const Tensor& x, double t)>;
using SdeDiffusion =
    std::function<Tensor(const Tensor& x, double t)>;  // broadcast against x (diagonal noise)

// X_{k+1} = X_k + mu(X_k, t_k) h + sigma(X_k, t_k) dW_k on `steps` equal steps of the path's
// interval (steps must divide the path's fine steps). Time runs from path.t0() to path.t1().
// x0 and the path must be on the same device (DeviceError naming both otherwise).
Tensor euler_maruyama(const SdeDrift& mu, const SdeDiffusion& sigma, const Tensor& x0,
                      const BrownianPath& W, int64_t steps);

using ScoreModelFn = std::function<Tensor(const Tensor& x, const Tensor& t)>;  // t: [B]

// The reverse-time process of `sde` with score s, in the lambda-family:
//   dx = [f(x, t) - (1 - lambda/2) g(t)^2 s(x, t)] dt + sqrt(1 - lambda) g(t) dW-bar,
// run from t = T down to t_eps. lambda = 0: the plug-in reverse SDE; lambda = 1: the
// probability-flow ODE.
struct ReverseSde {
  const Sde* sde;
  ScoreModelFn score;
  double lambda = 0;
  Tensor drift(const Tensor& x, double t) const;  // forward-time drift of the reverse process
  // sqrt(1 - lambda) g(t): a float64 scalar tensor on `device` (the CPU by default).
  Tensor diffusion(double t, Device device = {}) const;
};

struct SamplerOptions {
  int64_t steps = 500;
  double t_eps = 1e-3;
  double lambda = 0;            // reverse EM only
  int64_t corrector_steps = 1;  // predictor-corrector
  double snr = 0.16;            // Langevin corrector target signal-to-noise ratio
  ode::Options ode;             // probability-flow sampler
  // Where the prior sample, the noise and every tensor of the run are made (the CPU by
  // default); the score function is called with tensors there. Same numbers on every device.
  Device device = {};
};
// Reverse Euler-Maruyama from the prior at T to t_eps.
Tensor sample_reverse_em(const Sde& sde, const ScoreModelFn& s, const Shape& shape, Generator& gen,
                         SamplerOptions o = {}, DType dtype = DType::f32);
// Predictor-corrector: reverse-diffusion (EM) predictor, then Langevin corrector steps with
// step size 2 alpha_t (snr |z| / |s|)^2 with batch-averaged norms (score_sde's
// LangevinCorrector, alpha_t = langevin_alpha below; no corrector step where the score is 0).
// Every sampler needs steps >= 1 and t_eps in [0, T) (ValueError otherwise).
Tensor sample_pc(const Sde& sde, const ScoreModelFn& s, const Shape& shape, Generator& gen,
                 SamplerOptions o = {}, DType dtype = DType::f32);
// The corrector's alpha_t for a predictor step h ending at t: exp(-int_{t-h}^t beta) for VP and
// sub-VP (1 - beta(t) h to first order, as score_sde's 1 - beta_i, but in (0, 1] for any h, so
// the step size stays positive for any number of steps), 1 for other SDEs. Host arithmetic on
// times: its float64 scalars are CPU tensors whatever the device of the samples.
double langevin_alpha(const Sde& sde, double t, double h);
// Probability-flow ODE dx/dt = f - g^2 s / 2 from the prior at T to t_eps (adaptive solver).
Tensor sample_probability_flow(const Sde& sde, const ScoreModelFn& s, const Shape& shape,
                               Generator& gen, SamplerOptions o = {}, DType dtype = DType::f32,
                               ode::Result* stats = nullptr);

}  // namespace sg
