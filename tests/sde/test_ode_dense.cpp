// Dense output: output times cost no extra steps for methods with an interpolant, the
// interpolants reach their orders (dopri5's continuous extension 4th order locally, so the
// dense solution converges at 5 like the steps; the cubic Hermite of bosh3 at 3), and a
// Solution evaluates y(t) anywhere in the interval, differentiably.
#include <catch2/catch.hpp>
#include <cmath>

#include "autodiff/sg.hpp"
#include "sde/ode.hpp"
#include "tests/support/ode_problems.hpp"

using namespace sg;
using namespace sg::ode;

namespace {
constexpr DType f64 = DType::f64;
using test::rotation;
Tensor exact(const Tensor& y0, double t) { return test::rotation_exact(y0, t); }
const Tensor& y0() { return test::rotation_start(); }
// max error of the outputs at times ts of a solve over [0, t1] with fixed steps of size h
double output_error(const Tableau& tb, double h, double t1, const std::vector<double>& ts) {
  const Result r =
      odeint(rotation(), {y0()}, 0.0, t1, {.method = &tb, .fixed_step = h, .output_times = ts});
  REQUIRE(r.ys.size() == ts.size());
  double e = 0;
  for (std::size_t i = 0; i < ts.size(); ++i)
    e = std::max(e, max(abs(r.ys[i][0] - exact(y0(), ts[i]))).item());
  return e;
}
// the dense solution's max error at 97 points of [0, 2.1]
double dense_error(const Tableau& tb, double h) {
  std::vector<double> ts;
  for (int i = 1; i < 98; ++i) ts.push_back(2.0 * i / 98.0 + 1e-3);
  return output_error(tb, h, 2.1, ts);
}
// its max error strictly inside the steps (theta = 0.2, 0.5, 0.85 of every step) over [0, 2]
double interior_error(const Tableau& tb, double h) {
  std::vector<double> ts;
  const int n = static_cast<int>(std::lround(2.0 / h));
  for (int k = 0; k < n; ++k)
    for (double theta : {0.2, 0.5, 0.85}) ts.push_back((k + theta) * h);
  return output_error(tb, h, 2.0, ts);
}
// the same method with the cubic Hermite interpolant instead of its own
Tableau with_hermite(const Tableau& tb) {
  Tableau h = tb;
  h.name += " (Hermite)";
  h.interpolant = Interpolant::hermite;
  h.dense_c.clear();
  h.dense_a.clear();
  return h;
}
}  // namespace

TEST_CASE("output times cost no extra steps with an interpolant", "[ode][dense]") {
  std::vector<double> ts;
  for (int i = 0; i <= 50; ++i) ts.push_back(0.06 * i);
  for (const Tableau* tb : {&dopri5(), &tsit5(), &bosh3()}) {
    INFO(tb->name);
    const Options plain{.method = tb, .rtol = 1e-8, .atol = 1e-8};
    Options with = plain;
    with.output_times = ts;
    const Result a = odeint(rotation(), {y0()}, 0.0, 3.0, plain);
    const Result b = odeint(rotation(), {y0()}, 0.0, 3.0, with);
    CHECK(b.nfe == a.nfe);
    CHECK(b.steps == a.steps);
    REQUIRE(b.ys.size() == ts.size());
    for (std::size_t i = 0; i < ts.size(); ++i)
      CHECK(max(abs(b.ys[i][0] - exact(y0(), ts[i]))).item() < (tb == &dopri5() ? 1e-7 : 1e-6));
  }
}

TEST_CASE("dense output converges at the interpolant's order", "[ode][dense]") {
  struct Case {
    const Tableau* tb;
    double order;
  };
  for (const Case& c : {Case{&dopri5(), 5}, Case{&bosh3(), 3}, Case{&tsit5(), 5}}) {
    const double e1 = dense_error(*c.tb, 0.1), e2 = dense_error(*c.tb, 0.05);
    const double slope = std::log2(e1 / e2);
    INFO(c.tb->name << ": errors " << e1 << ", " << e2 << ", slope " << slope);
    CHECK(slope > c.order - 0.35);
  }
}

