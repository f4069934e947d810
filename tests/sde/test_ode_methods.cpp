// DOP853, max_step, per-component atol, explicit step grids, terminal events and the stiffness
// test of the explicit adaptive solvers.
#include <catch2/catch.hpp>
#include <cmath>

#include "autodiff/sg.hpp"
#include "sde/ode.hpp"
#include "tests/support/ode_problems.hpp"

using namespace sg;
using namespace sg::ode;

namespace {
constexpr DType f64 = DType::f64;
using test::arenstorf;
using test::arenstorf_start;
using test::rotation;
constexpr double kPeriod = test::kArenstorfPeriod;
Tensor exact(const Tensor& y0, double t) { return test::rotation_exact(y0, t); }
const Tensor& y0() { return test::rotation_start(); }
}  // namespace

TEST_CASE("DOP853 reaches order 8 and beats dopri5's evaluations at tight tolerances",
          "[ode][dop853]") {
  const double e1 =
      max(abs(odeint(rotation(), {y0()}, 0.0, 2.0, {.method = &dop853(), .fixed_step = 0.4}).y[0] -
              exact(y0(), 2.0)))
          .item();
  const double e2 =
      max(abs(odeint(rotation(), {y0()}, 0.0, 2.0, {.method = &dop853(), .fixed_step = 0.2}).y[0] -
              exact(y0(), 2.0)))
          .item();
  INFO("errors " << e1 << ", " << e2);
  CHECK(std::log2(e1 / e2) > 7.5);
  // Arenstorf over one period returns to its start
  for (double tol : {1e-9, 1e-10}) {
    const Options o5{.method = &dopri5(), .rtol = tol, .atol = tol, .max_steps = 1000000};
    Options o8 = o5;
    o8.method = &dop853();
    const Result r5 = odeint(arenstorf(), {arenstorf_start()}, 0.0, kPeriod, o5);
    const Result r8 = odeint(arenstorf(), {arenstorf_start()}, 0.0, kPeriod, o8);
    REQUIRE(r5.ok());
    REQUIRE(r8.ok());
    const double err5 = max(abs(r5.y[0] - arenstorf_start())).item();
    const double err8 = max(abs(r8.y[0] - arenstorf_start())).item();
    INFO("tol " << tol << ": dopri5 nfe " << r5.nfe << " err " << err5 << "; dop853 nfe " << r8.nfe
                << " err " << err8);
    // dop853 dominates: fewer evaluations and a smaller error at the same tolerance
    CHECK(r8.nfe < r5.nfe);
    CHECK(err8 < err5);
    if (tol < 1e-9) CHECK(r8.nfe * 1.5 < r5.nfe);
  }
  CHECK(&tableau("dop853") == &dop853());
}

