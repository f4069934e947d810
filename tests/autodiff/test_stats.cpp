// The statistical checks themselves: per-element reports, variance checks against closed forms,
// paired (common-random-number) comparisons, and that each check can fail when it should.
#include <catch2/catch.hpp>
#include <cmath>
#include <sstream>

#include "autodiff/sg.hpp"

using namespace sg;

namespace {
constexpr DType f64 = DType::f64;
// X = mu + sd * N(0, 1), elementwise, for a vector of means and standard deviations
Estimator normal(std::vector<double> mu, std::vector<double> sd) {
  return [mu, sd](Generator& g) {
    const auto n = static_cast<int64_t>(mu.size());
    return from_vector(mu, {n}, f64) + from_vector(sd, {n}, f64) * randn({n}, g, f64);
  };
}
}  // namespace

TEST_CASE("mean checks report every element, not only the worst", "[stats]") {
  const MeanCheck c = mean_equals(normal({0, 1, 2}, {1, 2, 3}), from_vector({0, 1, 2}, {3}, f64),
                                  {.samples = 4000, .seed = 1});
  REQUIRE(c.per_element.size() == 3);
  CHECK(c.pass);
  CHECK(c.failed == 0);
  for (int i = 0; i < 3; ++i) {
    const ElementCheck& e = c.per_element[static_cast<std::size_t>(i)];
    CHECK(e.reference == i);
    CHECK(e.std_error == Approx((i + 1) / std::sqrt(4000.0)).epsilon(0.1));
    CHECK(std::abs(e.z) <= 4);
  }
  std::ostringstream text;
  text << c;
  CHECK_THAT(text.str(), Catch::Contains("[2] estimate"));
  // one wrong element: it alone fails, and is named
  const MeanCheck bad = mean_equals(normal({0, 1, 2}, {1, 1, 1}),
                                    from_vector({0, 1.5, 2}, {3}, f64), {.samples = 2000});
  CHECK_FALSE(bad.pass);
  CHECK(bad.failed == 1);
  CHECK_FALSE(bad.per_element[1].pass);
  CHECK(bad.per_element[0].pass);
  CHECK(bad.reference == 1.5);
}

TEST_CASE("variance checks against closed forms, and they fail on a wrong variance", "[stats]") {
  // Var[N(0, s^2)] = s^2; Var[Rademacher] = 1 (its s^2 has a tiny standard error: m4 = 1)
  const MeanCheck ok = variance_equals(normal({0, 5}, {1, 0.5}), from_vector({1, 0.25}, {2}, f64),
                                       {.samples = 8000, .seed = 3});
  INFO(ok);
  CHECK(ok.pass);
  // SE of s^2 for a normal: sqrt(2/n) s^2
  CHECK(ok.per_element[0].std_error == Approx(std::sqrt(2.0 / 8000)).epsilon(0.1));
  const MeanCheck wrong =
      variance_equals(normal({0}, {1.1}), 1.0, {.samples = 8000, .seed = 3}, "too wide");
  CHECK_FALSE(wrong.pass);
  CHECK_THROWS_AS(variance_equals(normal({0}, {1}), 1.0, {.samples = 3}), ValueError);
  // Hutchinson's estimator of tr(A): Rademacher variance 2 sum_{i != j} A_ij^2 (symmetric A)
  const Tensor A = from_vector({2, 1, 0.5, 1, 3, -1, 0.5, -1, 1}, {3, 3}, f64);
  const Estimator hutch = [&](Generator& g) {
    const Tensor v = rademacher({3}, g, f64);
    return sum(v * matmul(A, reshape(v, {3, 1})).reshape({3}));
  };
  const double off = 2 * (1 + 0.25 + 1) * 2;  // 2 * sum over i != j of A_ij^2
  const MeanCheck h = variance_equals(hutch, off, {.samples = 20000, .seed = 4}, "hutchinson");
  INFO(h);
  CHECK(h.pass);
}

TEST_CASE("paired comparison on common random numbers", "[stats]") {
  // a = Z + 1, b = Z + 1 + 0.3 W (Z, W independent normals drawn from one generator): equal
  // means; the paired difference has variance 0.09, far below the independent 2.09, and b is
  // noisier than a by log(1.09).
  const Estimator a = [](Generator& g) { return randn({2}, g, f64) + 1.0; };
  const Estimator b = [](Generator& g) {
    const Tensor z = randn({2}, g, f64);
    return z + 1.0 + randn({2}, g, f64) * 0.3;
  };
  const PairedCheck p = paired_compare(a, b, {.samples = 20000, .seed = 5});
  INFO(p);
  CHECK(p.difference.pass);
  CHECK(p.difference.per_element[0].std_error == Approx(0.3 / std::sqrt(20000.0)).epsilon(0.1));
  CHECK(p.log_ratio[0] == Approx(std::log(1.09)).margin(4 * p.log_ratio_se[0]));
  CHECK(p.a_less_noisy);
  // the same estimator twice: zero difference, no variance claim
  const PairedCheck same = paired_compare(a, a, {.samples = 1000});
  CHECK(same.difference.pass);
  CHECK(same.difference.per_element[0].estimate == 0.0);
  CHECK_FALSE(same.a_less_noisy);
  // a biased estimator: the paired test sees a shift the independent test cannot
  const Estimator shifted = [](Generator& g) { return randn({2}, g, f64) + 1.01; };
  CHECK_FALSE(paired_compare(a, shifted, {.samples = 2000}).difference.pass);
  CHECK(means_equal(a, shifted, {.samples = 2000}).pass);
}
