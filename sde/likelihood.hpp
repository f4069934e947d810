// Exact likelihoods through ODEs: continuous normalizing flows (FFJORD) by the instantaneous
// change of variables, and score models through their probability-flow ODE (score_sde).
//
//   log p(x) = log pi(z(t1)) + int_{t0}^{t1} tr(df/dz)(t, z(t)) dt,   dz/dt = f(t, z), z(t0) = x
//
// integrated from data (t0) to noise (t1) together with the running trace. The trace is exact
// (D backward passes per evaluation, small D) or Hutchinson's with a probe drawn once and
// held fixed for the whole solve. Gradients with respect to the flow's parameters come by
// backprop through the solver, the continuous adjoint, or checkpointing (see ode.hpp).
//
// Devices: everything is computed on x's device (the probe, the trace's basis vectors, the
// running trace, the prior term); the field must map tensors there to tensors there (its
// parameters on that device; DeviceError otherwise). The same numbers on every device.
#pragma once
#include <functional>
#include <vector>

#include "autodiff/core/rng.hpp"
#include "sde/ode.hpp"
#include "sde/sampling.hpp"

namespace sg {

using VectorField = std::function<Tensor(double t, const Tensor& z)>;  // [B, ...] -> [B, ...]

enum class SolveGradient { backprop, adjoint, checkpointed };
struct CnfOptions {
  double t0 = 0, t1 = 1;
  ode::Options ode{.rtol = 1e-5, .atol = 1e-5};
  ode::Options adjoint_ode{.rtol = 1e-5, .atol = 1e-5};  // backward solve tolerances (adjoint)
  bool exact_trace = true;
  bool gaussian_probe = false;  // Hutchinson: Gaussian instead of Rademacher
  Generator* gen = nullptr;     // Hutchinson probe source (required when !exact_trace)
  SolveGradient gradient = SolveGradient::backprop;
  std::vector<Tensor> params;  // what f depends on (adjoint and checkpointed gradients)
  double prior_std = 1.0;      // pi = N(0, prior_std^2 I)
};

struct LikelihoodResult {
  Tensor logp;        // [B], nats
  Tensor z;           // z(t1)
  Tensor delta_logp;  // [B], the integrated trace
  ode::Result solve;  // status, NFE
};

LikelihoodResult cnf_log_likelihood(const VectorField& f, const Tensor& x, const CnfOptions& o);

// The probability-flow ODE of a score model, dx/dt = f(x, t) - g(t)^2 s(x, t) / 2, from t_eps
// to T, with the SDE's prior. (o.t0 is replaced by t_eps and o.t1 by the SDE's T.)
LikelihoodResult probability_flow_log_likelihood(const Sde& sde, const ScoreModelFn& s,
                                                 const Tensor& x, double t_eps, CnfOptions o);

}  // namespace sg