TEST_CASE("a dense Solution is y(t) anywhere in the interval, differentiably", "[ode][dense]") {
  const Tensor y = y0().detach().requires_grad_();
  const Result r = odeint(rotation(), {y}, 0.0, 2.0, {.rtol = 1e-10, .atol = 1e-10, .dense = true});
  REQUIRE(r.solution);
  CHECK(r.solution->steps() == static_cast<std::size_t>(r.steps));
  for (double t : {0.0, 0.123, 1.0, 1.77, 2.0})
    CHECK(max(abs(r.solution->at(t)[0] - exact(y0(), t))).item() < 1e-9);
  CHECK(max(abs(r.solution->at(2.0)[0] - r.y[0])).item() < 1e-14);
  CHECK_THROWS_AS(r.solution->at(2.5), ValueError);
  // d/dy0 of |y(1.3)|^2 through the interpolant: 2 y(1.3) R with y(t) = y0 R^T
  const Tensor y13 = r.solution->at(1.3)[0];
  const Tensor g = grad(sum(y13 * y13), {y})[0];
  const Tensor want = matmul(exact(y0(), 1.3) * 2.0, exact(eye(2, f64), 1.3).mT());
  CHECK(max(abs(g - want)).item() < 1e-8);
  // backwards in time too
  const Result back = odeint(rotation(), {exact(y0(), 2.0)}, 2.0, 0.0,
                             {.rtol = 1e-10, .atol = 1e-10, .output_times = {1.5, 0.25}});
  CHECK(max(abs(back.ys[0][0] - exact(y0(), 1.5))).item() < 1e-8);
  CHECK(max(abs(back.ys[1][0] - exact(y0(), 0.25))).item() < 1e-8);
  CHECK_THROWS_AS(
      odeint(rotation(), {y0()}, 0.0, 1.0, {.method = &rk4(), .fixed_step = 0.1, .dense = true}),
      ValueError);
}

TEST_CASE("output times with the adjoint and checkpointed strategies", "[ode][dense][adjoint]") {
  Generator gen(31);
  const Tensor W = (randn({2, 2}, gen, f64) * 0.8).requires_grad_();
  const Dynamics f = [&](double t, const State& y) {
    return State{tanh(matmul(y[0], W)) + y[0] * (0.1 * t)};
  };
  const Tensor y = y0().detach().requires_grad_();
  const std::vector<double> ts = {0.0, 0.3, 0.3, 1.1, 1.7};
  const Options tight{.rtol = 1e-10, .atol = 1e-10, .output_times = ts};
  // L = sum over outputs of |y(t_k)|^2 (each weighted by k + 1) + |y(2)|^2
  auto loss = [&](const Result& r) {
    REQUIRE(r.ys.size() == ts.size());
    Tensor l = sum(square(r.y[0]));
    for (std::size_t k = 0; k < r.ys.size(); ++k)
      l = l + sum(square(r.ys[k][0])) * static_cast<double>(k + 1);
    return l;
  };
  const auto bp = grad(loss(odeint(f, {y}, 0.0, 2.0, tight)), {y, W});
  const Result adj = odeint_adjoint(f, {y}, {W}, 0.0, 2.0, {.forward = tight});
  const Result ck = odeint_checkpointed(f, {y}, {W}, 0.0, 2.0, tight);
  CHECK(max(abs(adj.ys[1][0] - ck.ys[1][0])).item() < 1e-9);
  const auto ga = grad(loss(adj), {y, W});
  const auto gc = grad(loss(ck), {y, W});
  for (int i = 0; i < 2; ++i) {
    CHECK(max(abs(ga[i] - bp[i])).item() / max(abs(bp[i])).item() < 1e-7);
    CHECK(max(abs(gc[i] - bp[i])).item() / max(abs(bp[i])).item() < 1e-7);
  }
  CHECK(adj.nfe_backward() > 0);
  CHECK(ck.backward->solves == 4);  // one per non-empty interval
  CHECK_THROWS_AS(odeint_checkpointed(f, {y}, {W}, 0.0, 2.0, {.output_times = {1.0, 0.5}}),
                  ValueError);
}

