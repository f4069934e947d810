// Imputation metrics and the order statistics under them: sort/argsort/quantile conventions
// (stable ties, NaN last, NumPy's linear quantiles), the Gaussian CRPS's closed form at the
// published points and as 2 * integral of the quantile loss, CSDI's 19-level CRPS on exact
// normal quantiles, CRPS-sum, median errors, and typed errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "objectives/metrics.hpp"
#include "tests/support/device.hpp"
#include "tests/support/expect.hpp"

using namespace sg;

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
const DType f64 = DType::f64;

// Phi^{-1}(p) by bisection on erfc (to 1e-15 in p's scale; enough for the checks below).
double normal_ppf(double p) {
  double lo = -40, hi = 40;
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}
}  // namespace

TEST_CASE("sort, argsort: stable ties, NaN last, both directions, any axis", "[sort]") {
  const Tensor x = from_vector({3, kNaN, 1, 3, -kInf, 1}, {6}, f64);
  CHECK(argsort(x).values<int64_t>() == std::vector<int64_t>{4, 2, 5, 0, 3, 1});
  CHECK(argsort(x, 0, true).values<int64_t>() == std::vector<int64_t>{0, 3, 2, 5, 4, 1});
  const std::vector<double> s = sort(x).to_vector();
  CHECK(s[0] == -kInf);
  CHECK(s[4] == 3);
  CHECK(std::isnan(s[5]));
  const Tensor m = from_vector({5, 1, 4, 2, 0, 3}, {2, 3}, f64);
  CHECK(sort(m, 0).to_vector() == std::vector<double>{2, 0, 3, 5, 1, 4});
  CHECK(sort(m, 1, true).to_vector() == std::vector<double>{5, 4, 1, 3, 2, 0});
  CHECK(sort(zeros({0, 3}, f64), 0).shape() == Shape{0, 3});
  CHECK_THROWS_AS(sort(scalar(1.0, f64)), ShapeError);
  // The derivative at a tie follows the stable order: d/dx of the weighted sorted values.
  const Tensor t = from_vector({2, 2}, {2}, f64).requires_grad_();
  const Tensor g = grad(sum(sort(t) * from_vector({1, 10}, {2}, f64)), {t})[0];
  CHECK(g.to_vector() == std::vector<double>{1, 10});
}

TEST_CASE("quantile and median: NumPy's linear interpolation", "[sort]") {
  const Tensor x = from_vector({4, 1, 3, 2}, {4}, f64);
  // numpy.quantile([1,2,3,4], [0, 0.1, 0.5, 0.93, 1]) = [1, 1.3, 2.5, 3.79, 4]
  const std::vector<double> q = quantile(x, {0, 0.1, 0.5, 0.93, 1}, 0).to_vector();
  CHECK(q[0] == 1);
  CHECK(q[1] == Approx(1.3).epsilon(1e-14));
  CHECK(q[2] == 2.5);
  CHECK(q[3] == Approx(3.79).epsilon(1e-14));
  CHECK(q[4] == 4);
  CHECK(median(from_vector({5, 1, 3}, {3}, f64), 0).item() == 3);
  const Tensor two = from_vector({1, 10, 2, 20, 3, 30}, {3, 2}, f64);
  CHECK(quantile(two, {0.5}, 0).shape() == Shape{1, 2});
  CHECK(median(two, 0).to_vector() == std::vector<double>{2, 20});
  CHECK_THROWS_AS(quantile(x, {1.5}, 0), ValueError);
  CHECK_THROWS_AS(quantile(x, {}, 0), ValueError);
  CHECK_THROWS_AS(quantile(zeros({0}, f64), {0.5}, 0), ValueError);
}

TEST_CASE("crps of a Gaussian: closed form, published points, the quantile-loss integral",
          "[metrics]") {
  const Tensor zero = scalar(0.0, f64), one = scalar(1.0, f64);
  CHECK(metrics::crps_gaussian(zero, one, zero).item() ==
        Approx(0.23369497725510913).epsilon(1e-14));
  CHECK(metrics::crps_gaussian(zero, one, one).item() == Approx(0.6024413576276163).epsilon(1e-14));
  // CRPS(F, y) = 2 int_0^1 QL_q(F^-1(q), y) dq (pinball loss with factor 1): midpoint rule on
  // 20000 levels, for N(0.4, 1.7^2) at y = -1.1.
  const double mu = 0.4, sd = 1.7, y = -1.1;
  const int n = 20000;
  double integral = 0;
  for (int i = 0; i < n; ++i) {
    const double q = (i + 0.5) / n, f = mu + sd * normal_ppf(q);
    integral += 2 * std::fabs((f - y) * ((y <= f ? 1.0 : 0.0) - q)) / n;
  }
  CHECK(metrics::crps_gaussian(scalar(mu, f64), scalar(sd, f64), scalar(y, f64)).item() ==
        Approx(integral).epsilon(1e-6));
}

