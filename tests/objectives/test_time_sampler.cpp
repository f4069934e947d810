// Huang's importance-sampled time (objectives/time_sampler.hpp), float64, fixed seeds: the
// density integrates to 1 over [0, T], is flat below t_eps and proportional to the SDE's own
// g^2/std^2 above it; the CDF and its inverse invert each other to 1e-10 over all of [0, T];
// the closed forms (VP, sub-VP, VE) agree with the quadrature path and with sdeflow-light's
// published constants; draws follow the CDF (Kolmogorov-Smirnov); importance-sampled DSM and
// ELBO estimates equal the uniform-time ones in expectation on Gaussian data with the exact
// score; draws land on the requested device; bad input is refused by name.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "autodiff/sg.hpp"
#include "objectives/elbo.hpp"
#include "objectives/gaussian.hpp"
#include "objectives/time_sampler.hpp"
#include "tests/support/device.hpp"
#include "tests/support/expect.hpp"

using namespace sg;
using namespace sg::obj;
using Catch::Matchers::Contains;

namespace {
constexpr DType f64 = DType::f64;

// The same SDE behind another type: the sampler cannot recognise it and integrates numerically.
class Wrapped : public Sde {
 public:
  explicit Wrapped(std::unique_ptr<Sde> inner) : inner_(std::move(inner)) {}
  std::string name() const override { return "wrapped-" + inner_->name(); }
  Tensor drift(const Tensor& y, const Tensor& t) const override { return inner_->drift(y, t); }
  Tensor diffusion(const Tensor& t) const override { return inner_->diffusion(t); }
  std::pair<Tensor, Tensor> marginal(const Tensor& t) const override { return inner_->marginal(t); }
  Tensor drift_div_per_dim(const Tensor& t) const override { return inner_->drift_div_per_dim(t); }
  double prior_std() const override { return inner_->prior_std(); }

 private:
  std::unique_ptr<Sde> inner_;
};

// g^2 / std^2 from the SDE's own tensors.
double sde_rate(const Sde& sde, double t) {
  const Tensor tt = scalar(t, f64);
  const double g = sde.diffusion(tt).item(), s = sde.marginal(tt).second.item();
  return g * g / (s * s);
}

std::vector<double> sde_rates(const Sde& sde, const std::vector<double>& t) {
  const Tensor tt = from_vector(t, {int64_t(t.size())}, f64);
  const Tensor g = sde.diffusion(tt), s = sde.marginal(tt).second;
  return (g * g / (s * s)).to_vector();
}

// Composite Simpson of f over [a, b] with n (even) intervals, f evaluated on the whole grid.
template <class F>
double simpson(F f, double a, double b, int n) {
  std::vector<double> x(n + 1);
  for (int i = 0; i <= n; ++i) x[i] = a + (b - a) * i / n;
  const std::vector<double> y = f(x);
  double s = y[0] + y[n];
  for (int i = 1; i < n; ++i) s += (i % 2 ? 4 : 2) * y[i];
  return s * (b - a) / (3.0 * n);
}

// int_0^T q: [0, t_eps] directly, [t_eps, T] in w = log t (q ~ 1/t there for VP).
double total_mass(const HuangTimeSampler& q) {
  const auto in_t = [&](const std::vector<double>& t) { return q.density(t); };
  const auto in_log = [&](std::vector<double> w) {
    for (double& v : w) v = std::exp(v);
    std::vector<double> d = q.density(w);
    for (std::size_t i = 0; i < d.size(); ++i) d[i] *= w[i];
    return d;
  };
  return simpson(in_t, 0, q.t_eps(), 2) +
         simpson(in_log, std::log(q.t_eps()), std::log(q.T()), 20000);
}

struct Case {
  std::string name;
  std::unique_ptr<Sde> sde;
};
std::vector<Case> all_sdes() {
  std::vector<Case> c;
  for (const std::string n : {"vp", "subvp", "ve"}) {
    c.push_back({n, make_sde(n)});
    c.push_back({"wrapped " + n, std::make_unique<Wrapped>(make_sde(n))});
  }
  return c;
}

// f(case, sampler) for every SDE (closed form and quadrature) and t_eps 1e-5, 1e-3, 0.1.
void for_each_sampler(const std::function<void(const Case&, const HuangTimeSampler&)>& f) {
  for (const Case& c : all_sdes())
    for (double t_eps : {1e-5, 1e-3, 0.1}) {
      INFO(c.name << ", t_eps " << t_eps);
      f(c, HuangTimeSampler(*c.sde, t_eps));
    }
}

// The Kolmogorov-Smirnov statistic of sorted draws against a CDF.
double ks_statistic(std::vector<double> t, const std::function<double(double)>& F) {
  std::sort(t.begin(), t.end());
  const double n = double(t.size());
  double d = 0;
  for (std::size_t i = 0; i < t.size(); ++i) {
    const double f = F(t[i]);
    d = std::max({d, (double(i) + 1) / n - f, f - double(i) / n});
  }
  return d;
}

}  // namespace

