// VDM noise schedules: initial values and endpoints, monotone on a grid for the initial and for
// random parameters, gamma'(t) by forward mode against central finite differences in float64,
// the VP-to-gamma map against the VP SDE's marginals, and typed errors for bad configurations.
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>

#include "autodiff/sg.hpp"
#include "objectives/vdm_schedule.hpp"
#include "tests/support/expect.hpp"

using namespace sg;
using namespace sg::obj;

namespace {
constexpr DType f64 = DType::f64;

// One of each schedule, float64, small networks.
std::vector<std::unique_ptr<NoiseSchedule>> all_schedules(Generator& gen) {
  std::vector<std::unique_ptr<NoiseSchedule>> v;
  v.push_back(std::make_unique<FixedLinearSchedule>());
  v.push_back(std::make_unique<LearnedScalarSchedule>(ScheduleRange{}, f64));
  v.push_back(
      std::make_unique<MonotoneNetSchedule>(MonotoneNetOptions{.features = 16, .dtype = f64}, gen));
  v.push_back(std::make_unique<LearnedEndpointsSchedule>(
      MonotoneNetOptions{.features = 16, .dtype = f64}, gen));
  v.push_back(std::make_unique<VpSchedule>(VpSde(), 1e-3));
  return v;
}
// Every parameter replaced by N(0, scale^2) (signs included: |W| must keep it monotone).
void randomise(NoiseSchedule& s, Generator& gen, double scale) {
  NoGradGuard off;
  for (auto& [name, p] : s.named_parameters())
    *p = (randn(p->shape(), gen, p->dtype()) * scale).detach().requires_grad_();
}
}  // namespace

TEST_CASE("vdm schedules: initial values and endpoints", "[vdm][schedule]") {
  Generator gen(1);
  const Tensor t = from_vector({0.0, 0.25, 0.5, 1.0}, {4}, f64);
  FixedLinearSchedule fixed;
  const std::vector<double> lin = {-13.3, -13.3 + 0.25 * 18.3, -13.3 + 0.5 * 18.3, 5.0};
  const std::vector<double> gf = fixed(t).to_vector();
  for (size_t i = 0; i < 4; ++i) CHECK(gf[i] == Approx(lin[i]).epsilon(1e-14));
  LearnedScalarSchedule scalar({}, f64);
  const std::vector<double> gs = scalar(t).to_vector();
  for (size_t i = 0; i < 4; ++i) CHECK(gs[i] == Approx(lin[i]).epsilon(1e-14));
  // the monotone network starts within O(init_std^2) of the line (its kernels are N(0, 0.01^2))
  MonotoneNetSchedule net({.dtype = f64}, gen);
  CHECK(max(abs(net(t) - fixed(t))).item() < 1e-3);
  LearnedEndpointsSchedule ends({.dtype = f64}, gen);
  CHECK(max(abs(ends(t) - fixed(t))).item() < 1e-3);
  // endpoints are exact for the learned-endpoint form, for any parameters
  randomise(ends, gen, 1.0);
  const auto [g0, g1] = ends.endpoints(t);
  const std::vector<double> ge = ends(from_vector({0.0, 1.0}, {2}, f64)).to_vector();
  CHECK(ge[0] == g0.item());
  CHECK(ge[1] == Approx(g1.item()).epsilon(1e-15));
  CHECK(g0.item() == ends.gamma_0.item());
  CHECK(g1.item() == Approx(ends.gamma_0.item() + std::abs(ends.delta.item())).epsilon(1e-15));
  // sigma_0^2, alpha_1^2 of the default range (spec section 4.1)
  CHECK(sigmoid(scalar(zeros({}, f64))).item() == Approx(1.674490e-6).epsilon(1e-6));
  CHECK(sigmoid(-scalar(ones({}, f64))).item() == Approx(0.00669285).epsilon(1e-6));
  // shapes follow t
  CHECK(net(zeros({2, 3}, f64)).shape() == Shape({2, 3}));
  CHECK(ends(zeros({}, f64)).shape() == Shape({}));
}

TEST_CASE("vdm schedules: monotone on a grid, initial and random parameters", "[vdm][schedule]") {
  Generator gen(2);
  const Tensor grid = linspace(0.0, 1.0, 2001, f64);
  for (int trial = 0; trial < 6; ++trial) {
    for (auto& s : all_schedules(gen)) {
      if (trial > 0) randomise(*s, gen, trial % 2 ? 1.0 : 5.0);
      INFO(s->name() << " trial " << trial);
      const Tensor g = (*s)(grid);
      const Tensor steps = slice(g, 0, 1, 2001) - slice(g, 0, 0, 2000);
      CHECK(min(steps).item() >= 0.0);
      const auto [gg, dg] = gamma_and_derivative(*s, grid);
      CHECK(min(dg).item() >= 0.0);
      REQUIRE_NOTHROW(check_monotone(*s));
    }
  }
}

