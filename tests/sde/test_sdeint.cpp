// sdeint: measured strong orders on geometric Brownian motion (diagonal and scalar noise; the
// exact solution on the same Brownian path is exp((mu - s^2/2) t + s W(t))) and on an additive
// linear SDE with exact solution (X0 + W(t))/(1 + t); measured weak orders against closed-form
// moments; trajectories at output times with steps that divide nothing; gradients through a
// solve against central differences and the closed form d E[X_T]/d mu; bad input.
//
// Orders are least-squares slopes of log error against log h over 5 step sizes. Every solve of
// one problem uses the same Brownian tree (common random numbers), so the Monte-Carlo error of
// each estimate is that of (X_h - X_exact), much smaller than the error itself; the weak tests
// estimate E[phi(X_h)] - E[phi(X)] as the mean of phi(X_h) - phi(X_exact) (unbiased, as
// E[phi(X_exact)] is the closed form), and each test states its standard error at the smallest h.
#include <catch2/catch.hpp>
#include <cmath>

#include "autodiff/sg.hpp"
#include "sde/sdeint.hpp"

using namespace sg;
using sde::Noise;

namespace {
constexpr DType f64 = DType::f64;

// Least-squares line log e = a + slope log h, with the slope's standard error from the
// residuals: se^2 = sum r^2 / (n - 2) / sum (log h - mean)^2.
struct Fit {
  double slope, se;
};
Fit ls_fit(const std::vector<double>& h, const std::vector<double>& e) {
  double mx = 0, my = 0;
  const double n = double(h.size());
  for (size_t i = 0; i < h.size(); ++i) mx += std::log(h[i]) / n, my += std::log(e[i]) / n;
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < h.size(); ++i) {
    const double dx = std::log(h[i]) - mx;
    sxy += dx * (std::log(e[i]) - my), sxx += dx * dx;
  }
  const double slope = sxy / sxx;
  double rss = 0;
  for (size_t i = 0; i < h.size(); ++i) {
    const double res = std::log(e[i]) - my - slope * (std::log(h[i]) - mx);
    rss += res * res;
  }
  return {slope, std::sqrt(rss / (n - 2) / sxx)};
}
double ls_slope(const std::vector<double>& h, const std::vector<double>& e) {
  return ls_fit(h, e).slope;
}
std::string show(const std::vector<double>& v) {
  std::string s;
  for (double x : v) s += std::to_string(x) + " ";
  return s;
}
double stderr_of_mean(const Tensor& x) {
  const double m = mean(x).item();
  return std::sqrt(mean(square(x - m)).item() / double(x.numel()));
}

// Geometric Brownian motion dX = mu X dt + s X dW, X0 = 1.
struct Gbm {
  double mu = 0.5;
  Tensor s;  // broadcast against X
  SdeDrift f() const {
    return [m = mu](const Tensor& x, double) { return x * m; };
  }
  SdeDiffusion g() const {
    return [s = s](const Tensor& x, double) { return x * s; };
  }
  Tensor exact(const Tensor& w, double t) const { return exp(s * w + (mu * t) - s * s * (t / 2)); }
};
// Additive: dX = -X/(1+t) dt + 1/(1+t) dW, X(t) = (X0 + W(t)) / (1 + t).
const SdeDrift add_f = [](const Tensor& x, double t) { return x * (-1 / (1 + t)); };
const SdeDiffusion add_g = [](const Tensor& x, double t) { return full_like(x, 1 / (1 + t)); };
struct Case {
  const sde::Method* m;
  Noise noise;
  double order;
};
}  // namespace