TEST_CASE("Huang's time density: normalised, flat below t_eps, g^2/std^2 above",
          "[objectives][time_sampler]") {
  for_each_sampler([](const Case& c, const HuangTimeSampler& q) {
    const double t_eps = q.t_eps();
    CHECK(q.closed_form() == (c.name.rfind("wrapped", 0) != 0));
    const double mass = total_mass(q);
    INFO("|int_0^T q - 1| = " << std::abs(mass - 1));
    CHECK(std::abs(mass - 1) < 1e-10);
    // Flat below t_eps at r(t_eps) / Z, with r the SDE's own g^2/std^2.
    const double flat = sde_rate(*c.sde, t_eps) / q.normalizer();
    for (double f : {0.0, 1e-9, 0.25, 0.5, 0.999999})
      CHECK(std::abs(q.density(f * t_eps) / flat - 1) < 1e-12);
    // Proportional to g^2 / std^2 on [t_eps, T], with the same constant 1/Z.
    double worst = 0;
    for (int i = 0; i <= 200; ++i) {
      const double t = t_eps * std::pow(q.T() / t_eps, i / 200.0);
      worst = std::max(worst, std::abs(q.density(t) * q.normalizer() / sde_rate(*c.sde, t) - 1));
    }
    INFO("worst |q Z / (g^2/std^2) - 1| = " << worst);
    CHECK(worst < 1e-12);
    CHECK(q.density(-1e-12) == 0);
    CHECK(q.density(q.T() * (1 + 1e-12)) == 0);
    if (c.name == "ve") CHECK(std::abs(q.density(0.3) * q.T() - 1) < 1e-14);  // uniform
  });
}

TEST_CASE("Huang's time CDF and inverse CDF invert each other over [0, T]",
          "[objectives][time_sampler]") {
  for_each_sampler([](const Case& c, const HuangTimeSampler& q) {
    const double t_eps = q.t_eps();
    const double Fe = q.cdf(t_eps);
    std::vector<double> u{0, 1e-14, 0.5 * Fe, Fe * (1 - 1e-9), Fe, Fe * (1 + 1e-9), 1 - 1e-12, 1};
    for (int i = 1; i < 1000; ++i) u.push_back(i / 1000.0);
    std::vector<double> t{0,     1e-6 * t_eps,       0.5 * t_eps,         t_eps * (1 - 1e-9),
                          t_eps, t_eps * (1 + 1e-9), q.T() * (1 - 1e-12), q.T()};
    for (int i = 0; i <= 1000; ++i) t.push_back(t_eps * std::pow(q.T() / t_eps, i / 1000.0));
    for (int i = 0; i <= 100; ++i) t.push_back(t_eps * i / 100.0);
    const std::vector<double> tu = q.inverse_cdf(u), ut = q.cdf(tu);
    const std::vector<double> Ft = q.cdf(t), tt = q.inverse_cdf(Ft);
    double worst_u = 0, worst_t = 0;
    for (std::size_t i = 0; i < u.size(); ++i) worst_u = std::max(worst_u, std::abs(ut[i] - u[i]));
    for (std::size_t i = 0; i < t.size(); ++i) worst_t = std::max(worst_t, std::abs(tt[i] - t[i]));
    INFO("worst |F(F^-1(u)) - u| = " << worst_u << ", worst |F^-1(F(t)) - t| = " << worst_t);
    CHECK(worst_u < 1e-10);
    CHECK(worst_t < 1e-10);
    CHECK(q.cdf(0.0) == 0);
    CHECK(q.cdf(q.T()) == 1);
    CHECK(q.inverse_cdf(0.0) == 0);
    CHECK(q.inverse_cdf(1.0) == q.T());
    // Monotone, and below t_eps linear: F(t) = q(t_eps) t.
    CHECK(std::is_sorted(Ft.begin() + 8, Ft.begin() + 1009));
    CHECK(std::abs(q.cdf(0.5 * t_eps) - 0.5 * t_eps * q.density(t_eps)) < 1e-15);
  });
}

