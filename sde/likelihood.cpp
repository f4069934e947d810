// CNF and probability-flow likelihoods (see likelihood.hpp).
#include "sde/likelihood.hpp"

#include <cmath>

#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"
#include "autodiff/transforms/transforms.hpp"

namespace sg {
namespace {

// f(t, z) and tr(df/dz) per sample in one forward: exact (D VJPs) or v^T (df/dz) v.
std::pair<Tensor, Tensor> field_and_trace_recorded(const VectorField& f, double t, const Tensor& z,
                                                   const Tensor& probe, bool keep) {
  EnableGradGuard on;
  const Tensor zt = detail::track(z);
  const Tensor y = f(t, zt);
  if (!(y.shape() == z.shape()))
    fail<ShapeError>("cnf: the field maps ", describe(z), " to ", describe(y));
  if (!(y.device() == z.device()))
    fail<DeviceError>("cnf: the field maps ", z.shape().str(), " on ", device_name(z.device()),
                      " to ", y.shape().str(), " on ", device_name(y.device()),
                      " (its tensors belong on the state's device)");
  const Shape axes = sample_axes(z);
  if (probe.defined()) {
    const Tensor g = sg::grad({y}, {zt}, {probe}, {.create_graph = keep, .allow_unused = true})[0];
    return {y, sum(g * probe, axes)};
  }
  const int64_t B = z.dim(0), D = z.numel() / std::max<int64_t>(B, 1);
  Tensor tr;
  for (int64_t i = 0; i < D; ++i) {
    const Tensor e = reshape(
        expand(one_hot(from_indices({i}, {1}, z.device()), D, z.dtype()), {B, D}), z.shape());
    const Tensor part =
        sum(sg::grad({y}, {zt}, {e}, {.create_graph = keep, .allow_unused = true})[0] * e, axes);
    tr = tr.defined() ? tr + part : part;
  }
  return {y, tr};
}

// Without grad mode (plain evaluation) the graph recorded for the trace is cut away at once:
// the tape would otherwise keep every evaluation's nodes behind any still-referenced one (an
// adaptive solve holds stages across steps), growing with NFE x batch.
std::pair<Tensor, Tensor> field_and_trace(const VectorField& f, double t, const Tensor& z,
                                          const Tensor& probe) {
  if (grad_enabled()) return field_and_trace_recorded(f, t, z, probe, true);
  Scope scope;  // the results escape as constants
  return field_and_trace_recorded(f, t, z, probe, false);
}

}  // namespace

LikelihoodResult cnf_log_likelihood(const VectorField& f, const Tensor& x, const CnfOptions& o) {
  if (x.rank() < 2)
    fail<ShapeError>("cnf_log_likelihood: x must be [batch, ...], got ", describe(x));
  Tensor probe;
  if (!o.exact_trace) {
    if (!o.gen) fail<ValueError>("cnf_log_likelihood: a Hutchinson trace needs a generator");
    probe = o.gaussian_probe ? randn_like(x, *o.gen) : rademacher_like(x, *o.gen);
  }
  // Captured by value: with adjoint or checkpointed gradients the dynamics outlive this call.
  const ode::Dynamics aug = [f, probe](double t, const ode::State& s) {
    auto [y, tr] = field_and_trace(f, t, s[0], probe);
    return ode::State{y, tr};
  };
  const ode::State y0 = {x, zeros({x.dim(0)}, x.dtype(), x.device())};
  LikelihoodResult r;
  switch (o.gradient) {
    case SolveGradient::backprop:
      r.solve = ode::odeint(aug, y0, o.t0, o.t1, o.ode);
      break;
    case SolveGradient::adjoint:
      r.solve = ode::odeint_adjoint(aug, y0, o.params, o.t0, o.t1,
                                    {.forward = o.ode, .backward = o.adjoint_ode});
      break;
    case SolveGradient::checkpointed:
      r.solve = ode::odeint_checkpointed(aug, y0, o.params, o.t0, o.t1, o.ode);
      break;
  }
  if (!r.solve.ok())
    fail<ValueError>("cnf_log_likelihood: the ODE solve stopped (",
                     ode::status_name(r.solve.status), ")");
  r.z = r.solve.y[0];
  r.delta_logp = r.solve.y[1];
  const double D = static_cast<double>(x.numel() / x.dim(0)), s2 = o.prior_std * o.prior_std;
  const Tensor prior =
      sum(r.z * r.z, sample_axes(x)) * (-0.5 / s2) - 0.5 * D * std::log(2 * M_PI * s2);
  r.logp = prior + r.delta_logp;
  return r;
}

LikelihoodResult probability_flow_log_likelihood(const Sde& sde, const ScoreModelFn& s,
                                                 const Tensor& x, double t_eps, CnfOptions o) {
  const ReverseSde pf{&sde, s, 1.0};
  o.t0 = t_eps;
  o.t1 = sde.T();
  o.prior_std = sde.prior_std();
  return cnf_log_likelihood([pf](double t, const Tensor& z) { return pf.drift(z, t); }, x, o);
}

}  // namespace sg