TEST_CASE("sdeint strong orders on geometric Brownian motion (diagonal and scalar noise)",
          "[sdeint]") {
  // N = 4000 paths. Strong error E|X_h(1) - X(1)| at h = 2^-3..2^-7. The Monte-Carlo standard
  // error of each estimate is about 2% of it (checked below), so the slope is known to ~0.03.
  const int64_t N = 4000;
  for (const Case& c : {Case{&sde::euler_maruyama(), Noise::diagonal, 0.5},
                        Case{&sde::milstein(), Noise::diagonal, 1.0},
                        Case{&sde::platen_weak2(), Noise::diagonal, 1.0},
                        Case{&sde::euler_maruyama(), Noise::scalar, 0.5},
                        Case{&sde::milstein(), Noise::scalar, 1.0}}) {
    const bool scalar = c.noise == Noise::scalar;
    // scalar: X [N, 2] with volatilities (0.5, 1) driven by one W per path ([N, 1])
    const Shape xs = scalar ? Shape{N, 2} : Shape{N};
    const BrownianTree W(17, scalar ? Shape{N, 1} : xs, 0.0, 1.0, {.dtype = f64});
    const Gbm p{0.5, scalar ? from_vector({0.5, 1.0}, {2}, f64) : sg::scalar(0.8, f64)};
    const Tensor x0 = ones(xs, f64), exact = p.exact(W(0.0, 1.0), 1.0);
    std::vector<double> hs, errs;
    for (int64_t steps : {8, 16, 32, 64, 128}) {
      const auto r = sde::sdeint(p.f(), p.g(), x0, 0.0, 1.0, W,
                                 {.method = c.m, .noise = c.noise, .steps = steps});
      REQUIRE(r.ok());
      CHECK(r.steps == steps);
      const Tensor e = abs(r.y - exact);
      hs.push_back(1.0 / double(steps));
      errs.push_back(mean(e).item());
      CHECK(stderr_of_mean(e) < 0.05 * errs.back());
    }
    INFO(c.m->name << " " << sde::noise_name(c.noise) << ": errors " << show(errs) << "slope "
                   << ls_slope(hs, errs));
    CHECK(std::abs(ls_slope(hs, errs) - c.order) < 0.15);
  }
}

TEST_CASE("sdeint strong orders on an additive-noise SDE: SRA1 1.5, Euler-Maruyama 1", "[sdeint]") {
  // dX = sin(X) dt + 2 dW/(1+t), X0 = 1 (nonlinear drift: on linear drifts SRA1 superconverges
  // with order 2). Reference: SRA1 with 2048 steps on the same tree, whose error (~h^1.5) is
  // ~1/60 of the smallest measured one. N = 2000; the standard error of each estimate is
  // below 5% of it (checked), the slope known to ~0.05.
  const int64_t N = 2000;
  const BrownianTree W(23, {N}, 0.0, 1.0, {.levy_area = true, .dtype = f64});
  const SdeDrift f = [](const Tensor& x, double) { return sin(x); };
  const SdeDiffusion g = [](const Tensor& x, double t) { return full_like(x, 2 / (1 + t)); };
  const Tensor x0 = ones({N}, f64);
  const auto solve = [&](const sde::Method* m, int64_t steps) {
    const auto r =
        sde::sdeint(f, g, x0, 0.0, 1.0, W, {.method = m, .noise = Noise::additive, .steps = steps});
    REQUIRE(r.ok());
    return r.y;
  };
  const Tensor ref = solve(&sde::sra1(), 2048);
  for (const auto& [m, order] : {std::pair{&sde::sra1(), 1.5}, {&sde::euler_maruyama(), 1.0}}) {
    std::vector<double> hs, errs;
    for (int64_t steps : {8, 16, 32, 64, 128}) {
      const Tensor e = abs(solve(m, steps) - ref);
      hs.push_back(1.0 / double(steps));
      errs.push_back(mean(e).item());
      CHECK(stderr_of_mean(e) < 0.05 * errs.back());
    }
    const double slope = ls_slope(hs, errs);
    INFO(m->name << ": errors " << show(errs) << "slope " << slope);
    CHECK(std::abs(slope - order) < 0.15);
  }
}