TEST_CASE("vdm schedules: gamma'(t) by forward mode equals central differences (float64)",
          "[vdm][schedule]") {
  Generator gen(3);
  const Tensor t = from_vector({0.01, 0.2, 0.37, 0.5, 0.81, 0.99}, {6}, f64);
  const double h = 1e-4;
  for (int trial = 0; trial < 3; ++trial) {
    for (auto& s : all_schedules(gen)) {
      if (trial > 0) randomise(*s, gen, 2.0);
      INFO(s->name() << " trial " << trial);
      const auto [g, dg] = gamma_and_derivative(*s, t);
      CHECK(max(abs(g - (*s)(t))).item() == 0.0);  // the primal is the plain evaluation
      // central differences at h and h/2, Richardson-extrapolated: O(h^4) (gamma_vp ~ log t)
      const auto central = [&](double e) { return ((*s)(t + e) - (*s)(t - e)) / (2 * e); };
      const Tensor fd = (central(h / 2) * 4.0 - central(h)) / 3.0;
      CHECK(max(abs(dg - fd) / maximum(abs(dg), ones_like(dg))).item() < 1e-8);
    }
  }
  // gamma' is differentiable in the parameters: d gamma'(t)/d w = sign(w) for b + |w| t
  LearnedScalarSchedule scalar({}, f64);
  const auto [g, dg] = gamma_and_derivative(scalar, t);
  const auto gw = sg::grad(sum(dg), {scalar.w, scalar.b}, {.allow_unused = true});
  CHECK(gw[0].item() == Approx(6.0));
  CHECK(gw[1].item() == 0.0);
}

TEST_CASE("vdm schedules: the VP map reproduces the VP SDE's marginals", "[vdm][schedule]") {
  const VpSde vp;
  const Tensor t = linspace(1e-4, 1.0, 1001, f64);
  const Tensor gamma = vp_gamma(vp, t);
  const auto [alpha, std] = vp.marginal(t);
  // alpha_t^2 = sigmoid(-gamma), sigma_t^2 = sigmoid(gamma)
  CHECK(max(abs(sigmoid(-gamma) / square(alpha) - 1.0)).item() < 1e-12);
  CHECK(max(abs(sigmoid(gamma) / square(std) - 1.0)).item() < 1e-12);
  // gamma' = beta e^B / (e^B - 1) = beta / sigma^2
  VpSchedule sched(vp, 1e-5);
  const auto [g, dg] = gamma_and_derivative(sched, t);
  CHECK(max(abs(dg * square(std) / vp.beta(t) - 1.0)).item() < 1e-12);
  // flat below t_eps, on the VP axis above it
  CHECK(sched(zeros({}, f64)).item() == vp_gamma(vp, full({}, 1e-5, f64)).item());
  CHECK(sched.gamma_min() == Approx(std::log(std::expm1(1e-6 + 0.5e-10 * 19.9))).epsilon(1e-12));
  CHECK(sched.gamma_max() == Approx(std::log(std::expm1(10.05))).epsilon(1e-14));
}

TEST_CASE("vdm schedules: invalid configurations raise ScheduleError naming schedule and field",
          "[vdm][schedule]") {
  Generator gen(4);
  const auto field_of = [](auto&& make) {
    try {
      make();
    } catch (const ScheduleError& e) {
      return e.schedule + "/" + e.field;
    }
    return std::string("no error");
  };
  CHECK(field_of([] { FixedLinearSchedule({.gamma_min = 5, .gamma_max = 5}); }) ==
        "fixed/gamma_min");
  CHECK(field_of([] { FixedLinearSchedule({.gamma_min = 6, .gamma_max = 5}); }) ==
        "fixed/gamma_min");
  CHECK(field_of([] { LearnedScalarSchedule({.gamma_min = NAN, .gamma_max = 5}); }) ==
        "learned_scalar/gamma_min");
  CHECK(field_of([] { LearnedScalarSchedule({.gamma_min = 0, .gamma_max = INFINITY}); }) ==
        "learned_scalar/gamma_max");
  CHECK(field_of([&] { MonotoneNetSchedule({.features = 0}, gen); }) == "monotone_net/features");
  CHECK(field_of([&] { MonotoneNetSchedule({.init_std = NAN}, gen); }) == "monotone_net/init_std");
  CHECK(field_of([&] {
          LearnedEndpointsSchedule({.range = {.gamma_min = 1, .gamma_max = -1}}, gen);
        }) == "learned_endpoints/gamma_min");
  CHECK(field_of([] { VpSchedule(VpSde(), 0.0); }) == "vp/t_eps");
  CHECK(field_of([] { VpSchedule(VpSde(), NAN); }) == "vp/t_eps");
  const std::string msg = test::message_of<ValueError>([] { FixedLinearSchedule({5, -5}); });
  CHECK(msg.find("'fixed'") != std::string::npos);
  CHECK(msg.find("gamma_min") != std::string::npos);
  // a schedule that decreases (parameters set by hand) fails the monotonicity check
  LearnedScalarSchedule s({}, f64);
  {
    NoGradGuard off;
    s.w = zeros({}, f64).requires_grad_();
  }
  CHECK(field_of([&] { check_monotone(s); }) == "learned_scalar/monotone");
}