TEST_CASE("Huang's time sampler: closed forms match quadrature and sdeflow-light's constants",
          "[objectives][time_sampler]") {
  // sdeflow-light (lib/utils.py, VariancePreservingTruncatedSampling) for beta in [0.1, 20],
  // T = 1, t_eps = 1e-3: Z = 20.2559423097, inv_Phi(0.5) = 0.2515765254 (spec 1.3).
  const VpSde vp;
  const HuangTimeSampler h(vp, 1e-3);
  CHECK(std::abs(h.normalizer() - 20.2559423097) < 1e-9);
  CHECK(std::abs(h.inverse_cdf(0.5) - 0.2515765254) < 1e-9);
  // Z = r(t_eps) t_eps + [log(1 - e^-B) + B]_{t_eps}^{T}, evaluated here from the SDE's tensors.
  const auto R = [&](double t) {
    const double B = vp.integral_beta(scalar(t, f64)).item();
    return std::log(-std::expm1(-B)) + B;
  };
  CHECK(std::abs(h.normalizer() - (sde_rate(vp, 1e-3) * 1e-3 + R(1.0) - R(1e-3))) < 1e-11);
  for (const std::string n : {"vp", "subvp", "ve"})
    for (double t_eps : {1e-5, 1e-3}) {
      INFO(n << ", t_eps " << t_eps);
      const auto sde = make_sde(n);
      const Wrapped wrapped(make_sde(n));
      const HuangTimeSampler exact(*sde, t_eps), quad(wrapped, t_eps);
      CHECK(std::abs(exact.normalizer() / quad.normalizer() - 1) < 1e-12);
      double worst_F = 0, worst_t = 0;
      for (int i = 0; i <= 400; ++i) {
        const double t = t_eps * std::pow(1 / t_eps, i / 400.0), u = i / 400.0;
        worst_F = std::max(worst_F, std::abs(exact.cdf(t) - quad.cdf(t)));
        worst_t = std::max(worst_t, std::abs(exact.inverse_cdf(u) - quad.inverse_cdf(u)));
      }
      INFO("closed form vs quadrature: worst |dF| " << worst_F << ", worst |dt| " << worst_t);
      CHECK(worst_F < 1e-12);
      CHECK(worst_t < 1e-12);
    }
}

TEST_CASE("Huang's time sampler: draws follow the CDF (Kolmogorov-Smirnov, n = 20000)",
          "[objectives][time_sampler]") {
  constexpr int64_t n = 20000;
  const double critical = 1.6276 / std::sqrt(double(n));  // 1% two-sided, asymptotic
  for (const Case& c : all_sdes()) {
    if (c.name == "ve" || c.name == "wrapped ve") continue;  // uniform: nothing more to learn
    INFO(c.name);
    const HuangTimeSampler q(*c.sde, 1e-3);
    Generator g(20240611);
    const auto [t, qt] = q.sample(n, g, f64);
    const std::vector<double> tv = t.to_vector(), qv = qt.to_vector();
    const double d = ks_statistic(tv, [&](double x) { return q.cdf(x); });
    INFO("KS D = " << d << " (1% critical " << critical << ")");
    CHECK(d < critical);
    CHECK(qv == q.density(tv));  // the returned density is q at the draw
    // Binned counts against the SDE's own g^2/std^2 integrated here (Simpson in log t), not
    // through the sampler's CDF: [0, t_eps] holds r(t_eps) t_eps, then 20 log-spaced bins.
    std::vector<double> edges{0, 1e-3}, p{sde_rate(*c.sde, 1e-3) * 1e-3};
    for (int k = 1; k <= 20; ++k) {
      edges.push_back(1e-3 * std::pow(1e3, k / 20.0));
      p.push_back(simpson(
          [&](std::vector<double> w) {
            for (double& v : w) v = std::exp(v);
            std::vector<double> r = sde_rates(*c.sde, w);
            for (std::size_t i = 0; i < r.size(); ++i) r[i] *= w[i];
            return r;
          },
          std::log(edges[k]), std::log(edges[k + 1]), 100));
    }
    const double Z = std::accumulate(p.begin(), p.end(), 0.0);
    double worst_z = 0;
    for (std::size_t k = 0; k < p.size(); ++k) {
      const auto in = std::count_if(tv.begin(), tv.end(),
                                    [&](double x) { return x >= edges[k] && x < edges[k + 1]; });
      const double pk = p[k] / Z, z = (double(in) - n * pk) / std::sqrt(n * pk * (1 - pk));
      worst_z = std::max(worst_z, std::abs(z));
    }
    INFO("binned counts: worst |z| = " << worst_z << " over " << p.size() << " bins");
    CHECK(worst_z < 4);
    // Conditioned on [t_eps, T] (what the estimators draw): F_c = (F - F(t_eps)) / (1 - F(t_eps)).
    const double Fe = q.cdf(1e-3);
    const auto [tc, qc] = sample_importance_time(*c.sde, n, 1e-3, g, f64);
    const std::vector<double> tcv = tc.to_vector(), qcv = qc.to_vector();
    const double dc = ks_statistic(tcv, [&](double x) { return (q.cdf(x) - Fe) / (1 - Fe); });
    INFO("conditioned KS D = " << dc);
    CHECK(dc < critical);
    CHECK(*std::min_element(tcv.begin(), tcv.end()) >= 1e-3);
    for (std::size_t i = 0; i < tcv.size(); i += 997)
      CHECK(std::abs(qcv[i] * (1 - Fe) / q.density(tcv[i]) - 1) < 1e-12);
  }
}