TEST_CASE("sdeint strong order 1.5 of SRIW1 on geometric Brownian motion", "[sdeint]") {
  // Diagonal multiplicative noise dX = mu X dt + s X dW (N = 4000 paths, X0 = 1) and scalar
  // noise (X [N, 2] with volatilities (0.5, 1), one W per path); exact solution on the same
  // tree. Strong error E|X_h(1) - X(1)| at h = 2^-4..2^-8 (with 2^-3 the pre-asymptotic
  // ratios pull the slope to 1.42); Milstein (order 1) on the same paths for contrast. Seeds
  // fixed; each estimate's Monte-Carlo standard error is checked below 5% of it, and the
  // fit's standard error is reported.
  const int64_t N = 4000;
  for (const Case& c :
       {Case{&sde::sriw1(), Noise::diagonal, 1.5}, Case{&sde::sriw1(), Noise::scalar, 1.5},
        Case{&sde::milstein(), Noise::diagonal, 1.0}}) {
    const bool scalar = c.noise == Noise::scalar;
    const Shape xs = scalar ? Shape{N, 2} : Shape{N};
    const BrownianTree W(19, scalar ? Shape{N, 1} : xs, 0.0, 1.0,
                         {.levy_area = true, .dtype = f64});
    const Gbm p{0.5, scalar ? from_vector({0.5, 1.0}, {2}, f64) : sg::scalar(0.8, f64)};
    const Tensor x0 = ones(xs, f64), exact = p.exact(W(0.0, 1.0), 1.0);
    std::vector<double> hs, errs, ses;
    for (int64_t steps : {16, 32, 64, 128, 256}) {
      const auto r = sde::sdeint(p.f(), p.g(), x0, 0.0, 1.0, W,
                                 {.method = c.m, .noise = c.noise, .steps = steps});
      REQUIRE(r.ok());
      const Tensor e = abs(r.y - exact);
      hs.push_back(1.0 / double(steps));
      errs.push_back(mean(e).item());
      ses.push_back(stderr_of_mean(e));
      CHECK(ses.back() < 0.05 * errs.back());
    }
    const Fit fit = ls_fit(hs, errs);
    INFO(c.m->name << " " << sde::noise_name(c.noise) << ": errors " << show(errs)
                   << "MC standard errors " << show(ses) << "slope " << fit.slope
                   << " (fit standard error " << fit.se << ")");
    CHECK(std::abs(fit.slope - c.order) < 0.15);
    CHECK(fit.se < 0.05);
  }
}

TEST_CASE(
    "sdeint weak orders: Platen and SRIW1 2, Euler-Maruyama 1 on GBM, SRA1 2 on additive noise",
    "[sdeint]") {
  // Weak error E[phi(X_h(1))] - E[phi(X(1))], estimated as mean(phi(X_h) - phi(X_exact)) on the
  // same paths (unbiased; E[phi(X_exact)] is the closed form). Its standard error is checked
  // below 1/4 of the error at every h (at the smallest h: ~1e-4 against ~1e-3 for Platen).
  const int64_t N = 100000;
  const BrownianTree Wg(31, {N}, 0.0, 1.0, {.dtype = f64});
  const BrownianTree Wa(37, {N}, 0.0, 1.0, {.levy_area = true, .dtype = f64});
  const Gbm p{1.0, sg::scalar(0.5, f64)};
  for (const Case& c :
       {Case{&sde::platen_weak2(), Noise::diagonal, 2.0},
        Case{&sde::euler_maruyama(), Noise::diagonal, 1.0},
        Case{&sde::sra1(), Noise::additive, 2.0}, Case{&sde::sriw1(), Noise::diagonal, 2.0}}) {
    const bool additive = c.noise == Noise::additive;
    const BrownianTree& W = c.m->needs_levy_area ? Wa : Wg;
    const Tensor x0 = ones({N}, f64);
    // GBM: phi(x) = x, E[X(1)] = e^mu. Additive: phi(x) = x^2, E[X(1)^2] = (1 + 1)/4.
    const Tensor phi_exact =
        additive ? square((W(0.0, 1.0) + 1.0) * 0.5) : p.exact(W(0.0, 1.0), 1.0);
    std::vector<double> hs, errs;
    // Euler-Maruyama from 4 steps (at 2 its error is still far from first order)
    const bool em = c.m == &sde::euler_maruyama();
    for (int64_t steps :
         em ? std::vector<int64_t>{4, 8, 16, 32, 64} : std::vector<int64_t>{2, 4, 8, 16, 32}) {
      const sde::Options o{.method = c.m, .noise = c.noise, .steps = steps};
      const auto r = additive ? sde::sdeint(add_f, add_g, x0, 0.0, 1.0, W, o)
                              : sde::sdeint(p.f(), p.g(), x0, 0.0, 1.0, W, o);
      REQUIRE(r.ok());
      const Tensor d = (additive ? square(r.y) : r.y) - phi_exact;
      hs.push_back(1.0 / double(steps));
      errs.push_back(std::abs(mean(d).item()));
      CHECK(stderr_of_mean(d) < 0.25 * errs.back());
    }
    const double slope = ls_slope(hs, errs);
    INFO(c.m->name << ": weak errors " << show(errs) << "slope " << slope);
    CHECK(std::abs(slope - c.order) < 0.15);
  }
}