TEST_CASE("crps by 19 quantiles (CSDI): exact normal quantiles, CRPS-sum, median errors",
          "[metrics]") {
  // Samples at exact N(0, 1) quantiles: the samples' linear quantile at q is Phi^{-1}(q) to
  // O(1/S); CSDI's CRPS at y = 1 is then (1/19) sum_q 2|(F_q - 1)(1{1 <= F_q} - q)| = 0.63168
  // (NumPy/SciPy), 5% above the exact 0.60244 (the 19 levels miss the tails).
  const int64_t S = 20001;
  std::vector<double> v(S);
  for (int64_t i = 0; i < S; ++i) v[i] = normal_ppf(static_cast<double>(i) / (S - 1));
  v.front() = -9, v.back() = 9;  // the 0 and 1 quantiles (unused by the 19 levels)
  const Tensor samples = from_vector(v, {S, 1}, f64);
  const Tensor mask = ones({1}, f64);
  CHECK(metrics::crps_quantile(samples, ones({1}, f64), mask) ==
        Approx(0.6316753870623434).epsilon(1e-4));
  // Two entries, one masked out: only the selected one counts.
  const Tensor s2 = concat({samples, samples * 100.0}, 1);  // [S, 2]
  const Tensor y2 = from_vector({1, 5}, {2}, f64);
  CHECK(metrics::crps_quantile(s2, y2, from_vector({1, 0}, {2}, DType::b8)) ==
        Approx(0.6316753870623434).epsilon(1e-4));
  // CRPS-sum over features equals the CRPS of the summed series.
  Generator gen(3);
  const Tensor s3 = randn({50, 4, 3}, gen, f64) + 2.0;
  const Tensor y3 = full({4, 3}, 2.5, f64);
  const Tensor m3 = ones({4, 3}, f64);
  CHECK(
      metrics::crps_sum(s3, y3, m3) ==
      Approx(metrics::crps_quantile(sum(s3, {-1}), sum(y3, {-1}), ones({4}, f64))).epsilon(1e-12));
  // Median errors: medians 2 and 20 against 1 and 24.
  const Tensor s4 = from_vector({1, 10, 2, 20, 3, 30}, {3, 2}, f64);
  const metrics::PointErrors e =
      metrics::median_errors(s4, from_vector({1, 24}, {2}, f64), ones({2}, f64));
  CHECK(e.mae == 2.5);
  CHECK(e.rmse == Approx(std::sqrt(8.5)).epsilon(1e-15));
  CHECK(e.count == 2);
}

TEST_CASE("metrics: typed errors and the stand-in device", "[metrics][standin]") {
  const Tensor s = ones({5, 3}, f64), y = ones({3}, f64);
  CHECK_THROWS_AS(metrics::crps_quantile(s, ones({4}, f64), ones({4}, f64)), ShapeError);
  CHECK_THROWS_AS(metrics::crps_quantile(s, y, ones({2}, f64)), ShapeError);
  CHECK(test::message_of<ValueError>([&] {
          (void)metrics::crps_quantile(s, y, zeros({3}, f64));
        }).find("selects no entry") != std::string::npos);
  CHECK(test::message_of<ValueError>([&] {
          (void)metrics::crps_quantile(s, zeros({3}, f64), ones({3}, f64));
        }).find("normaliser") != std::string::npos);
  // Non-finite samples, or a non-finite target on the mask, are refused (never a NaN metric);
  // a NaN target off the mask is ignored.
  const Tensor nan_y = from_vector({1, kNaN, 1}, {3}, f64);
  CHECK_THROWS_AS(metrics::crps_quantile(s, nan_y, ones({3}, f64)), ValueError);
  CHECK(std::isfinite(metrics::crps_quantile(s, nan_y, from_vector({1, 0, 1}, {3}, f64))));
  CHECK_THROWS_AS(metrics::median_errors(s * kInf, y, ones({3}, f64)), ValueError);
  Generator g(1);
  const Tensor draws = randn({40, 6}, g, f64), truth = randn({6}, g, f64);
  const Tensor m = from_vector({1, 1, 0, 1, 0, 1}, {6}, f64);
  const Device d = test::kStandin;
  CHECK(metrics::crps_quantile(draws.to(d), truth.to(d), m.to(d)) ==
        metrics::crps_quantile(draws, truth, m));
  CHECK(metrics::median_errors(draws.to(d), truth.to(d), m.to(d)).rmse ==
        metrics::median_errors(draws, truth, m).rmse);
  test::require_same_bits(quantile(draws, {0.05, 0.95}, 0), quantile(draws.to(d), {0.05, 0.95}, 0),
                          d, "quantile");
}