TEST_CASE("max_step, per-component atol and explicit step grids are honoured", "[ode][options]") {
  std::vector<double> hs;
  const Options capped{
      .rtol = 1e-4, .atol = 1e-4, .on_accept = [&](double, double h, const State&) {
        hs.push_back(std::abs(h));
      }};
  Options o = capped;
  o.max_step = 0.05;
  REQUIRE(odeint(rotation(), {y0()}, 0.0, 2.0, o).ok());
  for (double h : hs) CHECK(h <= 0.05 + 1e-15);
  CHECK(hs.size() >= 40);
  // component_atol: one entry per state component, and it changes the steps taken
  const Dynamics two = [](double, const State& y) { return State{-y[0], -y[1] * 3.0}; };
  const State s0 = {ones({3}, f64), ones({2}, f64)};
  const Result loose = odeint(two, s0, 0.0, 5.0, {.rtol = 1e-3, .atol = 1e-3});
  const Result tight =
      odeint(two, s0, 0.0, 5.0, {.rtol = 1e-3, .atol = 1e-3, .component_atol = {1e-3, 1e-10}});
  CHECK(tight.steps > loose.steps);
  CHECK_THROWS_AS(odeint(two, s0, 0.0, 5.0, {.component_atol = {1e-3}}), ValueError);
  CHECK_THROWS_AS(odeint(two, s0, 0.0, 5.0, {.component_atol = {1e-3, -1}}), ValueError);
  CHECK_THROWS_AS(odeint(two, s0, 0.0, 5.0, {.max_step = -1}), ValueError);
  // the PI term of the step controller: Hairer's DOPRI5 value works, nonsense is refused
  CHECK_THROWS_AS(odeint(two, s0, 0.0, 5.0, {.beta = 0.5}), ValueError);
  const Result pi =
      odeint(rotation(), {y0()}, 0.0, 2.0, {.rtol = 1e-8, .atol = 1e-8, .beta = 0.04});
  REQUIRE(pi.ok());
  CHECK(max(abs(pi.y[0] - exact(y0(), 2.0))).item() < 1e-7);
  // step grid: exactly these steps; a uniform grid equals fixed_step
  std::vector<double> starts;
  const std::vector<double> grid = {0.0, 0.1, 0.35, 0.5, 1.2, 2.0};
  Options grid_o{.method = &rk4(), .step_grid = grid};
  grid_o.on_accept = [&](double t, double, const State&) { starts.push_back(t); };
  const Result g = odeint(rotation(), {y0()}, 0.0, 2.0, grid_o);
  CHECK(g.steps == 5);
  CHECK(starts == std::vector<double>(grid.begin(), grid.end() - 1));
  std::vector<double> uniform;
  for (int i = 0; i <= 20; ++i) uniform.push_back(0.1 * i);
  uniform.back() = 2.0;
  CHECK(
      max(abs(odeint(rotation(), {y0()}, 0.0, 2.0, {.method = &rk4(), .step_grid = uniform}).y[0] -
              odeint(rotation(), {y0()}, 0.0, 2.0, {.method = &rk4(), .fixed_step = 0.1}).y[0]))
          .item() < 1e-14);
  CHECK_THROWS_AS(odeint(rotation(), {y0()}, 0.0, 2.0, {.step_grid = {0.0, 1.5, 1.0, 2.0}}),
                  ValueError);
  CHECK_THROWS_AS(odeint(rotation(), {y0()}, 0.0, 2.0, {.step_grid = {0.0, 1.0}}), ValueError);
}

TEST_CASE("a terminal event stops the solve at the crossing", "[ode][event]") {
  // a falling ball: y'' = -9.81 from rest at height 10 hits the ground at sqrt(20 / 9.81)
  const Dynamics fall = [](double, const State& s) { return State{s[1], full({1}, -9.81, f64)}; };
  const State start = {full({1}, 10.0, f64), zeros({1}, f64)};
  for (const Tableau* tb : {&dopri5(), &tsit5(), &bosh3(), &dop853()}) {
    INFO(tb->name);
    const Result r = odeint(fall, start, 0.0, 5.0,
                            {.method = tb,
                             .rtol = 1e-10,
                             .atol = 1e-10,
                             .output_times = {0.5, 4.0},
                             .event = [](double, const State& y) { return y[0].item(); }});
    CHECK(r.status == Status::event);
    CHECK(r.ok());
    CHECK(r.t == Approx(std::sqrt(20 / 9.81)).epsilon(1e-10));
    CHECK(std::abs(r.y[0].item()) < 1e-8);
    CHECK(r.ys.size() == 1);  // 4.0 lies after the event
  }
  CHECK_THROWS_AS(odeint(fall, start, 0.0, 5.0,
                         {.method = &rk4(),
                          .fixed_step = 0.1,
                          .event = [](double, const State& y) { return y[0].item(); }}),
                  ValueError);
}

TEST_CASE("the explicit solvers detect stiffness and say so", "[ode][stiffness]") {
  // Van der Pol, mu = 1000: stiff away from the fast transitions
  const Dynamics vdp = [](double, const State& s) {
    const Tensor x = slice(s[0], 0, 0, 1), v = slice(s[0], 0, 1, 2);
    return State{concat({v, (1.0 - x * x) * v * 1000.0 - x}, 0)};
  };
  const Result r = odeint(vdp, {from_vector({2.0, 0.0}, {2}, f64)}, 0.0, 3000.0,
                          {.rtol = 1e-6, .atol = 1e-6, .max_steps = 3000});
  CHECK(r.status == Status::too_many_steps);
  CHECK(r.stiffness_detected);
  CHECK(r.stiff_at < 10.0);
  CHECK_FALSE(
      odeint(rotation(), {y0()}, 0.0, 20.0, {.rtol = 1e-8, .atol = 1e-8}).stiffness_detected);
}