TEST_CASE("sdeint: trajectories at output times, steps that divide nothing", "[sdeint]") {
  // dX = mu dt + s dW: Euler-Maruyama is exact on any grid, X(t) = X0 + mu t + s W(0, t).
  const int64_t N = 16;
  const BrownianTree W(41, {N}, 0.0, 1.0, {.dtype = f64});
  Generator gen(2);
  const Tensor x0 = randn({N}, gen, f64);
  const SdeDrift f = [](const Tensor& x, double) { return full_like(x, 0.3); };
  const SdeDiffusion g = [](const Tensor& x, double) { return full_like(x, 0.7); };
  const std::vector<double> out{0.0, 0.1, 0.25, 0.25, 0.5, 0.7777, 1.0};
  for (const sde::Method* m : {&sde::euler_maruyama(), &sde::milstein(), &sde::platen_weak2()}) {
    const auto r =
        sde::sdeint(f, g, x0, 0.0, 1.0, W, {.method = m, .dt = 0.03, .output_times = out});
    REQUIRE(r.ok());
    REQUIRE(r.ys.size() == out.size());
    CHECK(r.t == 1.0);
    for (size_t i = 0; i < out.size(); ++i)
      CHECK(max(abs(r.ys[i] - (x0 + W(0.0, out[i]) * 0.7 + 0.3 * out[i]))).item() < 1e-12);
    CHECK(max(abs(r.y - r.ys.back())).item() == 0);
    // 34 grid steps (33 of 0.03, the last of 0.01), plus 0.1, 0.25, 0.5, 0.7777 splitting one each
    CHECK(r.steps == 38);
  }
  const auto r = sde::sdeint(f, g, x0, 0.0, 1.0, W, {.dt = 0.3});
  CHECK(r.steps == 4);  // 0.3, 0.6, 0.9, 1.0
  CHECK(r.nfe == 4);
  CHECK(r.nge == 4);
  CHECK(sde::sdeint(f, g, x0, 0.0, 1.0, W, {.dt = 0.1}).steps == 10);  // 10 * 0.1 ~ 1
}