TEST_CASE("tsit5's and dop853's own interpolants reach their orders and beat Hermite",
          "[ode][dense]") {
  // Local interpolation error O(h^(p+1)) for an interpolant of order p, on top of the global
  // error O(h^order): tsit5 (order 5, interpolant 4) converges at 5 inside steps, dop853
  // (order 8, interpolant 7) at 8; the cubic Hermite on the same stages only at 4.
  struct Case {
    const Tableau* tb;
    double h, order;
  };
  for (const Case& c : {Case{&tsit5(), 0.1, 5}, Case{&dop853(), 0.4, 8}}) {
    const double e1 = interior_error(*c.tb, c.h), e2 = interior_error(*c.tb, c.h / 2);
    const double slope = std::log2(e1 / e2);
    const Tableau herm = with_hermite(*c.tb);
    const double h1 = interior_error(herm, c.h), h2 = interior_error(herm, c.h / 2);
    INFO(c.tb->name << ": errors " << e1 << ", " << e2 << ", slope " << slope << "; Hermite " << h1
                    << ", " << h2 << ", slope " << std::log2(h1 / h2));
    CHECK(slope > c.order - 0.35);
    CHECK(std::log2(h1 / h2) < 4.5);  // the comparison is against a genuinely lower order
    CHECK(e1 < h1);
    CHECK(e2 * 10 < h2);
  }
}

TEST_CASE("dop853's output times cost only its 3 dense stages in the steps that hold them",
          "[ode][dense][dop853]") {
  std::vector<double> ts;
  for (int i = 0; i <= 40; ++i) ts.push_back(0.075 * i);
  std::vector<std::pair<double, double>> steps;  // (start, signed size) of the plain solve
  const Options plain{
      .method = &dop853(),
      .rtol = 1e-9,
      .atol = 1e-9,
      .on_accept = [&](double t, double h, const State&) { steps.emplace_back(t, h); }};
  const Result a = odeint(rotation(), {y0()}, 0.0, 3.0, plain);
  const std::size_t plain_steps = steps.size();
  // steps with an output time strictly inside (an output at a step's end is its end state)
  int64_t holding = 0;
  for (const auto& [t, h] : steps) {
    bool inside = false;
    for (double to : ts) inside |= to > t + 1e-12 && to < t + h - 1e-12;
    holding += inside;
  }
  REQUIRE(holding > 0);
  Options with = plain;
  with.output_times = ts;
  with.on_accept = nullptr;
  const Result b = odeint(rotation(), {y0()}, 0.0, 3.0, with);
  CHECK(b.steps == a.steps);
  CHECK(b.rejected == a.rejected);
  CHECK(b.nfe == a.nfe + 3 * holding);
  REQUIRE(b.ys.size() == ts.size());
  for (std::size_t i = 0; i < ts.size(); ++i)
    CHECK(max(abs(b.ys[i][0] - exact(y0(), ts[i]))).item() < 1e-8);
  // dense: three more evaluations in every step
  Options dense = plain;
  dense.on_accept = nullptr;
  dense.dense = true;
  const Result d = odeint(rotation(), {y0()}, 0.0, 3.0, dense);
  CHECK(d.steps == a.steps);
  CHECK(d.nfe == a.nfe + 3 * d.steps);
  CHECK(static_cast<std::size_t>(d.steps) == plain_steps);
  for (double t : {0.01, 0.7, 1.234, 2.999})
    CHECK(max(abs(d.solution->at(t)[0] - exact(y0(), t))).item() < 1e-8);
}
