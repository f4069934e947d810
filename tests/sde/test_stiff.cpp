// odeint_stiff (Rodas4): Robertson's kinetics to t = 1e5 and Van der Pol with mu = 1000 to
// t = 3000 in a few hundred steps (where dopri5 runs out of steps), order 4 with fixed steps,
// failures reported as statuses, bad settings as typed errors. The printed lines are the numbers
// quoted in docs/solvers.md.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <limits>

#include "autodiff/sg.hpp"
#include "sde/stiff.hpp"
#include "tests/support/expect.hpp"

using namespace sg;
using namespace sg::ode;

namespace {
constexpr DType f64 = DType::f64;

// Robertson (1966): y1' = -k1 y1 + k3 y2 y3, y2' = k1 y1 - k3 y2 y3 - k2 y2^2, y3' = k2 y2^2.
Dynamics robertson() {
  return [](double, const State& s) {
    const Tensor& y = s[0];
    const Tensor y1 = y[0], y2 = y[1], y3 = y[2];
    const Tensor r1 = y1 * 0.04, r2 = y2 * y2 * 3e7, r3 = y2 * y3 * 1e4;
    return State{stack({r3 - r1, r1 - r3 - r2, r2})};
  };
}
// Van der Pol, unscaled (MATLAB's vdp1000): y1' = y2, y2' = mu (1 - y1^2) y2 - y1; period about
// (3 - 2 ln 2) mu.
Dynamics van_der_pol(double mu) {
  return [mu](double, const State& s) {
    const Tensor& y = s[0];
    const Tensor y1 = y[0], y2 = y[1];
    return State{stack({y2, (1.0 - y1 * y1) * y2 * mu - y1})};
  };
}
// Prothero-Robinson, non-autonomous: y' = -L (y - sin t) + cos t, y(t) = sin t from y(0) = 0.
Dynamics prothero_robinson() {
  return [](double t, const State& s) {
    static const Tensor l = from_vector({0.5, 2.0}, {2}, f64);
    return State{(s[0] - std::sin(t)) * (-l) + std::cos(t)};
  };
}
using test::message_of;
std::vector<double> values(const StiffResult& r) { return r.y[0].to_vector(); }
}  // namespace

TEST_CASE("Robertson's kinetics to t = 1e5 in a few hundred steps", "[stiff]") {
  const Tensor y0 = from_vector({1, 0, 0}, {3}, f64);
  const StiffResult r =
      odeint_stiff(robertson(), {y0}, 0.0, 1e5, {.rtol = 1e-6, .atol = 1e-10, .autonomous = true});
  REQUIRE(r.ok());
  const std::vector<double> y = values(r);
  // Reference: scipy's Radau and BDF at rtol 1e-12, atol 1e-20 (agree to 5e-14 in y1).
  const double ref[3] = {1.7865921142100e-2, 7.2747514684e-8, 0.98213400611038};
  std::printf(
      "stiff: Robertson to 1e5, rtol 1e-6 atol 1e-10: %lld steps (%lld rejected), nfe %lld,"
      " njev %lld, nlu %lld; y1 rel. error %.1e, y2 rel. error %.1e, mass - 1 = %.1e\n",
      (long long)r.steps, (long long)r.rejected, (long long)r.nfe, (long long)r.njev,
      (long long)r.nlu, std::abs(y[0] / ref[0] - 1), std::abs(y[1] / ref[1] - 1),
      y[0] + y[1] + y[2] - 1);
  CHECK(r.steps < 1000);
  CHECK(r.t == 1e5);
  CHECK(std::abs(y[0] / ref[0] - 1) < 1e-4);
  CHECK(std::abs(y[1] / ref[1] - 1) < 1e-4);
  CHECK(std::abs(y[2] - ref[2]) < 1e-6);
  CHECK(std::abs(y[0] + y[1] + y[2] - 1) < 1e-8);  // linear invariants are kept to round-off
  // one Jacobian per accepted step (reused after a rejection), one LU per attempted step
  CHECK(r.njev == r.steps);
  CHECK(r.nlu == r.steps + r.rejected);
  CHECK(r.y[0].dtype() == f64);
  CHECK(r.y[0].shape() == y0.shape());
  // forward-mode Jacobians and the non-autonomous path (df/dt = 0 by differences) agree
  const StiffResult q = odeint_stiff(robertson(), {y0}, 0.0, 1e5,
                                     {.rtol = 1e-6, .atol = 1e-10, .forward_jacobian = true});
  REQUIRE(q.ok());
  CHECK(q.steps == r.steps);
  CHECK(q.nfe == r.nfe + 2 * q.njev);
  CHECK(std::abs(values(q)[0] / y[0] - 1) < 1e-9);
}