TEST_CASE("sdeint: gradients through a solve by backpropagation", "[sdeint]") {
  // GBM, L = mean X(1) over N paths: dL/dmu and dL/ds by backward equal central differences of
  // the same solves (same tree) to 1e-6 relative, and dL/dmu = E[X(1)] = e^mu (X0 = 1, T = 1)
  // within 4 standard errors of the pathwise estimator plus the O(h) bias of the scheme.
  const int64_t N = 4000;
  const BrownianTree W(43, {N}, 0.0, 1.0, {.dtype = f64});
  const Tensor x0 = ones({N}, f64);
  for (const sde::Method* m : {&sde::euler_maruyama(), &sde::milstein(), &sde::platen_weak2()}) {
    auto loss = [&](const Tensor& mu, const Tensor& s) {
      const SdeDrift f = [&](const Tensor& x, double) { return x * mu; };
      const SdeDiffusion g = [&](const Tensor& x, double) { return x * s; };
      return mean(sde::sdeint(f, g, x0, 0.0, 1.0, W, {.method = m, .steps = 64}).y);
    };
    const double mu0 = 0.5, s0 = 0.4, eps = 1e-5;
    Tensor mu = sg::scalar(mu0, f64).requires_grad_(), s = sg::scalar(s0, f64).requires_grad_();
    const Tensor L = loss(mu, s);
    const auto gr = grad(L, {mu, s});
    NoGradGuard off;
    const auto at = [&](double a, double b) {
      return loss(sg::scalar(a, f64), sg::scalar(b, f64)).item();
    };
    const double fd_mu = (at(mu0 + eps, s0) - at(mu0 - eps, s0)) / (2 * eps);
    const double fd_s = (at(mu0, s0 + eps) - at(mu0, s0 - eps)) / (2 * eps);
    INFO(m->name << ": dL/dmu " << gr[0].item() << " fd " << fd_mu << ", dL/ds " << gr[1].item()
                 << " fd " << fd_s);
    CHECK(std::abs(gr[0].item() - fd_mu) < 1e-6 * std::abs(fd_mu));
    CHECK(std::abs(gr[1].item() - fd_s) < 1e-6 * std::max(std::abs(fd_s), 1.0));
    // pathwise dX(1)/dmu = X(1) for the exact solution; its standard error
    const Tensor xe = exp(W(0.0, 1.0) * s0 + (mu0 - s0 * s0 / 2));
    CHECK(std::abs(gr[0].item() - std::exp(mu0)) < 4 * stderr_of_mean(xe) + 0.01);
  }
}

