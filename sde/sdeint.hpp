// SDE solvers as data: dX = f(X, t) dt + g(X, t) dW (Ito) on a Brownian motion that answers
// increments on any interval (sde/brownian.hpp), with steps of any size, a trajectory at
// output times and a Result with a status, as ode::odeint. Gradients through a solve: run it
// with grad mode on (every step is Tensor ops, so backward gives the pathwise derivative of the
// computed solution; the Brownian increments are constants).
//
// Noise classes (Options::noise), all with g(X, t) of X's shape:
//   diagonal: W has X's shape; g acts elementwise (g_i depends on X_i only, the Milstein and
//             weak-order-2 corrections assume it);
//   scalar:   W's shape broadcasts to X's (e.g. W [paths, 1] for X [paths, d]): one Brownian
//             motion shared along the broadcast axes;
//   additive: g(X, t) does not depend on X (W of X's shape or broadcastable to it).
// Methods and their orders (strong / weak), see docs/sde_solvers.md:
//   euler_maruyama  0.5 / 1 (strong 1 for additive noise)          1 f, 1 g per step
//   milstein        1   / 1 diagonal and scalar noise; d(g)/dX from one jvp of g with tangent g
//                   (J_g g = g dg/dx for elementwise g)             1 f, 2 g + 1 jvp of g
//   platen_weak2    1   / 2 diagonal and scalar noise (Kloeden-Platen 15.1.1, derivative-free)
//                                                                    2 f, 3 g
//   sra1            1.5 / 2 additive noise only (Rossler's SRA1; needs the Levy area)
//                                                                    2 f, 2 g
//   sriw1           1.5 / 2 diagonal, scalar and additive noise (Rossler's SRI1W1; needs the
//                   Levy area)                                       2-3 f, 4 g
//
// Adaptive steps (Options::adaptive): each step of h is taken once whole and once as two
// halves on the same Brownian path (the increments of the halves are queried from W at the
// midpoint, so they add up to the whole step's); their difference is the error estimate, the
// halves are kept, and a rejected step re-queries the same path on a shorter interval, so the
// solution converges to the strong solution on that path as the tolerances shrink. Needs a
// BrownianMotion that answers any time (a BrownianTree, not a GridBrownian).
//
//   sg::BrownianTree W(7, {4096, 1}, 0.0, 1.0, {.levy_area = true, .dtype = sg::DType::f64});
//   auto r = sg::sde::sdeint(f, g, x0, 0.0, 1.0, W,
//                            {.method = &sg::sde::milstein(), .dt = 0.01, .output_times =
//                            {0.5, 1.0}});
//   if (!r.ok()) std::cerr << sg::ode::status_name(r.status);
#pragma once
#include <string>
#include <vector>

#include "sde/brownian.hpp"
#include "sde/ode.hpp"
#include "sde/sampling.hpp"

