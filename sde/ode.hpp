// ODE solvers as data: explicit Runge-Kutta methods are Butcher tableaux, step control is a
// PI controller, and gradients through a solve come three ways:
//   - backpropagation through the solver's steps (run odeint with grad mode on): exact for the
//     computed solution, memory grows with the number of steps;
//   - the continuous adjoint (odeint_adjoint, "backsolve"): solves the adjoint ODE backwards
//     together with the state; memory independent of the number of steps, gradients
//     APPROXIMATE (they differ from the gradient of the computed solution by the solver's
//     error, O(h^p)), with its own tolerances and the seminorm option;
//   - checkpointed discretise-then-optimise (odeint_checkpointed): keeps only the states at
//     accepted steps and replays each step under the tape on the way back: EXACT gradient of
//     the computed solution (step sizes held fixed), memory of one step's graph plus the states.
// Time is float64 whatever the state's dtype; a state is a list of tensors.
//
//   auto r = sg::ode::odeint(f, {z0}, 0.0, 1.0, {.method = &sg::ode::dopri5(), .rtol = 1e-5, .atol
//   = 1e-5}); if (!r.ok()) std::cerr << sg::ode::status_name(r.status);
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "autodiff/core/error.hpp"
#include "autodiff/core/tensor.hpp"

namespace sg::ode {

// A solve inside a gradient (the adjoint's backward solve, the VJP of a failed forward solve)
// did not reach its end: its gradient does not exist, so none is returned.
struct SolveError : Error {
  using Error::Error;
};

using State = std::vector<Tensor>;
using Dynamics = std::function<State(double t, const State& y)>;

// How a method evaluates its solution inside a step (dense output) from the step's stages:
// y(t + theta h) = y + h sum_i w_i(theta) k_i.
enum class Interpolant {
  none,     // output times end steps instead
  hermite,  // cubic Hermite from y, y1, f(t, y) = k_1 and f(t + h, y1) = k_last (FSAL methods)
  dopri5,   // Shampine's 4th-order continuous extension of Dormand-Prince 5(4)
  tsit5,    // Tsitouras' 4th-order continuous extension of his 5(4) pair (from its 7 stages)
  dop853,   // Hairer's 7th-order dense output of DOP853 (its stages + 3 extra ones)
};

struct Tableau {
  std::string name;
  int order;           // of the propagated solution
  int embedded_order;  // of the error estimate's companion (0: none, fixed steps only)
  std::vector<double> c, a, b, b_hat;  // a: stages x stages, row-major, strictly lower
  bool fsal;                           // first stage of a step = last stage of the previous one
  Interpolant interpolant = Interpolant::none;
  // A second error estimate (DOP853's 3rd-order one, weights e3): when present the step's
  // error is Hairer's combination |e5|^2 / sqrt(|e5|^2 + 0.01 |e3|^2), e5 = h sum (b - b_hat) k.
  std::vector<double> e3 = {};
  // Stages evaluated only when a step's dense output is needed (DOP853's three): their c, and
  // their rows of a over every earlier stage (the step's stages, then earlier dense stages).
  std::vector<double> dense_c = {};
  std::vector<std::vector<double>> dense_a = {};
  int stages() const { return static_cast<int>(b.size()); }
  int dense_stages() const { return stages() + static_cast<int>(dense_c.size()); }
  // The weights w_i(theta), 0 <= theta <= 1, of the dense output over the dense_stages() stages
  // (empty for `none`).
  std::vector<double> dense_weights(double theta) const;
};
const Tableau& euler();
const Tableau& midpoint();
const Tableau& heun();  // Heun's method, order 2, with Euler as its embedded pair
const Tableau& rk4();
const Tableau& bosh3();   // Bogacki-Shampine 3(2)
const Tableau& dopri5();  // Dormand-Prince 5(4)
const Tableau& tsit5();   // Tsitouras 5(4)
const Tableau& dop853();  // Dormand-Prince 8(5,3), Hairer's DOP853, 7th-order dense output
const Tableau& tableau(const std::string& name);  // by name; ValueError listing them

// `event`: a terminal event (Options::event) stopped the solve at Result::t, as asked.
enum class Status { success, step_underflow, too_many_steps, non_finite, event };
const char* status_name(Status s);

// Every field is checked on entry (ValueError naming odeint and the field): t0, t1 and the
// step settings finite, rtol > 0 and at least 10 eps of the state's dtype, atol >= 0, output
// times inside [t0, t1] and sorted in the direction of integration, max_steps >= 1.
struct Options {
  const Tableau* method = nullptr;  // nullptr: dopri5
  double rtol = 1e-6;
  double atol = 1e-8;
  double fixed_step = 0;  // > 0: steps of this size (the last shortened), no error control
  double h0 = 0;          // first step for adaptive solves (0: chosen automatically)
  double min_step = 1e-12;
  int64_t max_steps = 100000;
  // Monotone in the direction of integration. Methods with an interpolant (dopri5, tsit5,
  // bosh3, dop853) evaluate them inside steps without ending a step (dop853: 3 more evaluations
  // in each step that holds one); others end a step there.
  std::vector<double> output_times;
  bool dense = false;   // keep every accepted step's stages in Result::solution
  double max_step = 0;  // > 0: no step longer than this (adaptive and fixed)
  // Per state component (one value per tensor of the state): replaces atol for that component.
  std::vector<double> component_atol;
  // Steps exactly between consecutive times of this grid (from t0 to t1, monotone); no error
  // control. Exclusive with fixed_step.
  std::vector<double> step_grid;
  // A terminal event: the solve stops where event(t, y) changes sign (root found on the dense
  // output to |t| * 1e-12, methods with an interpolant), with Status::event. Backprop through
  // such a solve holds the event time fixed (its implicit derivative is not implemented).
  std::function<double(double t, const State& y)> event;
  // Step control: after a step with error err (RMS norm, accepted when err <= 1) the next step is
  // h clamp(safety err^-alpha err_prev^beta, fac_min, fac_max), alpha = 1/q - 0.75 beta, q = the
  // error estimate's order + 1; no growth right after a rejection. beta = 0 (default) is the
  // plain controller of scipy and Hairer's DOP853; Hairer's DOPRI5 uses beta = 0.04. Safety 0.8
  // (scipy and Hairer: 0.9) measured fewer evaluations at equal error (docs/benchmarks.md).
  double safety = 0.8, fac_min = 0.2, fac_max = 10.0, beta = 0.0;
  std::vector<bool> exclude_from_norm;  // per state component (seminorm); empty: none
  // Called for every accepted step with its start time, signed size and starting state.
  std::function<void(double t, double h, const State& y)> on_accept;
};

// What the gradient strategies spend when (and each time) their VJP runs; shared by the Result
// and the recorded node, so it fills in after the forward call has returned.
struct BackwardStats {
  std::atomic<int64_t> nfe{0}, steps{0}, rejected{0}, solves{0};
};

// The continuous solution of a solve with Options::dense: y(t) anywhere in [t0, t], from the
// accepted steps' stages (differentiable like the solve itself when it was recorded).
class Solution {
 public:
  struct Step {
    double t, h;
    State y;
    std::vector<State> k;
  };
  Solution(const Tableau& tb, double t0, double t_end) : tb_(&tb), t0_(t0), t_end_(t_end) {}
  void add(Step s) { steps_.push_back(std::move(s)); }
  void set_end(double t) { t_end_ = t; }
  State at(double t) const;  // ValueError outside the solved interval
  double t0() const { return t0_; }
  double t_end() const { return t_end_; }
  std::size_t steps() const { return steps_.size(); }