TEST_CASE("sdeint: bad input is a typed error naming sdeint; failures are statuses", "[sdeint]") {
  const BrownianTree W(1, {8}, 0.0, 1.0, {.dtype = f64});
  const BrownianTree W2(1, {8, 1}, 0.0, 1.0, {.dtype = f64});
  const Tensor x = ones({8}, f64), x2 = ones({8, 2}, f64);
  const SdeDrift f = [](const Tensor& x, double) { return x; };
  const SdeDiffusion g = [](const Tensor& x, double) { return x; };
  const auto bad = [&](auto&& call, const char* what) {
    try {
      call();
      FAIL("no error for " << what);
    } catch (const Error& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find("sdeint") != std::string::npos);
      CHECK(std::string(e.what()).find(what) != std::string::npos);
    }
  };
  const double nan = std::nan("");
  bad([&] { sde::sdeint(f, g, x, 0.0, nan, W, {.steps = 4}); }, "t1");
  bad([&] { sde::sdeint(f, g, x, 0.5, 0.2, W, {.steps = 4}); }, "t1");
  bad([&] { sde::sdeint(f, g, x, 0.0, 2.0, W, {.steps = 4}); }, "interval");
  bad([&] { sde::sdeint(f, g, x, 0.0, 1.0, W, {.steps = -1}); }, "steps");
  bad([&] { sde::sdeint(f, g, x, 0.0, 1.0, W, {}); }, "steps");
  bad([&] { sde::sdeint(f, g, x, 0.0, 1.0, W, {.steps = 2, .dt = 0.1}); }, "dt");
  bad([&] { sde::sdeint(f, g, x, 0.0, 1.0, W, {.dt = nan}); }, "dt");
  bad(
      [&] {
        sde::sdeint(f, g, x, 0.0, 1.0, W, {.steps = 2, .output_times = {0.5, 0.2}});
      },
      "output_times");
  bad([&] { sde::sdeint(f, g, x, 0.0, 1.0, W, {.steps = 2, .output_times = {1.5}}); },
      "output_times");
  bad([&] { sde::sdeint(f, g, x2, 0.0, 1.0, W, {.steps = 2}); }, "shape");
  bad([&] { sde::sdeint(f, g, x2, 0.0, 1.0, W2, {.steps = 2}); }, "diagonal");
  bad([&] { sde::sdeint(f, g, x, 0.0, 1.0, W, {.method = &sde::sra1(), .steps = 2}); }, "additive");
  bad(
      [&] {
        sde::sdeint(f, g, x, 0.0, 1.0, W,
                    {.method = &sde::sra1(), .noise = Noise::additive, .steps = 2});
      },
      "Levy");
  bad([&] { sde::sdeint(f, g, x.to(DType::f32), 0.0, 1.0, W, {.steps = 2}); }, "dtype");
  bad(
      [&] {
        sde::sdeint(
            [](const Tensor& x, double) {
              return concat({x, x}, 0);
            },
            g, x, 0.0, 1.0, W, {.steps = 2});
      },
      "drift");
  CHECK_THROWS_AS(sde::method("heun"), ValueError);
  CHECK(&sde::method("milstein") == &sde::milstein());
  // scalar noise: W [8, 1] for X [8, 2] is fine
  CHECK(sde::sdeint(f, g, x2, 0.0, 1.0, W2, {.noise = Noise::scalar, .steps = 2}).ok());
  // A blow-up stops with non_finite, a step cap with too_many_steps; the result says where.
  const auto r = sde::sdeint([](const Tensor& x, double) { return x * x * 1e3; }, g, x * 10.0, 0.0,
                             1.0, W, {.steps = 100});
  CHECK(r.status == ode::Status::non_finite);
  CHECK(r.t < 1.0);
  const auto r2 =
      sde::sdeint(f, g, x, 0.0, 1.0, W, {.steps = 100, .output_times = {0.5}, .max_steps = 3});
  CHECK(r2.status == ode::Status::too_many_steps);
  CHECK(r2.steps == 3);
  CHECK(r2.ys.empty());
  CHECK(r2.t == Approx(0.03));
}

TEST_CASE("sdeint on a uniform-grid BrownianPath reproduces euler_maruyama", "[sdeint]") {
  const BrownianPath P(9, {64}, 0.0, 1.0, 40, f64);
  const sde::GridBrownian W(P);
  const Tensor x0 = ones({64}, f64);
  const SdeDrift f = [](const Tensor& x, double t) { return x * (0.5 - t); };
  const SdeDiffusion g = [](const Tensor& x, double) { return x * 0.3; };
  const Tensor em = euler_maruyama(f, g, x0, P, 20);
  // To round-off: sdeint's step sizes are differences of grid times (they add up to t1 - t0
  // exactly), euler_maruyama's the constant (t1 - t0)/steps; an output time at a grid point
  // replaces it (0.25 for 5 * 0.05).
  CHECK(max(abs(sde::sdeint(f, g, x0, 0.0, 1.0, W, {.steps = 20}).y - em)).item() < 1e-14);
  const auto r = sde::sdeint(f, g, x0, 0.0, 1.0, W, {.steps = 20, .output_times = {0.25}});
  REQUIRE(r.ok());
  CHECK(r.steps == 20);
  CHECK(max(abs(r.y - em)).item() < 1e-14);
  CHECK(max(abs(W(0.5, 0.25) + P.increment(10, 20))).item() == 0);
  CHECK_THROWS_AS(sde::sdeint(f, g, x0, 0.0, 1.0, W, {.steps = 30}), ValueError);  // off-grid
  CHECK_THROWS_AS(sde::sdeint(f, g, x0, 0.0, 1.0, W,
                              {.method = &sde::sra1(), .noise = Noise::additive, .steps = 20}),
                  ValueError);  // no Levy area
}
