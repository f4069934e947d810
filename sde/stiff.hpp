// Stiff ODEs: dy/dt = f(t, y) with an implicit (linearly implicit) method, Rodas4.
//
// Rodas4 (Hairer & Wanner, Solving ODEs II, section IV.7, the RODAS code) is a 6-stage
// Rosenbrock method of order 4 with an embedded solution of order 3, stiffly accurate and
// L-stable. Each step evaluates the Jacobian df/dy once (by the engine's own `sg::jacobian` on
// the flattened state), factorises W = I / (gamma h) - J once (dense LU, Eigen's PartialPivLU)
// and solves six linear systems with it; no Newton iteration, so no convergence failures. After
// a rejected step the Jacobian is reused (same t, y) and only W is factorised again. A Rosenbrock
// method needs the exact Jacobian at every accepted step (it is not a W-method), so J is not
// carried across accepted steps.
//
//   auto r = sg::ode::odeint_stiff(f, {y0}, 0.0, 1e5, {.rtol = 1e-6, .atol = 1e-10});
//   if (!r.ok()) std::cerr << sg::ode::status_name(r.status);
//   std::cout << r.steps << " steps, " << r.njev << " Jacobians, " << r.nlu << " LUs\n";
//
// The state (a list of tensors, any shapes, floating dtypes) is flattened into one float64
// vector internally; the linear algebra is dense, O(n^2) memory and O(n^3) per step, meant for
// states of up to a few hundred numbers. Values only: the solve is not recorded on the tape (see
// odeint_stiff).
#pragma once
#include <cstdint>
#include <vector>

#include "sde/ode.hpp"

namespace sg::ode {

struct StiffOptions {
  double rtol = 1e-6;
  double atol = 1e-8;
  // > 0: steps of this size (the last one shortened), no error control (for order checks).
  double fixed_step = 0;
  double h0 = 0;  // first step for adaptive solves (0: chosen automatically)
  double min_step = 1e-12;
  int64_t max_steps = 100000;  // accepted + rejected steps
  // Monotone in the direction of integration; each ends a step (the solver lands on it).
  std::vector<double> output_times;
  double safety = 0.9, fac_min = 0.2, fac_max = 6.0;
  // true: f does not depend on t (skips the two evaluations per Jacobian that estimate df/dt by
  // a central difference; the estimate is needed by non-autonomous problems).
  bool autonomous = false;
  // How df/dy is evaluated: reverse (one evaluation of f on the tape, n VJPs) or forward (n JVPs).
  bool forward_jacobian = false;
};

// Result plus the work particular to an implicit method. nfe counts direct evaluations of f:
// 5 per attempted step, 1 per accepted step (the next step's first stage), 1 at the start (2 with
// the automatic first step) and 2 per Jacobian for df/dt unless autonomous; the evaluations made
// inside `sg::jacobian` are not in nfe.
struct StiffResult : Result {
  int64_t njev = 0;  // Jacobian evaluations (one per accepted step, plus the first)
  int64_t nlu = 0;   // LU factorisations of W (one per attempted step)
};

// Integrates dy/dt = f(t, y) from t0 to t1 (either direction) with Rodas4.
// Settings are checked like odeint's (ValueError naming odeint_stiff and the field; DTypeError
// for a non-floating state). A solve that cannot finish returns status too_many_steps,
// step_underflow or non_finite and the time it reached. Not differentiable: with grad mode on,
// an initial state that requires grad, or an f that depends on tensors requiring grad, raises
// GradError (backprop through the linear solves is not supported); run it under NoGradGuard or
// with detached inputs to get values.
StiffResult odeint_stiff(const Dynamics& f, const State& y0, double t0, double t1,
                         const StiffOptions& o = {});

}  // namespace sg::ode
