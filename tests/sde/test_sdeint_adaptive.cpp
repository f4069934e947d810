// sdeint with adaptive steps (step doubling on a Brownian tree): on geometric Brownian motion
// with a fixed path the error against the exact strong solution on that path falls as the
// tolerances shrink, and so for scalar (SRIW1) and additive noise (SRA1, SRIW1, Euler-Maruyama);
// on a drift with a short fast phase (a pulse of width 0.005) it reaches a
// fixed-step solve's error with fewer evaluations and steps; output times are landed on; the
// step cap, a step underflow and bad settings report themselves; gradients flow through.
#include <catch2/catch.hpp>
#include <cmath>

#include "autodiff/sg.hpp"
#include "sde/sdeint.hpp"
#include "tests/support/expect.hpp"

using namespace sg;
using sde::Noise;

namespace {
constexpr DType f64 = DType::f64;

// dX = mu(t) X dt + s X dW, X0 = 1: X(t) = exp(M(t) - s^2 t/2 + s W(t)), M = int_0^t mu.
// mu is a constant plus a Lorentzian pulse k / (1 + ((t - c)/d)^2) of width d at c, so
// M(t) = mu0 t + k d (atan((t - c)/d) + atan(c/d)).
struct PulsedGbm {
  double mu0 = 0.5, s = 0.8, k = 0, c = 0.5, d = 1;
  double M(double t) const { return mu0 * t + k * d * (std::atan((t - c) / d) + std::atan(c / d)); }
  SdeDrift f() const {
    return [p = *this](const Tensor& x, double t) {
      return x * (p.mu0 + p.k / (1 + (t - p.c) * (t - p.c) / (p.d * p.d)));
    };
  }
  SdeDiffusion g() const {
    return [s = s](const Tensor& x, double) { return x * s; };
  }
  Tensor exact(const BrownianTree& W, double t) const {
    return exp(W(0.0, t) * s + (M(t) - s * s * t / 2));
  }
};
// mean |X_h - X| / |X| over the paths
double rel_error(const Tensor& y, const Tensor& exact) {
  return mean(abs(y - exact) / abs(exact)).item();
}
sde::Options adaptive(const sde::Method* m, double tol) {
  return {.method = m, .adaptive = true, .rtol = tol, .atol = tol};
}
}  // namespace

TEST_CASE("adaptive sdeint converges to the path's strong solution as the tolerance shrinks",
          "[sdeint][adaptive]") {
  // GBM (mu 0.5, s 0.8) on one tree of 64 paths (one step size for the batch). Each
  // tolerance's error is below the previous one's, and 1e-5 gains more than 20x over 1e-2.
  const int64_t N = 64;
  const BrownianTree W(29, {N}, 0.0, 1.0, {.levy_area = true, .dtype = f64});
  const PulsedGbm p;
  const Tensor x0 = ones({N}, f64), exact = p.exact(W, 1.0);
  for (const sde::Method* m : {&sde::milstein(), &sde::sriw1(), &sde::platen_weak2()}) {
    std::vector<double> errs;
    std::string log;
    for (double tol : {1e-2, 1e-3, 1e-4, 1e-5}) {
      const auto r = sde::sdeint(p.f(), p.g(), x0, 0.0, 1.0, W, adaptive(m, tol));
      REQUIRE(r.ok());
      CHECK(r.t == 1.0);
      errs.push_back(rel_error(r.y, exact));
      log += "tol " + std::to_string(tol) + ": error " + std::to_string(errs.back()) + ", " +
             std::to_string(r.steps) + " steps, " + std::to_string(r.rejected) + " rejected, nfe " +
             std::to_string(r.nfe) + "; ";
    }
    INFO(m->name << ": " << log);
    for (size_t i = 1; i < errs.size(); ++i) CHECK(errs[i] < errs[i - 1]);
    CHECK(errs.back() < errs.front() / 20);
  }
}

