// The virtual Brownian tree: additivity of increments (and of the time integral that the
// space-time Levy area encodes) to round-off, the same values whatever the order and
// granularity of queries, the moments of W and H on arbitrary intervals within standard
// errors, independence of disjoint increments, the cost of a dyadic sweep, and bad input.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "autodiff/sg.hpp"
#include "sde/brownian.hpp"

using namespace sg;

namespace {
constexpr DType f64 = DType::f64;
double max_abs(const Tensor& x) { return max(abs(x)).item(); }
// Sample variance / covariance over the elements of one draw (the elements are independent).
double cov(const Tensor& x, const Tensor& y) {
  return mean((x - mean(x)) * (y - mean(y))).item() * double(x.numel()) / double(x.numel() - 1);
}
BrownianTree tree(uint64_t seed, bool levy, int64_t n = 64) {
  return BrownianTree(seed, {n}, 0.0, 2.0, {.levy_area = levy, .dtype = f64});
}
}  // namespace

TEST_CASE("Brownian tree increments add up and the Levy area's integral too",
          "[sdeint][brownian]") {
  for (bool levy : {false, true}) {
    const BrownianTree W = tree(11, levy);
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> u(0.0, 2.0);
    for (int k = 0; k < 20; ++k) {
      double p[3] = {u(rng), u(rng), u(rng)};
      std::sort(p, p + 3);
      const auto [a, b, c] = std::tuple(p[0], p[1], p[2]);
      const BrownianIncrement ac = W.increment(a, c), ab = W.increment(a, b),
                              bc = W.increment(b, c);
      CHECK(max_abs(ac.W - ab.W - bc.W) < 1e-12);
      CHECK(max_abs(W(c, a) + ac.W) < 1e-12);
      if (levy) {
        // int_a^c (W_u - W_a) du = (c-a)(W/2 + H) splits into the two halves plus (c-b) W(a,b)
        const Tensor lhs = (ac.W * 0.5 + ac.H) * (c - a);
        const Tensor rhs =
            (ab.W * 0.5 + ab.H) * (b - a) + (bc.W * 0.5 + bc.H) * (c - b) + ab.W * (c - b);
        CHECK(max_abs(lhs - rhs) < 1e-12);
      }
    }
  }
}

TEST_CASE("Brownian tree values do not depend on query order or granularity",
          "[sdeint][brownian]") {
  // Increments over a non-dyadic grid, queried forwards, backwards and shuffled on fresh trees,
  // and through a finer grid summed up: bit-identical for the same intervals, to round-off
  // for the summed ones.
  std::vector<double> ts;
  for (int k = 0; k <= 30; ++k) ts.push_back(2.0 * k / 30.0);
  auto sweep = [&](const BrownianTree& W, std::vector<int> order) {
    std::vector<Tensor> w(ts.size() - 1), h(ts.size() - 1);
    for (int k : order) {
      const BrownianIncrement d = W.increment(ts[k], ts[k + 1]);
      w[k] = d.W, h[k] = d.H;
    }
    return std::pair(w, h);
  };
  std::vector<int> fwd(ts.size() - 1);
  for (size_t k = 0; k < fwd.size(); ++k) fwd[k] = int(k);
  std::vector<int> bwd(fwd.rbegin(), fwd.rend()), shuf = fwd;
  std::shuffle(shuf.begin(), shuf.end(), std::mt19937(3));
  const auto [w1, h1] = sweep(tree(5, true), fwd);
  const auto [w2, h2] = sweep(tree(5, true), bwd);
  const BrownianTree warm = tree(5, true);
  (void)warm(0.7, 1.9);  // a different descent path cached first
  const auto [w3, h3] = sweep(warm, shuf);
  for (size_t k = 0; k < w1.size(); ++k) {
    CHECK(max_abs(w1[k] - w2[k]) == 0);
    CHECK(max_abs(w1[k] - w3[k]) == 0);
    CHECK(max_abs(h1[k] - h2[k]) == 0);
    CHECK(max_abs(h1[k] - h3[k]) == 0);
  }
  // Finer: 7 sub-steps per step, summed.
  const BrownianTree fine = tree(5, true);
  for (size_t k = 0; k + 1 < ts.size(); k += 5) {
    Tensor sum_w = zeros({64}, f64);
    for (int j = 0; j < 7; ++j)
      sum_w = sum_w + fine(ts[k] + (ts[k + 1] - ts[k]) * j / 7.0,
                           ts[k] + (ts[k + 1] - ts[k]) * (j + 1) / 7.0);
    CHECK(max_abs(sum_w - w1[k]) < 1e-12);
  }
  // Another seed gives another path; float32 output is the float64 path rounded.
  CHECK(max_abs(tree(6, true)(0.1, 0.2) - w1[1]) > 0);
  const BrownianTree w32(5, {64}, 0.0, 2.0, {.levy_area = true, .dtype = DType::f32});
  const Tensor d32 = w32(ts[3], ts[4]);
  CHECK(d32.dtype() == DType::f32);
  CHECK(max_abs(d32.to(f64) - w1[3]) < 1e-6);
}