TEST_CASE("Van der Pol mu = 1000 to t = 3000; dopri5 runs out of steps", "[stiff]") {
  const Tensor y0 = from_vector({2, 0}, {2}, f64);
  std::vector<double> outs;
  for (int i = 0; i <= 30; ++i) outs.push_back(100.0 * i);
  const StiffResult r = odeint_stiff(van_der_pol(1000), {y0}, 0.0, 3000.0,
                                     {.rtol = 1e-6, .atol = 1e-6, .output_times = outs});
  REQUIRE(r.ok());
  REQUIRE(r.ys.size() == outs.size());
  const std::vector<double> y = values(r);
  // Reference: odeint_stiff at rtol = atol = 1e-11 (22746 steps); scipy's Radau at 1e-10 agrees
  // to 2e-10 (-1.510606936784, 1.178380000651e-3).
  const double ref[2] = {-1.51060693667, 1.17838000075e-3};
  std::printf(
      "stiff: Van der Pol mu 1000 to 3000, rtol = atol = 1e-6, 31 output times: %lld steps"
      " (%lld rejected), nfe %lld, njev %lld, nlu %lld; y1 error %.1e, y2 error %.1e\n",
      (long long)r.steps, (long long)r.rejected, (long long)r.nfe, (long long)r.njev,
      (long long)r.nlu, std::abs(y[0] - ref[0]), std::abs(y[1] - ref[1]));
  CHECK(r.steps < 2000);
  CHECK(std::abs(y[0] - ref[0]) < 1e-4);
  CHECK(std::abs(y[1] / ref[1] - 1) < 1e-3);
  // a relaxation oscillation: |y1| stays below about 2, both branches are visited
  double lo = 0, hi = 0;
  for (const State& s : r.ys) {
    lo = std::min(lo, s[0].to_vector()[0]);
    hi = std::max(hi, s[0].to_vector()[0]);
  }
  CHECK(hi <= 2.01);
  CHECK(lo >= -2.01);
  CHECK(hi > 1.0);
  CHECK(lo < -1.0);
  // An explicit method's step is bounded by stability (|h lambda| < 3.3, lambda ~ -3000), not
  // accuracy: dopri5 stops with too_many_steps, correctly.
  const Result e = odeint(van_der_pol(1000), {y0}, 0.0, 3000.0,
                          {.rtol = 1e-6, .atol = 1e-6, .max_steps = 20000});
  std::printf("stiff: dopri5 on the same problem: %s at t = %.1f after %lld steps\n",
              status_name(e.status), e.t, (long long)(e.steps + e.rejected));
  CHECK(e.status == Status::too_many_steps);
  CHECK(e.t < 3000.0);
}