 private:
  const Tableau* tb_;
  double t0_, t_end_;
  std::vector<Step> steps_;
};

struct Result {
  State y;                                   // at t1, or where the solve stopped
  std::shared_ptr<const Solution> solution;  // with Options::dense
  std::vector<State> ys;                     // at output_times
  double t = 0;                              // where the solve stopped
  Status status = Status::success;
  int64_t nfe = 0, steps = 0, rejected = 0;
  // Hairer's stiffness test (dopri5, tsit5, dop853): h |lambda| estimated above the stability
  // boundary on 15 accepted steps (6 below it in a row reset the count). The solve goes on; an
  // implicit method would be cheaper. `stiff_at` is the time it was first detected.
  bool stiffness_detected = false;
  double stiff_at = 0;
  // odeint_adjoint / odeint_checkpointed: evaluations of f made by backward passes so far.
  std::shared_ptr<BackwardStats> backward;
  int64_t nfe_backward() const { return backward ? backward->nfe.load() : 0; }
  bool ok() const { return status == Status::success || status == Status::event; }
};

// Integrates dy/dt = f(t, y) from t0 to t1 (either direction). With grad mode on, the
// solution is recorded on the tape (backpropagation through the solver).
Result odeint(const Dynamics& f, const State& y0, double t0, double t1, const Options& o = {});

struct AdjointOptions {
  Options forward;
  std::optional<Options> backward;  // the adjoint solve's settings; unset: the forward ones
  bool seminorm = true;  // leave the parameter-gradient channels out of the step-size error
  // odeint_adjoint keeps the forward pass's state at each accepted step (values, no graph) and
  // restarts the backward state from them, one forward step at a time, instead of integrating
  // y backwards over the whole interval (which drifts on unstable or chaotic problems). Memory:
  // one state per accepted step. false: pure backsolve, memory independent of the steps.
  bool checkpoint_states = true;
};
struct AdjointGradients {
  State dy0;
  std::vector<Tensor> dparams;
  double dt0 = 0, dt1 = 0;
  Result backward;  // the adjoint solve's statistics
};
// dL/d(y0, params, t0, t1) given y1 = y(t1) and dL/dy1, by the continuous adjoint:
//   da/dt = -a^T df/dy,  dL/dtheta = int_{t0}^{t1} a^T df/dtheta dt,
//   dL/dt1 = a(t1)^T f(t1, y1),  dL/dt0 = -a(t0)^T f(t0, y0),
// solved backwards with the state (backsolve). `params` are the tensors f depends on.
AdjointGradients adjoint_gradients(const Dynamics& f, const std::vector<Tensor>& params,
                                   const State& y1, double t0, double t1, const State& dl_dy1,
                                   const AdjointOptions& o = {});
// Solves without recording, then records y(t1) as a function of (y0, params) whose VJP is the
// adjoint solve (memory independent of the number of steps; gradients approximate).
// f is kept for the backward pass: it must not refer to anything that dies before then.
// If the forward solve fails (see Result::status), differentiating its result raises
// SolveError; so does a failed backward solve.
Result odeint_adjoint(const Dynamics& f, const State& y0, const std::vector<Tensor>& params,
                      double t0, double t1, const AdjointOptions& o = {});
// Solves without recording, keeping the accepted steps; records y(t1) with a VJP that replays
// each step under the tape in reverse (exact gradient of the computed solution).
Result odeint_checkpointed(const Dynamics& f, const State& y0, const std::vector<Tensor>& params,
                           double t0, double t1, const Options& o = {});

}  // namespace sg::ode