TEST_CASE("importance-sampled time: DSM and ELBO estimates equal the uniform-time ones",
          "[objectives][time_sampler]") {
  // Gaussian data N(mu, Sigma) (case G, D = 2) under VP with the exact score s* = grad log q_t:
  // E ½ |std s* + z|^2 = ½ (D - std^2 tr Sigma_t^-1), Sigma_t = alpha^2 Sigma + std^2 I, so
  // E[dsm_sde] = (1 / (T - t_eps)) int_{t_eps}^{T} (lambda / std^2) ½ (D - std^2 tr Sigma_t^-1) dt.
  const GaussianData G = GaussianData::case_g();
  const VpSde vp;
  const double t_eps = 1e-3, span = vp.T() - t_eps;
  const ScoreModelFn s = [&](const Tensor& y, const Tensor& t) { return G.score(y, t, vp); };
  const auto reference = [&](Weighting w) {
    const auto f = [&](std::vector<double> u) {
      for (double& v : u) {
        const double t = std::exp(v);
        const auto [a, sd] = vp.marginal(scalar(t, f64));
        const double a2 = a.item() * a.item(), var = sd.item() * sd.item();
        // Sigma = [[1, 0.6], [0.6, 2]]: tr Sigma_t^-1 = tr Sigma_t / det Sigma_t
        const double tr = 3 * a2 + 2 * var, det = (a2 + var) * (2 * a2 + var) - 0.36 * a2 * a2;
        const double lam_over_var = w == Weighting::variance ? 1.0 : sde_rate(vp, t);
        v = lam_over_var * 0.5 * (2 - var * tr / det) * t;  // dt = t dlog t
      }
      return u;
    };
    return simpson(f, std::log(t_eps), 0.0, 4000) / span;
  };
  const MeanCheckOptions o{.samples = 400, .sigmas = 4, .seed = 11};
  for (Weighting w : {Weighting::likelihood, Weighting::variance}) {
    const double ref = reference(w);
    const auto est = [&](TimeSampling ts) {
      return [&, ts](Generator& g) {
        const Tensor x = G.sample(64, g);
        return dsm_sde(s, vp, x, g, {.weighting = w, .sampling = ts, .t_eps = t_eps});
      };
    };
    const MeanCheck mi = mean_equals(est(TimeSampling::importance), ref, o, "dsm importance");
    const MeanCheck mu = mean_equals(est(TimeSampling::uniform), ref, o, "dsm uniform");
    const PairedCheck p = paired_compare(est(TimeSampling::importance), est(TimeSampling::uniform),
                                         o, "dsm importance - uniform");
    INFO("weighting " << (w == Weighting::likelihood ? "likelihood" : "variance") << ", reference "
                      << ref << "\n"
                      << mi << "\n"
                      << mu << "\n"
                      << p);
    CHECK(mi.pass);
    CHECK(mu.pass);
    CHECK(p.difference.pass);
    // Likelihood weighting with q ~ g^2/std^2 leaves a constant weight: far less noise.
    if (w == Weighting::likelihood) CHECK(p.a_less_noisy);
  }
  // The ELBO's two forms, uniform against importance-sampled time on [t_eps, T], with the prior
  // q_T (tight up to O(t_eps)): same mean.
  const Tensor x0 = expand(from_vector({0.3, 0.2}, {1, 2}, f64), {64, 2}).contiguous();
  const auto elbo = [&](bool implicit, TimeSampling ts) {
    return [&, implicit, ts](Generator& g) {
      const ElboOptions eo{.t_eps = t_eps,
                           .sampling = ts,
                           .exact_divergence = true,
                           .prior_logp = [&](const Tensor& yT) {
                             return G.log_density(yT, full({yT.dim(0)}, 1.0, f64), vp);
                           }};
      NoGradGuard values_only;
      return mean(implicit ? elbo_implicit(vp, s, x0, g, eo) : elbo_denoising(vp, s, x0, g, eo));
    };
  };
  const double logp = G.log_density0(from_vector({0.3, 0.2}, {1, 2}, f64)).item();
  for (bool implicit : {false, true}) {
    const PairedCheck p = paired_compare(
        elbo(implicit, TimeSampling::importance), elbo(implicit, TimeSampling::uniform),
        {.samples = 300, .seed = 12}, implicit ? "elbo implicit" : "elbo denoising");
    INFO(p << "\nlog q0(x) = " << logp);
    CHECK(p.difference.pass);
    // The denoising form's integrand carries g^2/std^2, which q cancels; the implicit form's
    // does not, and there importance-sampled time is the noisier (log variance ratio -0.29).
    if (!implicit) CHECK(p.a_less_noisy);
  }
}

