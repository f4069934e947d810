// Second order through every gradient strategy: grad-of-grad (a gradient penalty) and
// reverse-over-reverse Hessian-vector products through odeint_adjoint and odeint_checkpointed
// equal backpropagation's, on a linear ODE (closed form) and a small neural ODE; forward mode
// through them is a clear GradError.
#include <catch2/catch.hpp>
#include <cmath>

#include "autodiff/sg.hpp"
#include "sde/ode.hpp"

using namespace sg;
using namespace sg::ode;

namespace {
constexpr DType f64 = DType::f64;
enum class Strategy { backprop, adjoint, checkpointed };
const char* name_of(Strategy s) {
  return s == Strategy::backprop ? "backprop" : s == Strategy::adjoint ? "adjoint" : "checkpointed";
}
const Options kTight{.rtol = 1e-10, .atol = 1e-10};
Tensor solve(Strategy s, const Dynamics& f, const Tensor& y0, const std::vector<Tensor>& params,
             double T) {
  switch (s) {
    case Strategy::backprop:
      return odeint(f, {y0}, 0.0, T, kTight).y[0];
    case Strategy::adjoint:
      return odeint_adjoint(f, {y0}, params, 0.0, T, {.forward = kTight}).y[0];
    default:
      return odeint_checkpointed(f, {y0}, params, 0.0, T, kTight).y[0];
  }
}
double rel(const Tensor& a, const Tensor& b) {
  return max(abs(a - b)).item() / std::max(1e-300, max(abs(b)).item());
}
// f(t, z) = tanh(z W + b) + 0.1 t z
struct SmallOde {
  Tensor W, b;
  SmallOde() {
    Generator g(21);
    W = (randn({2, 2}, g, f64) * 0.8).requires_grad_();
    b = (randn({2}, g, f64) * 0.3).requires_grad_();
  }
  Dynamics f() const {
    return [this](double t, const State& y) {
      return State{tanh(matmul(y[0], W) + b) + y[0] * (0.1 * t)};
    };
  }
};
}  // namespace

TEST_CASE("Hessian-vector products through each strategy on a linear ODE, against the closed form",
          "[ode][second-order]") {
  // y' = y A^T, L = sum(y(T)^3) / 3: d2L/dy0^2 v = M^T diag(2 y1) M v with M = expm(A T)
  const Tensor A = from_vector({-0.5, 2.0, -2.0, -0.5}, {2, 2}, f64);
  const Dynamics f = [&](double, const State& y) { return State{matmul(y[0], A.mT())}; };
  const double T = 0.8, c = std::cos(2 * T), s = std::sin(2 * T), e = std::exp(-0.5 * T);
  const Tensor M = from_vector({e * c, e * s, -e * s, e * c}, {2, 2}, f64);
  const Tensor y0 = from_vector({0.7, -0.4}, {1, 2}, f64).requires_grad_();
  const Tensor v = from_vector({0.3, 1.1}, {1, 2}, f64);
  const Tensor y1 = matmul(y0.detach(), M.mT());
  const Tensor want = matmul(matmul(v, M.mT()) * y1 * 2.0, M);
  for (Strategy st : {Strategy::backprop, Strategy::adjoint, Strategy::checkpointed}) {
    INFO(name_of(st));
    const Tensor z = solve(st, f, y0, {}, T);
    const Tensor g = grad(sum(z * z * z) / 3.0, {y0}, {.create_graph = true})[0];
    const Tensor hv = grad(sum(g * v), {y0})[0];
    CHECK(rel(hv, want) < 1e-6);
  }
}

TEST_CASE("a gradient penalty through each strategy equals backprop's on a neural ODE",
          "[ode][second-order]") {
  const SmallOde net;
  Generator g(22);
  const Tensor y0 = randn({3, 2}, g, f64).requires_grad_();
  const std::vector<Tensor> wrt = {y0, net.W, net.b};
  auto penalty_grads = [&](Strategy st) {
    const Tensor z = solve(st, net.f(), y0, {net.W, net.b}, 1.2);
    const std::vector<Tensor> g1 = grad(sum(z * z), wrt, {.create_graph = true});
    Tensor p = sum(g1[1] * g1[1]);  // ||dL/dW||^2: its gradient needs the Hessian
    for (std::size_t i : {0u, 2u}) p = p + sum(g1[i] * g1[i]);
    return grad(p, wrt);
  };
  const auto bp = penalty_grads(Strategy::backprop);
  for (Strategy st : {Strategy::adjoint, Strategy::checkpointed}) {
    INFO(name_of(st));
    const auto other = penalty_grads(st);
    for (std::size_t i = 0; i < wrt.size(); ++i)
      CHECK(rel(other[i], bp[i]) < (st == Strategy::checkpointed ? 1e-10 : 1e-6));
  }
  // reverse-over-reverse HVP in the parameters
  const Tensor vW = randn({2, 2}, g, f64);
  auto hvp_W = [&](Strategy st) {
    const Tensor z = solve(st, net.f(), y0, {net.W, net.b}, 1.2);
    const Tensor gW = grad(sum(z * z), {net.W}, {.create_graph = true})[0];
    return grad(sum(gW * vW), {net.W})[0];
  };
  const Tensor h_bp = hvp_W(Strategy::backprop);
  CHECK(rel(hvp_W(Strategy::adjoint), h_bp) < 1e-6);
  CHECK(rel(hvp_W(Strategy::checkpointed), h_bp) < 1e-10);
}

TEST_CASE("forward mode through an adjoint or checkpointed solve is a clear GradError",
          "[ode][second-order]") {
  const SmallOde net;
  const Tensor y0 = from_vector({0.2, -0.1}, {1, 2}, f64);
  for (Strategy st : {Strategy::adjoint, Strategy::checkpointed}) {
    INFO(name_of(st));
    const Fn fn = [&](const Tensor& x) { return solve(st, net.f(), x, {net.W, net.b}, 0.5); };
    CHECK_THROWS_AS(jvp(fn, y0, ones_like(y0)), GradError);
  }
}