TEST_CASE("adaptive sdeint converges for scalar and additive noise too", "[sdeint][adaptive]") {
  // Scalar noise: GBM X [N, 2] with volatilities (0.5, 1) on one W per path, SRIW1, against
  // the exact solution. Additive noise: dX = sin X dt + 2/(1+t) dW with SRA1, SRIW1 and
  // Euler-Maruyama (strong order 1 there, so allowed), against SRA1 with 8192 fixed steps on
  // the same tree (its error ~1e-6, below the smallest measured here, ~4e-5). Errors fall
  // with every tolerance from 1e-2 to 1e-5, more than 10x in all.
  const int64_t N = 32;
  const auto check = [](const std::string& what, const auto& solve, const Tensor& ref) {
    std::vector<double> errs;
    for (double tol : {1e-2, 1e-3, 1e-4, 1e-5}) {
      const auto r = solve(tol);
      REQUIRE(r.ok());
      errs.push_back(mean(abs(r.y - ref)).item());
    }
    INFO(what << ": errors " << errs[0] << " " << errs[1] << " " << errs[2] << " " << errs[3]);
    for (size_t i = 1; i < errs.size(); ++i) CHECK(errs[i] < errs[i - 1]);
    CHECK(errs.back() < errs.front() / 10);
  };
  const BrownianTree Ws(3, {N, 1}, 0.0, 1.0, {.levy_area = true, .dtype = f64});
  const Tensor vol = from_vector({0.5, 1.0}, {2}, f64);
  const SdeDrift fs = [](const Tensor& x, double) { return x * 0.5; };
  const SdeDiffusion gs = [vol](const Tensor& x, double) { return x * vol; };
  check(
      "sriw1 scalar",
      [&](double tol) {
        sde::Options o = adaptive(&sde::sriw1(), tol);
        o.noise = Noise::scalar;
        return sde::sdeint(fs, gs, ones({N, 2}, f64), 0.0, 1.0, Ws, o);
      },
      exp(vol * Ws(0.0, 1.0) + 0.5 - vol * vol * 0.5));
  const BrownianTree Wa(5, {N}, 0.0, 1.0, {.levy_area = true, .dtype = f64});
  const SdeDrift fa = [](const Tensor& x, double) { return sin(x); };
  const SdeDiffusion ga = [](const Tensor& x, double t) { return full_like(x, 2 / (1 + t)); };
  const Tensor x0 = ones({N}, f64);
  const Tensor ref = sde::sdeint(fa, ga, x0, 0.0, 1.0, Wa,
                                 {.method = &sde::sra1(), .noise = Noise::additive, .steps = 8192})
                         .y;
  for (const sde::Method* m : {&sde::sra1(), &sde::sriw1(), &sde::euler_maruyama()})
    check(
        m->name + " additive",
        [&](double tol) {
          sde::Options o = adaptive(m, tol);
          o.noise = Noise::additive;
          return sde::sdeint(fa, ga, x0, 0.0, 1.0, Wa, o);
        },
        ref);
}

TEST_CASE("adaptive sdeint beats fixed steps at matched error on a short fast phase",
          "[sdeint][adaptive]") {
  // A drift pulse of width 0.005 at t = 0.5 (it multiplies X by e^2 within ~0.02). Fixed steps
  // must resolve the pulse everywhere; adaptive steps shrink only around it. Cost: drift +
  // diffusion evaluations (Milstein's jvp counts as one diffusion evaluation). Fixed solves
  // with the adaptive solve's evaluations (n_eq steps) and with twice them are both less
  // accurate, so matching the adaptive error takes fixed steps more than twice the cost.
  const int64_t N = 64;
  const BrownianTree W(31, {N}, 0.0, 1.0, {.levy_area = true, .dtype = f64});
  const PulsedGbm p{.mu0 = 0.0, .s = 0.5, .k = 2 / (M_PI * 0.005), .c = 0.5, .d = 0.005};
  const Tensor x0 = ones({N}, f64), exact = p.exact(W, 1.0);
  for (const auto& [m, per_step] : {std::pair{&sde::milstein(), 3}, {&sde::sriw1(), 6}}) {
    const auto a = sde::sdeint(p.f(), p.g(), x0, 0.0, 1.0, W, adaptive(m, 1e-5));
    REQUIRE(a.ok());
    const double target = rel_error(a.y, exact);
    const int64_t cost = a.nfe + a.nge, n_eq = (cost + per_step - 1) / per_step;
    std::string log;
    for (int64_t n : {n_eq, 2 * n_eq}) {
      const auto r = sde::sdeint(p.f(), p.g(), x0, 0.0, 1.0, W, {.method = m, .steps = n});
      REQUIRE(r.ok());
      CHECK(r.nfe + r.nge == per_step * n);
      const double e = rel_error(r.y, exact);
      log += "fixed " + std::to_string(n) + " steps: error " + std::to_string(e) + "; ";
      CHECK(e > target);
    }
    INFO(m->name << " adaptive (tol 1e-5): error " << target << ", " << a.steps << " steps + "
                 << a.rejected << " rejected, " << cost << " evaluations; " << log);
    // fixed steps need more than 2 n_eq steps; adaptive took 3 solver steps per attempt
    CHECK(3 * (a.steps + a.rejected) < 2 * n_eq);
  }
}