TEST_CASE("Huang's time sampler draws land on the requested device",
          "[objectives][time_sampler][device]") {
  const VpSde vp;
  const HuangTimeSampler q(vp, 1e-3);
  test::same_on_both(
      [&](Device d) {
        Generator g(5);
        const auto [t, qt] = q.sample(33, g, f64, d);
        const auto [tb, qb] = q.sample_between(0.01, 0.5, 17, g, DType::f32, d);
        const auto [ti, qi] = sample_importance_time(vp, 9, 1e-3, g, f64, d);
        const Tensor grid = linspace(0.0, 1.0, 11, f64, d);
        return std::vector<Tensor>{
            t, qt, tb, qb, ti, qi, q.density(grid), q.cdf(grid), q.inverse_cdf(grid)};
      },
      "HuangTimeSampler");
  // The DSM loss with importance-sampled time lives on the data's device.
  const GaussianData G = GaussianData::case_g();
  Generator g(6);
  const Tensor x = G.sample(8, g, test::kStandin);
  const ScoreModelFn s = [&](const Tensor& y, const Tensor& t) { return G.score(y, t, vp); };
  const Tensor l = dsm_sde(s, vp, x, g, {.sampling = TimeSampling::importance, .t_eps = 1e-3});
  CHECK(l.device() == test::kStandin);
}

TEST_CASE("Huang's time sampler refuses bad input by name", "[objectives][time_sampler]") {
  const VpSde vp;
  for (double bad : {0.0, 1.0, 1.5, -1e-3, double(NAN), double(INFINITY)}) {
    INFO("t_eps " << bad);
    const std::string m = test::message_of<ValueError>([&] { (void)HuangTimeSampler(vp, bad); });
    CHECK_THAT(m, Contains("HuangTimeSampler") && Contains("t_eps"));
    const Wrapped w(make_sde("ve"));
    CHECK_THAT(test::message_of<ValueError>([&] { (void)HuangTimeSampler(w, bad); }),
               Contains("HuangTimeSampler") && Contains("t_eps"));
    Generator g(1);
    CHECK_THAT(test::message_of<ValueError>([&] { sample_importance_time(vp, 4, bad, g); }),
               Contains("sample_importance_time") && Contains("t_eps"));
  }
  const HuangTimeSampler q(vp, 1e-3);
  for (double u : {-0.1, 1.1, double(NAN), double(INFINITY)})
    CHECK_THAT(test::message_of<ValueError>([&] { (void)q.inverse_cdf(u); }),
               Contains("HuangTimeSampler::inverse_cdf") && Contains("u must"));
  CHECK_THAT(test::message_of<ValueError>([&] { (void)q.cdf(double(NAN)); }),
             Contains("HuangTimeSampler::cdf") && Contains("t must"));
  CHECK_THAT(test::message_of<ValueError>([&] { (void)q.density(double(NAN)); }),
             Contains("HuangTimeSampler::density") && Contains("t must"));
  Generator g(2);
  CHECK_THAT(test::message_of<ValueError>([&] { (void)q.sample(-1, g); }),
             Contains("HuangTimeSampler::sample") && Contains("n must"));
  CHECK_THAT(test::message_of<ValueError>([&] { (void)q.sample_between(-0.1, 0.5, 4, g); }),
             Contains("HuangTimeSampler::sample") && Contains("lo must"));
  CHECK_THAT(test::message_of<ValueError>([&] { (void)q.sample_between(0.5, 0.2, 4, g); }),
             Contains("HuangTimeSampler::sample") && Contains("hi must"));
  CHECK_THAT(test::message_of<ValueError>([&] { (void)q.sample_between(0.5, double(NAN), 4, g); }),
             Contains("hi must"));
}