TEST_CASE("Brownian tree increments have the Brownian moments on arbitrary intervals",
          "[sdeint][brownian]") {
  // N independent components: Var W(s,t) = t - s, Var H = (t - s)/12, Cov(W, H) = 0, and
  // disjoint or nested-but-disjoint pieces uncorrelated; each checked within 4.5 standard
  // errors (variance: sigma^2 sqrt(2/N); correlation: 1/sqrt(N)).
  const int64_t N = 20000;
  const BrownianTree W(21, {N}, 0.0, 1.0, {.levy_area = true, .dtype = f64});
  const double z = 4.5, se_var = std::sqrt(2.0 / double(N)), se_cor = 1 / std::sqrt(double(N));
  const double iv[][2] = {{0.0, 1.0}, {0.1234, 0.3456}, {0.3456, 0.35}, {0.5, 0.5 + 1e-3}};
  std::vector<BrownianIncrement> incs;
  for (const auto& p : iv) {
    const double dt = p[1] - p[0];
    const BrownianIncrement d = W.increment(p[0], p[1]);
    INFO("interval [" << p[0] << ", " << p[1] << "]");
    CHECK(std::abs(cov(d.W, d.W) / dt - 1) < z * se_var);
    CHECK(std::abs(cov(d.H, d.H) / (dt / 12) - 1) < z * se_var);
    CHECK(std::abs(cov(d.W, d.H) / std::sqrt(dt * dt / 12)) < z * se_cor);
    CHECK(std::abs(mean(d.W).item()) < z * std::sqrt(dt / double(N)));
    incs.push_back(d);
  }
  // Disjoint: [0.1234, 0.3456] and [0.3456, 0.35] (adjacent), W and H of both.
  const auto cor = [&](const Tensor& a, const Tensor& b) {
    return cov(a, b) / std::sqrt(cov(a, a) * cov(b, b));
  };
  for (const Tensor& a : {incs[1].W, incs[1].H})
    for (const Tensor& b : {incs[2].W, incs[2].H, incs[3].W, incs[3].H})
      CHECK(std::abs(cor(a, b)) < z * se_cor);
  // Nested: W(0, 1) and W(0.1234, 0.3456) have correlation sqrt(dt/1).
  CHECK(std::abs(cor(incs[0].W, incs[1].W) - std::sqrt(0.2222)) < z * se_cor);
}

TEST_CASE("Brownian tree: a dyadic sweep draws one node per step; bad input is an error",
          "[sdeint][brownian]") {
  const BrownianTree W(1, {8}, 0.0, 1.0, {.levy_area = true, .dtype = f64});
  for (int k = 0; k < 256; ++k) (void)W(k / 256.0, (k + 1) / 256.0);
  CHECK(W.nodes_drawn() <= 256);
  CHECK_THROWS_AS(W(-0.1, 0.5), ValueError);
  CHECK_THROWS_AS(W(0.5, std::nan("")), ValueError);
  CHECK_THROWS_AS(W(0.5, 1.5), ValueError);
  CHECK_THROWS_AS(BrownianTree(1, {8}, 1.0, 1.0), ValueError);
  CHECK_THROWS_AS(BrownianTree(1, {8}, 0.0, std::nan("")), ValueError);
  CHECK_THROWS_AS(BrownianTree(1, {8}, 0.0, 1.0, {.tol = -1}), ValueError);
  CHECK_THROWS_AS(BrownianTree(1, {8}, 0.0, 1.0, {.dtype = DType::i64}), DTypeError);
  CHECK(max_abs(W(0.3, 0.3)) == 0);
}