TEST_CASE("Rodas4 converges at order 4 with fixed steps", "[stiff]") {
  // A non-autonomous problem (df/dt enters each stage) and a coupled autonomous one.
  const Tensor z0 = from_vector({0, 0}, {2}, f64);
  std::vector<double> err_pr;
  for (double h : {0.2, 0.1, 0.05}) {
    const StiffResult r = odeint_stiff(prothero_robinson(), {z0}, 0.0, 2.0, {.fixed_step = h});
    REQUIRE(r.ok());
    const std::vector<double> y = values(r);
    err_pr.push_back(std::max(std::abs(y[0] - std::sin(2.0)), std::abs(y[1] - std::sin(2.0))));
  }
  const Dynamics rot = [](double, const State& y) {
    static const Tensor a = from_vector({-0.5, 2.0, -2.0, -0.5}, {2, 2}, f64);
    return State{matmul(y[0], a.mT())};
  };
  const Tensor w0 = from_vector({0.7, -0.4}, {1, 2}, f64);
  // exact: e^{-t/2} times a rotation by 2t of w0
  const double t1 = 2.0, c = std::cos(2 * t1), s = std::sin(2 * t1), d = std::exp(-0.5 * t1);
  const double ex[2] = {d * (c * 0.7 + s * -0.4), d * (-s * 0.7 + c * -0.4)};
  std::vector<double> err_rot;
  for (double h : {0.2, 0.1, 0.05}) {
    const StiffResult r = odeint_stiff(rot, {w0}, 0.0, t1, {.fixed_step = h, .autonomous = true});
    REQUIRE(r.ok());
    CHECK(r.steps == std::lround(t1 / h));
    const std::vector<double> y = values(r);
    err_rot.push_back(std::hypot(y[0] - ex[0], y[1] - ex[1]));
  }
  for (int i = 0; i < 2; ++i) {
    const double p1 = std::log2(err_pr[i] / err_pr[i + 1]);
    const double p2 = std::log2(err_rot[i] / err_rot[i + 1]);
    std::printf("stiff: fixed-step order, h -> h/2: Prothero-Robinson %.2f, rotation %.2f\n", p1,
                p2);
    CHECK(p1 > 3.6);
    CHECK(p1 < 4.5);
    CHECK(p2 > 3.6);
    CHECK(p2 < 4.5);
  }
  // adaptive: the error follows the tolerance
  for (double tol : {1e-5, 1e-8}) {
    const StiffResult r =
        odeint_stiff(prothero_robinson(), {z0}, 0.0, 2.0, {.rtol = tol, .atol = tol});
    REQUIRE(r.ok());
    const double err = std::abs(values(r)[1] - std::sin(2.0));
    std::printf("stiff: Prothero-Robinson adaptive tol %.0e: error %.1e in %lld steps\n", tol, err,
                (long long)r.steps);
    CHECK(err < 20 * tol);
  }
}

TEST_CASE("odeint_stiff: output times, backwards, float32", "[stiff]") {
  const Dynamics decay = [](double, const State& y) { return State{y[0] * -3.0}; };
  const Tensor y0 = from_vector({1.0, 2.0}, {2}, f64);
  const StiffResult r = odeint_stiff(decay, {y0}, 1.0, 0.0,
                                     {.rtol = 1e-9,
                                      .atol = 1e-12,
                                      .output_times = {1.0, 0.75, 0.5, 0.5, 0.0},
                                      .autonomous = true});
  REQUIRE(r.ok());
  REQUIRE(r.ys.size() == 5);
  const double ts[5] = {1.0, 0.75, 0.5, 0.5, 0.0};
  for (int i = 0; i < 5; ++i) {
    const std::vector<double> v = r.ys[i][0].to_vector();
    CHECK(v[0] == Approx(std::exp(3 * (1 - ts[i]))).epsilon(1e-7));
    CHECK(v[1] == Approx(2 * std::exp(3 * (1 - ts[i]))).epsilon(1e-7));
  }
  CHECK(r.t == 0.0);
  // a float32 state of two components with different shapes
  const Dynamics two = [](double, const State& y) { return State{y[0] * -1.0, y[1] * -2.0}; };
  const StiffResult q =
      odeint_stiff(two, {ones({2, 2}), full({3}, 2.0)}, 0.0, 1.0, {.rtol = 1e-5, .atol = 1e-6});
  REQUIRE(q.ok());
  CHECK(q.y[0].dtype() == DType::f32);
  CHECK(q.y[0].shape() == Shape{2, 2});
  CHECK(q.y[1].to_vector()[2] == Approx(2 * std::exp(-2.0)).epsilon(1e-4));
  // an empty interval returns y0
  CHECK(odeint_stiff(decay, {y0}, 1.0, 1.0).steps == 0);
}

TEST_CASE("odeint_stiff reports failures as statuses", "[stiff]") {
  const Tensor y0 = from_vector({1, 0, 0}, {3}, f64);
  const StiffResult few = odeint_stiff(robertson(), {y0}, 0.0, 1e5, {.max_steps = 10});
  CHECK(few.status == Status::too_many_steps);
  CHECK(few.steps + few.rejected == 10);
  CHECK(few.t < 1e5);
  // blow-up at t = 1: y' = y^2, y(0) = 1
  const Dynamics blow = [](double, const State& y) { return State{y[0] * y[0]}; };
  const StiffResult b = odeint_stiff(blow, {from_vector({1.0}, {1}, f64)}, 0.0, 2.0);
  CHECK(b.status == Status::step_underflow);
  CHECK(b.t < 1.0 + 1e-6);
  CHECK(b.t > 0.99);
  // f turns NaN
  const Dynamics bad = [](double t, const State& y) {
    return State{t > 0.5 ? y[0] * std::numeric_limits<double>::quiet_NaN() : y[0] * -1.0};
  };
  const StiffResult n = odeint_stiff(bad, {from_vector({1.0}, {1}, f64)}, 0.0, 1.0);
  CHECK(n.status == Status::non_finite);
  CHECK(n.t <= 0.5);
}