TEST_CASE("adaptive sdeint: output times, stats, gradients", "[sdeint][adaptive]") {
  const int64_t N = 32;
  const BrownianTree W(37, {N}, 0.0, 1.0, {.levy_area = true, .dtype = f64});
  const PulsedGbm p{.mu0 = 0.5, .s = 0.4};
  const Tensor x0 = ones({N}, f64);
  const std::vector<double> out{0.0, 0.123, 0.5, 0.5, 0.9};
  const auto r = sde::sdeint(
      p.f(), p.g(), x0, 0.0, 1.0, W,
      {.method = &sde::sriw1(), .output_times = out, .adaptive = true, .rtol = 1e-6, .atol = 1e-6});
  REQUIRE(r.ok());
  REQUIRE(r.ys.size() == out.size());
  for (size_t i = 0; i < out.size(); ++i) {
    INFO("output time " << out[i]);
    CHECK(rel_error(r.ys[i], p.exact(W, out[i])) < 1e-4);
  }
  CHECK(r.rejected > 0);
  // SRIW1 per attempt: 2 f for the whole step, 1 more for the first half (f(X, t) is shared),
  // 2 for the second; g: 4 + 3 + 4; the retry of a rejected step reuses f(X, t) and g(X, t).
  const int64_t attempts = r.steps + r.rejected;
  CHECK(r.nfe == 5 * attempts - r.rejected);
  CHECK(r.nge == 11 * attempts - r.rejected);

  // Backprop through an adaptive solve: the pathwise derivative of the computed solution with
  // its step sizes held; d mean X(1) / d mu = E[X(1)] = e^mu within 4 standard errors + 0.01.
  Tensor mu = sg::scalar(0.5, f64).requires_grad_();
  const SdeDrift f = [&](const Tensor& x, double) { return x * mu; };
  const auto ra = sde::sdeint(f, p.g(), ones({4000}, f64), 0.0, 1.0,
                              BrownianTree(41, {4000}, 0.0, 1.0, {.dtype = f64}),
                              adaptive(&sde::milstein(), 1e-3));
  REQUIRE(ra.ok());
  const Tensor d = grad(mean(ra.y), {mu})[0];
  const Tensor xs = ra.y.detach();
  const double se = std::sqrt(mean(square(xs - mean(xs))).item() / 4000.0);
  INFO("d mean X(1)/d mu = " << d.item() << ", e^mu = " << std::exp(0.5) << ", se " << se);
  CHECK(std::abs(d.item() - std::exp(0.5)) < 4 * se + 0.01);
}

TEST_CASE("adaptive sdeint: caps, underflow and bad settings report themselves",
          "[sdeint][adaptive]") {
  const BrownianTree W(1, {8}, 0.0, 1.0, {.levy_area = true, .dtype = f64});
  const Tensor x = ones({8}, f64);
  const PulsedGbm p;
  const auto solve = [&](sde::Options o) {
    o.adaptive = true;
    if (!o.method) o.method = &sde::milstein();
    return sde::sdeint(p.f(), p.g(), x, 0.0, 1.0, W, o);
  };
  const auto r = solve({.max_steps = 20, .rtol = 1e-8, .atol = 1e-8});
  CHECK(r.status == ode::Status::too_many_steps);
  CHECK(r.steps + r.rejected == 20);
  CHECK(r.t < 1.0);
  const auto u = solve({.rtol = 1e-8, .atol = 1e-8, .dt_min = 1e-3});
  CHECK(u.status == ode::Status::step_underflow);
  CHECK(u.t < 1.0);
  const auto blow = sde::sdeint([](const Tensor& y, double) { return y * y * 1e3; }, p.g(),
                                x * 10.0, 0.0, 1.0, W, adaptive(&sde::milstein(), 1e-3));
  CHECK(!blow.ok());
  CHECK(blow.t < 1.0);

  const auto bad = [&](sde::Options o, const char* field) {
    const std::string msg = test::message_of<ValueError>([&] { solve(o); });
    INFO(msg);
    CHECK(msg.find("sdeint") != std::string::npos);
    CHECK(msg.find(field) != std::string::npos);
  };
  const double nan = std::nan("");
  bad({.rtol = 0}, "options.rtol");
  bad({.rtol = nan}, "options.rtol");
  bad({.rtol = 1e-17}, "resolution");
  bad({.atol = -1}, "options.atol");
  bad({.steps = 10}, "options.steps");
  bad({.dt = 2.0}, "options.dt");
  bad({.dt_min = -1}, "options.dt_min");
  bad({.dt_min = 0.1, .dt_max = 0.01}, "options.dt_max");
  bad({.safety = 1.5}, "options.safety");
  bad({.fac_min = 0}, "options.fac_min");
  bad({.fac_max = 1}, "options.fac_max");
  bad({.method = &sde::euler_maruyama()}, "euler_maruyama");
  // Euler-Maruyama is fine for additive noise (strong order 1 there)
  CHECK(sde::sdeint(p.f(), [](const Tensor& y, double) { return full_like(y, 0.3); }, x, 0.0, 1.0,
                    W, {.noise = Noise::additive, .adaptive = true})
            .ok());
  // A uniform-grid path cannot answer the times adaptive steps ask for.
  const BrownianPath P(9, {8}, 0.0, 1.0, 40, f64);
  const std::string msg = test::message_of<ValueError>([&] {
    sde::sdeint(p.f(), p.g(), x, 0.0, 1.0, sde::GridBrownian(P),
                {.method = &sde::milstein(), .adaptive = true});
  });
  CHECK(msg.find("any time") != std::string::npos);
  CHECK(msg.find("GridBrownian") != std::string::npos);
}
