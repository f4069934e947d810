// Identities of gradients through ODE solves, run by `scoregrad verify`: the continuous adjoint
// agrees with backpropagation through the solver at tight tolerances, the checkpointed
// strategy equals it to round-off on a fixed grid, the adjoint matches the closed form of
// dz/dt = theta z, and one recorded solve differentiated for two losses gives each its own
// gradient (no VJP served from the previous pass).
#include <algorithm>
#include <cmath>

#include "autodiff/sg.hpp"
#include "objectives/identities.hpp"
#include "sde/ode.hpp"

namespace sg::obj {

IdentityResult deterministic(std::string name, std::string statement, double est, double ref,
                             double tol);  // identities.cpp

namespace {

constexpr DType f64 = DType::f64;

// f(t, z) = tanh(z W + b) + 0.1 t z on a batch of three 2-D states.
struct SmallOde {
  Tensor W, b, z0;
  SmallOde() {
    Generator g(11);
    W = (randn({2, 2}, g, f64) * 0.8).requires_grad_();
    b = (randn({2}, g, f64) * 0.3).requires_grad_();
    z0 = randn({3, 2}, g, f64).requires_grad_();
  }
  ode::Dynamics f() const {
    return [this](double t, const ode::State& y) {
      return ode::State{tanh(matmul(y[0], W) + b) + y[0] * (0.1 * t)};
    };
  }
  std::vector<Tensor> grads(const Tensor& z1) const { return grad(sum(z1 * z1), {z0, W, b}); }
};

// max over the gradients of max|a - b| / max|b|
double worst_relative(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, max(abs(a[i] - b[i])).item() / std::max(1e-300, max(abs(b[i])).item()));
  return worst;
}

std::vector<IdentityResult> adjoint_vs_backprop() {
  const SmallOde m;
  const ode::Options tight{.rtol = 1e-10, .atol = 1e-10};
  const auto bp = m.grads(ode::odeint(m.f(), {m.z0}, 0.0, 1.5, tight).y[0]);
  const auto adj = m.grads(ode::odeint_adjoint(m.f(), {m.z0}, {m.W, m.b}, 0.0, 1.5,
                                               {.forward = tight, .backward = tight})
                               .y[0]);
  const ode::Options grid{.method = &ode::rk4(), .fixed_step = 0.05};
  const auto bp_grid = m.grads(ode::odeint(m.f(), {m.z0}, 0.0, 1.5, grid).y[0]);
  const auto ck_grid =
      m.grads(ode::odeint_checkpointed(m.f(), {m.z0}, {m.W, m.b}, 0.0, 1.5, grid).y[0]);
  return {deterministic("adjoint = backprop (neural ODE, tol 1e-10)",
                        "d|z(T)|^2 / d(z0, W, b): continuous adjoint vs backprop, max rel. error",
                        worst_relative(adj, bp), 0.0, 1e-6),
          deterministic("checkpointed = backprop (rk4 grid)",
                        "discretise-then-optimise on a fixed grid equals backprop, max rel. error",
                        worst_relative(ck_grid, bp_grid), 0.0, 1e-12)};
}

std::vector<IdentityResult> adjoint_closed_form() {
  // dz/dt = theta z, L = z(T)^2 / 2: dL/dtheta = T z0^2 e^{2 theta T}
  const double theta0 = 0.7, z00 = 1.3, T = 1.2;
  const Tensor theta = scalar(theta0, f64).requires_grad_();
  const Tensor z0 = scalar(z00, f64);
  const ode::Dynamics f = [&](double, const ode::State& y) { return ode::State{y[0] * theta}; };
  const ode::Options tight{.rtol = 1e-12, .atol = 1e-12};
  const Tensor z1 =
      ode::odeint_adjoint(f, {z0}, {theta}, 0.0, T, {.forward = tight, .backward = tight}).y[0];
  const double g = grad(z1 * z1 * 0.5, {theta})[0].item();
  const double want = T * z00 * z00 * std::exp(2 * theta0 * T);
  return {deterministic("adjoint closed form (dz/dt = theta z)",
                        "dL/dtheta = T z0^2 e^{2 theta T}, relative error",
                        std::abs(g - want) / want, 0.0, 1e-8)};
}

std::vector<IdentityResult> solve_differentiated_twice() {
  // y' = y A^T: y(T) = y0 expm(A T)^T; two losses through one adjoint solve
  const Tensor A = from_vector({-0.5, 2.0, -2.0, -0.5}, {2, 2}, f64);
  const ode::Dynamics f = [&](double, const ode::State& y) {
    return ode::State{matmul(y[0], A.mT())};
  };
  const double T = 0.8, c = std::cos(2 * T), s = std::sin(2 * T), e = std::exp(-0.5 * T);
  const Tensor M = from_vector({e * c, e * s, -e * s, e * c}, {2, 2}, f64);
  const Tensor y0 = from_vector({0.7, -0.4}, {1, 2}, f64).requires_grad_();
  const ode::Options tight{.rtol = 1e-11, .atol = 1e-11};
  const Tensor y1 =
      ode::odeint_adjoint(f, {y0}, {}, 0.0, T, {.forward = tight, .backward = tight}).y[0];
  const Tensor g1 = grad(sum(y1), {y0})[0];
  const Tensor g2 = grad(sum(y1 * y1) * 0.5, {y0})[0];
  const double err = std::max(max(abs(g1 - matmul(ones({1, 2}, f64), M))).item(),
                              max(abs(g2 - matmul(y1.detach(), M))).item());
  return {deterministic("one adjoint solve, two losses",
                        "each loss gets its own gradient (max abs error)", err, 0.0, 1e-8)};
}

}  // namespace

std::vector<Identity> ode_identities() {
  return {{"adjoint-backprop", adjoint_vs_backprop},
          {"adjoint-closed-form", adjoint_closed_form},
          {"adjoint-two-losses", solve_differentiated_twice}};
}

}  // namespace sg::obj
