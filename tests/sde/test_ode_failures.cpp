// Solver failures are never silent: bad settings are ValueErrors naming odeint and the field, a
// failed forward or backward solve raises SolveError when differentiated, the backward
// evaluations are reported, the adjoint inherits the forward tolerances, and FSAL stages are
// evaluated once.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "autodiff/sg.hpp"
#include "sde/ode.hpp"
#include "tests/support/expect.hpp"
#include "tests/support/ode_problems.hpp"

using namespace sg;
using namespace sg::ode;

namespace {
constexpr DType f64 = DType::f64;
using test::message_of;
using test::rotation;
const Tensor& y0() { return test::rotation_start(); }
}  // namespace

TEST_CASE("bad solver settings are ValueErrors naming the field", "[ode][failures]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const auto f = rotation();
  CHECK_THAT(message_of<ValueError>([&] { odeint(f, {y0()}, 0.0, nan); }), Catch::Contains("t1"));
  CHECK_THROWS_AS(odeint(f, {y0()}, -INFINITY, 1.0), ValueError);
  CHECK_THAT(message_of<ValueError>([&] { odeint(f, {y0()}, 0.0, 1.0, {.rtol = 0}); }),
             Catch::Contains("rtol"));
  CHECK_THROWS_AS(odeint(f, {y0()}, 0.0, 1.0, {.rtol = -1e-3}), ValueError);
  CHECK_THAT(message_of<ValueError>([&] { odeint(f, {y0()}, 0.0, 1.0, {.atol = -1}); }),
             Catch::Contains("atol"));
  CHECK_THROWS_AS(odeint(f, {y0()}, 0.0, 1.0, {.max_steps = 0}), ValueError);
  CHECK_THROWS_AS(odeint(f, {y0()}, 0.0, 1.0, {.fixed_step = nan}), ValueError);
  // a tolerance below float32's resolution is refused for a float32 state, fine for float64
  const Dynamics f32 = [](double, const State& y) { return State{-y[0]}; };
  CHECK_THAT(message_of<ValueError>(
                 [&] { odeint(f32, {ones({2})}, 0.0, 1.0, {.rtol = 1e-9, .atol = 1e-9}); }),
             Catch::Contains("float32"));
  CHECK(odeint(f, {y0()}, 0.0, 1.0, {.rtol = 1e-9, .atol = 1e-9}).ok());
  // output times: inside the interval and sorted in the direction of integration
  CHECK_THAT(message_of<ValueError>([&] {
               odeint(f, {y0()}, 0.0, 1.0, {.output_times = {0.5, 0.2}});
             }),
             Catch::Contains("sorted"));
  CHECK_THROWS_AS(odeint(f, {y0()}, 1.0, 0.0, {.output_times = {0.2, 0.5}}), ValueError);
  CHECK(odeint(f, {y0()}, 1.0, 0.0, {.output_times = {0.5, 0.2}}).ys.size() == 2);
  CHECK_THROWS_AS(odeint(f, {y0()}, 0.0, 1.0, {.output_times = {nan}}), ValueError);
}

TEST_CASE("a failed forward solve has no gradient", "[ode][failures]") {
  const Tensor y = y0().detach().requires_grad_();
  const Options short_budget{.max_steps = 3};
  const Result adj = odeint_adjoint(rotation(), {y}, {}, 0.0, 5.0, {.forward = short_budget});
  CHECK_FALSE(adj.ok());
  CHECK_THAT(message_of<SolveError>([&] { grad(sum(adj.y[0]), {y}); }),
             Catch::Contains("odeint_adjoint") && Catch::Contains("too many steps"));
  const Result ck = odeint_checkpointed(rotation(), {y}, {}, 0.0, 5.0, short_budget);
  CHECK_FALSE(ck.ok());
  CHECK_THROWS_AS(grad(sum(ck.y[0]), {y}), SolveError);
}

TEST_CASE("a failed backward (adjoint) solve raises instead of returning a gradient",
          "[ode][failures]") {
  const Tensor y = y0().detach().requires_grad_();
  const Result r =
      odeint_adjoint(rotation(), {y}, {}, 0.0, 5.0,
                     {.forward = {.rtol = 1e-8, .atol = 1e-8},
                      .backward = Options{.rtol = 1e-8, .atol = 1e-8, .max_steps = 4}});
  REQUIRE(r.ok());
  CHECK_THAT(message_of<SolveError>([&] { grad(sum(r.y[0]), {y}); }), Catch::Contains("backward"));
}

TEST_CASE("backward evaluations are reported and the adjoint inherits the forward tolerances",
          "[ode][failures]") {
  const Tensor y = y0().detach().requires_grad_();
  const Options tight{.rtol = 1e-11, .atol = 1e-11};
  const Tensor bp = grad(sum(square(odeint(rotation(), {y}, 0.0, 2.0, tight).y[0])), {y})[0];
  const Result adj = odeint_adjoint(rotation(), {y}, {}, 0.0, 2.0, {.forward = tight});
  CHECK(adj.nfe_backward() == 0);
  const Tensor g = grad(sum(square(adj.y[0])), {y})[0];
  CHECK(adj.nfe_backward() > adj.nfe / 2);  // the augmented backward solve, same tolerance
  CHECK(adj.backward->solves == 1);
  // at the default backward tolerances (1e-6 / 1e-8) this was ~1e-7
  CHECK(max(abs(g - bp)).item() / max(abs(bp)).item() < 1e-9);
  const Result ck = odeint_checkpointed(rotation(), {y}, {}, 0.0, 2.0, tight);
  grad(sum(ck.y[0]), {y});
  grad(sum(ck.y[0]) * 2, {y});
  CHECK(ck.backward->solves == 2);
  CHECK(ck.nfe_backward() == 2 * ck.steps * 6);  // dopri5 replays 6 stages (not the FSAL 7th)
}

TEST_CASE("first-same-as-last stages are evaluated once, also on fixed grids", "[ode][fsal]") {
  for (const Tableau* tb : {&dopri5(), &tsit5(), &bosh3()}) {
    INFO(tb->name);
    const Result r = odeint(rotation(), {y0()}, 0.0, 1.0, {.method = tb, .fixed_step = 0.1});
    REQUIRE(r.ok());
    CHECK(r.steps == 10);
    CHECK(r.nfe == 1 + r.steps * (tb->stages() - 1));
    const Tensor y = y0().detach().requires_grad_();
    const Result ck =
        odeint_checkpointed(rotation(), {y}, {}, 0.0, 1.0, {.method = tb, .fixed_step = 0.1});
    grad(sum(ck.y[0]), {y});
    CHECK(ck.nfe_backward() == ck.steps * (tb->stages() - 1));
  }
}