namespace sg::sde {

enum class Noise { diagonal, scalar, additive };
const char* noise_name(Noise n);

// Rossler's stochastic Runge-Kutta for additive noise (SRA), stages s:
//   H_i = X + h sum_j A0_ij f(H_j, t + c0_j h) + sum_j B0_ij g(t + c1_j h) I10 / h
//   X' = X + h sum_i alpha_i f(H_i, t + c0_i h) + sum_i (beta1_i I1 + beta2_i I10 / h) g(t + c1_i
//   h)
// with I1 = W(t, t+h), I10 = int_t^{t+h} (W(u) - W(t)) du = h (I1/2 + H).
struct SraTableau {
  std::vector<double> c0, c1, a0, b0, alpha, beta1, beta2;  // a0, b0: s x s, strictly lower
  int stages() const { return static_cast<int>(alpha.size()); }
};

// Rossler's stochastic Runge-Kutta for Ito SDEs with diagonal (or scalar) noise (SRI), stages s:
//   H0_i = X + h sum_j A0_ij f(H0_j, t + c0_j h) + sum_j B0_ij g(H1_j, t + c1_j h) I10 / h
//   H1_i = X + h sum_j A1_ij f(H0_j, t + c0_j h) + sum_j B1_ij g(H1_j, t + c1_j h) sqrt(h)
//   X' = X + h sum_i alpha_i f(H0_i, .) + sum_i (beta1_i I1 + beta2_i I11 / sqrt(h)
//                                   + beta3_i I10 / h + beta4_i I111 / h) g(H1_i, .)
// per noise component, with I1 = W(t, t+h), I11 = (I1^2 - h)/2, I111 = (I1^3 - 3 h I1)/6 and
// I10 = h (I1/2 + H) (H: the space-time Levy area).
struct SriTableau {
  std::vector<double> c0, c1, a0, a1, b0, b1;  // matrices: s x s, strictly lower
  std::vector<double> alpha, beta1, beta2, beta3, beta4;
  int stages() const { return static_cast<int>(alpha.size()); }
};

struct Method {
  enum class Kind { euler_maruyama, milstein, platen_weak2, sra, sri };
  std::string name;
  Kind kind;
  double strong_order;           // diagonal / scalar noise (0: not for them)
  double strong_order_additive;  // additive noise
  double weak_order;
  bool needs_levy_area = false;
  SraTableau sra;  // kind == sra
  SriTableau sri;  // kind == sri
};
const Method& euler_maruyama();
const Method& milstein();
const Method& platen_weak2();
const Method& sra1();
const Method& sriw1();  // Rossler (2010) SRI1W1: strong 1.5, weak 2 (diagonal / scalar noise)
const Method& method(const std::string& name);  // by name; ValueError listing them

// Every field is checked on entry (ValueError naming sdeint and the field).
struct Options {
  const Method* method = nullptr;  // nullptr: euler_maruyama
  Noise noise = Noise::diagonal;
  int64_t steps = 0;                 // equal steps over [t0, t1]; or
  double dt = 0;                     // steps of this size from t0 (the last one shortened);
                                     // adaptive: the first step (0: (t1 - t0) / 100)
  std::vector<double> output_times;  // non-decreasing within [t0, t1]; steps stop there too
  int64_t max_steps = 10'000'000;    // adaptive: accepted + rejected steps
  // Adaptive steps by step doubling (see above); `steps` must be 0. A step is accepted when
  // RMS((X_half - X_whole) / (atol + rtol max(|X|, |X_half|))) <= 1 over all elements (one step
  // size for the whole batch), and the next is h min(fac_max, max(fac_min, safety err^(-1/q)))
  // with q = the method's strong order for the noise + 1/2 (the order of its local error).
  bool adaptive = false;
  double rtol = 1e-3;  // > 0 and >= 10 eps of the dtype
  double atol = 1e-6;  // >= 0
  double dt_min = 0;   // a step below it stops the solve (step_underflow); 0: 1e-12 (t1-t0)
  double dt_max = 0;   // 0: t1 - t0
  double safety = 0.9, fac_min = 0.2, fac_max = 2.0;
};

struct Result {
  Tensor y;                // at t1, or where the solve stopped
  std::vector<Tensor> ys;  // at output_times
  double t = 0;            // where the solve stopped
  ode::Status status = ode::Status::success;
  int64_t steps = 0;     // accepted steps (adaptive: each made of two half steps)
  int64_t rejected = 0;  // adaptive: rejected steps
  int64_t nfe = 0;       // drift evaluations
  int64_t nge = 0;       // diffusion evaluations (a jvp of g counts as one)
  bool ok() const { return status == ode::Status::success; }
};

// A BrownianPath (uniform grid) seen as a BrownianMotion: it answers increments between its
// grid times only (ValueError otherwise: use a BrownianTree for other times), no Levy area.
class GridBrownian final : public BrownianMotion {
 public:
  explicit GridBrownian(const BrownianPath& path) : path_(path) {}
  BrownianIncrement increment(double s, double t) const override;
  const Shape& shape() const override { return path_.shape(); }
  DType dtype() const override { return path_.dtype(); }
  Device device() const override { return path_.device(); }
  double t0() const override { return std::min(path_.t0(), path_.t1()); }
  double t1() const override { return std::max(path_.t0(), path_.t1()); }
  bool has_levy_area() const override { return false; }
  bool any_time() const override { return false; }

 private:
  const BrownianPath& path_;
};

// Integrates from t0 to t1 (t0 < t1, both within W's interval) with X(t0) = y0.
// Bad input is a ValueError naming sdeint and the argument (ShapeError for shapes).
Result sdeint(const SdeDrift& f, const SdeDiffusion& g, const Tensor& y0, double t0, double t1,
              const BrownianMotion& W, const Options& o = {});

}  // namespace sg::sde