TEST_CASE("odeint_stiff: bad settings are typed errors naming it and the argument", "[stiff]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Dynamics f = [](double, const State& y) { return State{y[0] * -1.0}; };
  const Tensor y0 = from_vector({1.0, 2.0}, {2}, f64);
  const auto msg = [&](const StiffOptions& o, double t0 = 0.0, double t1 = 1.0) {
    return message_of<ValueError>([&] { odeint_stiff(f, {y0}, t0, t1, o); });
  };
  CHECK_THAT(msg({}, 0.0, nan), Catch::Contains("odeint_stiff") && Catch::Contains("t1"));
  CHECK_THAT(msg({}, INFINITY, 1.0), Catch::Contains("t0"));
  CHECK_THAT(msg({.rtol = 0}), Catch::Contains("odeint_stiff") && Catch::Contains("rtol"));
  CHECK_THAT(msg({.rtol = -1e-3}), Catch::Contains("rtol"));
  CHECK_THAT(msg({.atol = -1}), Catch::Contains("atol"));
  CHECK_THAT(msg({.atol = nan}), Catch::Contains("atol"));
  CHECK_THAT(msg({.max_steps = 0}), Catch::Contains("max_steps"));
  CHECK_THAT(msg({.fixed_step = -0.1}), Catch::Contains("fixed_step"));
  CHECK_THAT(msg({.output_times = {0.5, 0.2}}), Catch::Contains("sorted"));
  CHECK_THAT(msg({.output_times = {1.5}}), Catch::Contains("output time"));
  CHECK_THAT(
      message_of<ValueError>([&] { odeint_stiff(f, {ones({2})}, 0.0, 1.0, {.rtol = 1e-9}); }),
      Catch::Contains("float32"));
  CHECK_THAT(message_of<DTypeError>([&] {
               odeint_stiff(f, {from_indices({1, 2}, {2})}, 0.0, 1.0);
             }),
             Catch::Contains("odeint_stiff") && Catch::Contains("y0"));
  CHECK_THAT(message_of<ValueError>([&] { odeint_stiff(f, {}, 0.0, 1.0); }), Catch::Contains("y0"));
  CHECK_THAT(message_of<ValueError>([&] { odeint_stiff(f, {zeros({0}, f64)}, 0.0, 1.0); }),
             Catch::Contains("y0"));
  // f's output must match the state
  const Dynamics wrong = [](double, const State& y) { return State{y[0], y[0]}; };
  CHECK_THAT(message_of<ShapeError>([&] { odeint_stiff(wrong, {y0}, 0.0, 1.0); }),
             Catch::Contains("odeint_stiff"));
}

TEST_CASE("odeint_stiff is not differentiable and says so", "[stiff]") {
  const Tensor y0 = from_vector({1.0, 2.0}, {2}, f64).requires_grad_();
  const Dynamics f = [](double, const State& y) { return State{y[0] * -1.0}; };
  CHECK_THAT(message_of<GradError>([&] { odeint_stiff(f, {y0}, 0.0, 1.0); }),
             Catch::Contains("odeint_stiff") && Catch::Contains("y0"));
  const Tensor k = from_vector({2.0}, {1}, f64).requires_grad_();
  const Dynamics g = [k](double, const State& y) { return State{y[0] * -k}; };
  CHECK_THAT(message_of<GradError>([&] { odeint_stiff(g, {y0.detach()}, 0.0, 1.0); }),
             Catch::Contains("odeint_stiff") && Catch::Contains("require grad"));
  // values under NoGradGuard
  NoGradGuard off;
  const StiffResult r = odeint_stiff(g, {y0}, 0.0, 1.0, {.rtol = 1e-8, .atol = 1e-10});
  REQUIRE(r.ok());
  CHECK_FALSE(r.y[0].requires_grad());
  CHECK(r.y[0].to_vector()[1] == Approx(2 * std::exp(-2.0)).epsilon(1e-6));
}
