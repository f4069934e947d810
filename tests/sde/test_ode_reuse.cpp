// One recorded solve differentiated more than once: every cotangent gets its own VJP, never a
// cached one from an earlier pass (the custom op's per-application scratch), for the adjoint
// and checkpointed strategies, through vjp, jacobian and divergence.
#include <catch2/catch.hpp>
#include <cmath>

#include "autodiff/sg.hpp"
#include "sde/ode.hpp"

using namespace sg;
using namespace sg::ode;

namespace {
constexpr DType f64 = DType::f64;
constexpr double kT = 0.8;
// y' = y A^T with A = [[-0.5, 2], [-2, -0.5]]: y(T) = y0 expm(A T)^T, expm(A T) = e^{-T/2} R(2T).
Dynamics linear() {
  return [](double, const State& y) {
    static const Tensor a = from_vector({-0.5, 2.0, -2.0, -0.5}, {2, 2}, f64);
    return State{matmul(y[0], a.mT())};
  };
}
Tensor expm_at(double t) {
  const double c = std::cos(2 * t), s = std::sin(2 * t), e = std::exp(-0.5 * t);
  return from_vector({e * c, e * s, -e * s, e * c}, {2, 2}, f64);
}
const Options kTight{.rtol = 1e-11, .atol = 1e-11};
// y(T) through the strategy under test (the only input is y0).
using Solve = std::function<Tensor(const Tensor&)>;
Solve adjoint_solve() {
  return [](const Tensor& y0) {
    return odeint_adjoint(linear(), {y0}, {}, 0.0, kT, {.forward = kTight, .backward = kTight})
        .y[0];
  };
}
Solve checkpointed_solve() {
  return [](const Tensor& y0) {
    return odeint_checkpointed(linear(), {y0}, {}, 0.0, kT, kTight).y[0];
  };
}
double max_abs_diff(const Tensor& a, const Tensor& b) { return max(abs(a - b)).item(); }
}  // namespace

TEST_CASE("one adjoint or checkpointed solve differentiated for two different losses",
          "[ode][adjoint][custom]") {
  const Tensor y0 = from_vector({0.7, -0.4}, {1, 2}, f64).requires_grad_();
  const Tensor M = expm_at(kT);  // dy1/dy0 as y1 = y0 M^T
  for (const auto& [name, solve] :
       {std::pair{"adjoint", adjoint_solve()}, std::pair{"checkpointed", checkpointed_solve()}}) {
    INFO(name);
    const Tensor y1 = solve(y0);
    // L1 = sum(y1): dL1/dy0 = 1 M;  L2 = sum(y1^2)/2: dL2/dy0 = y1 M;  then L1 again
    const Tensor g1 = grad(sum(y1), {y0})[0];
    const Tensor g2 = grad(sum(y1 * y1) * 0.5, {y0})[0];
    const Tensor g3 = grad(sum(y1) * -2.0, {y0})[0];
    CHECK(max_abs_diff(g1, matmul(ones({1, 2}, f64), M)) < 1e-8);
    CHECK(max_abs_diff(g2, matmul(y1.detach(), M)) < 1e-8);
    CHECK(max_abs_diff(g3, matmul(ones({1, 2}, f64), M) * -2.0) < 1e-8);
  }
}

TEST_CASE("jacobian and divergence through an adjoint or checkpointed solve",
          "[ode][adjoint][custom]") {
  const Tensor M = expm_at(kT);
  const double trace = 2 * std::exp(-0.5 * kT) * std::cos(2 * kT);
  for (const auto& [name, solve] :
       {std::pair{"adjoint", adjoint_solve()}, std::pair{"checkpointed", checkpointed_solve()}}) {
    INFO(name);
    const Tensor y0 = from_vector({0.7, -0.4}, {1, 2}, f64);
    // jacobian of [1,2] -> [1,2]: d y1[0,i] / d y0[0,j] = M[i, j]
    const Tensor J = jacobian(solve, y0);
    CHECK(max_abs_diff(reshape(J, {2, 2}), M) < 1e-8);
    const Tensor batch = from_vector({0.7, -0.4, 1.5, 0.2, -2.0, 3.0}, {3, 2}, f64);
    const Tensor div = divergence(solve, batch);
    REQUIRE(div.shape() == Shape{3});
    for (double d : div.to_vector()) CHECK(d == Approx(trace).epsilon(1e-8));
  }
}
