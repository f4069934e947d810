// Random numbers: the Philox-4x32-10 known answer, reproducibility across seeds, generator
// offsets, split streams and thread counts, and the moments of every distribution.
#include <omp.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <functional>
#include <set>
#include <vector>

#include "autodiff/backend/philox.hpp"
#include "autodiff/sg.hpp"

using namespace sg;

namespace {

// Restores the OpenMP thread count on scope exit.
struct ThreadCount {
  int prev = omp_get_max_threads();
  explicit ThreadCount(int n) { omp_set_num_threads(n); }
  ~ThreadCount() { omp_set_num_threads(prev); }
};

struct Moments {
  double mean = 0, var = 0, m3 = 0, m4 = 0,
         lag1 = 0;  // central moments except lag1 = E[x_i x_(i+1)]
  double min = INFINITY, max = -INFINITY;
};
Moments moments(const std::vector<double>& v) {
  Moments m;
  const double n = static_cast<double>(v.size());
  for (double x : v) {
    m.mean += x;
    m.min = std::min(m.min, x);
    m.max = std::max(m.max, x);
  }
  m.mean /= n;
  for (size_t i = 0; i < v.size(); ++i) {
    const double d = v[i] - m.mean;
    m.var += d * d;
    m.m3 += d * d * d;
    m.m4 += d * d * d * d;
    if (i + 1 < v.size()) m.lag1 += (v[i] - m.mean) * (v[i + 1] - m.mean);
  }
  m.var /= n;
  m.m3 /= n;
  m.m4 /= n;
  m.lag1 /= n - 1;
  return m;
}

constexpr int64_t kN = 200000;
const double kSqrtN = std::sqrt(static_cast<double>(kN));

}  // namespace

TEST_CASE("Philox-4x32-10 known answer (Random123, counter 0, key 0)", "[rng]") {
  const philox::Block b = philox::generate(0, 0);
  CHECK(b.v[0] == 0x6627e8d5u);
  CHECK(b.v[1] == 0xe169c58du);
  CHECK(b.v[2] == 0xbc57ac4cu);
  CHECK(b.v[3] == 0x9b00dbd8u);
  // Every bit of the 64-bit counter and of the 64-bit key matters.
  std::set<std::vector<uint32_t>> seen;
  for (auto [seed, ctr] : std::vector<std::pair<uint64_t, uint64_t>>{{0, 0},
                                                                     {0, 1},
                                                                     {0, 1ull << 32},
                                                                     {0, 1ull << 63},
                                                                     {1, 0},
                                                                     {1ull << 32, 0},
                                                                     {1ull << 63, 0},
                                                                     {1, 1}}) {
    const philox::Block x = philox::generate(seed, ctr);
    seen.insert({x.v[0], x.v[1], x.v[2], x.v[3]});
    // Deterministic.
    const philox::Block y = philox::generate(seed, ctr);
    CHECK(std::vector<uint32_t>(x.v, x.v + 4) == std::vector<uint32_t>(y.v, y.v + 4));
  }
  CHECK(seen.size() == 8);
}

TEST_CASE("random draws are the Philox stream at the generator's offset", "[rng]") {
  Generator g(0xC0FFEE);
  g.set_state(0xC0FFEE, 1000);
  const std::vector<float> u = rand({64}, g, DType::f32).values<float>();
  const std::vector<double> ud = rand({64}, g, DType::f64).values<double>();
  for (int i = 0; i < 64; ++i) {
    INFO("element " << i);
    CHECK(u[i] == philox::uniform_f32(philox::generate(0xC0FFEE, 1000 + i)));
    CHECK(ud[i] == philox::uniform_f64(philox::generate(0xC0FFEE, 1064 + i)));
  }
  // randn element i is the Box-Muller sample of counter offset + i.
  g.set_state(9, 5);
  const std::vector<double> z = randn({33}, g, DType::f64).values<double>();
  for (int i = 0; i < 33; ++i)
    CHECK(z[i] == philox::sample<double>(RandomKind::normal, 9, 5 + i, 0));
}

TEST_CASE("same seed, same numbers; different seeds, different numbers", "[rng]") {
  for (DType dt : {DType::f32, DType::f64}) {
    INFO(dtype_name(dt));
    using Draw = std::function<Tensor(Generator&)>;
    const std::vector<Draw> draws = {
        [dt](Generator& g) {
          return rand({5, 7}, g, dt);
        },
        [dt](Generator& g) {
          return randn({5, 7}, g, dt);
        },
        [dt](Generator& g) {
          return rademacher({5, 7}, g, dt);
        },
        [dt](Generator& g) {
          return bernoulli({5, 7}, 0.5, g, dt);
        },
    };
    for (const Draw& d : draws) {
      Generator a(42), b(42), c(43);
      const std::vector<double> x = d(a).to_vector(), y = d(b).to_vector(), z = d(c).to_vector();
      CHECK(x == y);
      CHECK(x != z);
      // The next draw continues the stream: different from the first.
      CHECK(d(a).to_vector() != x);
      CHECK(d(a).to_vector() == [&] {
        d(b);
        return d(b).to_vector();
      }());
    }
  }
}

TEST_CASE("random draws do not depend on the OpenMP thread count", "[rng][threads]") {
  for (DType dt : {DType::f32, DType::f64}) {
    INFO(dtype_name(dt));
    auto draw_all = [dt](int threads) {
      ThreadCount tc(threads);
      REQUIRE(omp_get_max_threads() == threads);
      Generator g(2024);
      std::vector<std::vector<double>> r;
      r.push_back(rand({kN}, g, dt).to_vector());
      r.push_back(randn({400, 500}, g, dt).to_vector());
      r.push_back(rademacher({kN}, g, dt).to_vector());
      r.push_back(bernoulli({kN}, 0.3, g, dt).to_vector());
      r.push_back({static_cast<double>(g.offset())});
      return r;
    };
    const auto one = draw_all(1), two = draw_all(2);
    REQUIRE(one.size() == two.size());
    for (size_t i = 0; i < one.size(); ++i) {
      INFO("draw " << i);
      CHECK(one[i] == two[i]);
    }
    CHECK(one.back()[0] == 4.0 * kN);
  }
}

TEST_CASE("generator offsets advance by numel and resume exactly", "[rng]") {
  Generator g(7);
  CHECK(g.seed() == 7);
  CHECK(g.offset() == 0);
  (void)rand({3, 4}, g);
  CHECK(g.offset() == 12);
  (void)randn({5}, g, DType::f64);
  CHECK(g.offset() == 17);
  (void)rademacher({2, 2, 2}, g);
  CHECK(g.offset() == 25);
  (void)bernoulli({10}, 0.1, g);
  CHECK(g.offset() == 35);
  (void)randn_like(zeros({6}, DType::f64), g);
  CHECK(g.offset() == 41);
  (void)rand_like(zeros({2, 3}), g);
  CHECK(g.offset() == 47);
  (void)rademacher_like(zeros({1}), g);
  CHECK(g.offset() == 48);
  (void)rand({0, 5}, g);
  CHECK(g.offset() == 48);
  CHECK(g.seed() == 7);
  CHECK(g.advance(10) == 48);
  CHECK(g.offset() == 58);

  // Two draws of 12 and 7 are the two parts of one draw of 19.
  for (DType dt : {DType::f32, DType::f64}) {
    Generator a(99), b(99);
    std::vector<double> parts = rand({12}, a, dt).to_vector();
    const std::vector<double> tail = rand({7}, a, dt).to_vector();
    parts.insert(parts.end(), tail.begin(), tail.end());
    CHECK(parts == rand({19}, b, dt).to_vector());
    // Saving (seed, offset) and restoring it replays the stream.
    Generator c(99);
    (void)randn({12}, c, dt);
    const uint64_t off = c.offset();
    const std::vector<double> next = randn({50}, c, dt).to_vector();
    Generator d(0);
    d.set_state(99, off);
    CHECK(randn({50}, d, dt).to_vector() == next);
    CHECK(d.offset() == off + 50);
  }
}

TEST_CASE("split() gives independent, reproducible streams", "[rng]") {
  Generator g(1);
  Generator a = g.split();
  CHECK(g.offset() == 1);
  Generator b = g.split();
  CHECK(g.offset() == 2);
  CHECK(a.seed() != b.seed());
  CHECK(a.seed() != g.seed());
  CHECK(b.seed() != g.seed());
  CHECK(a.offset() == 0);
  CHECK(b.offset() == 0);
  const std::vector<double> xa = randn({1000}, a, DType::f64).to_vector();
  const std::vector<double> xb = randn({1000}, b, DType::f64).to_vector();
  const std::vector<double> xg = randn({1000}, g, DType::f64).to_vector();
  CHECK(xa != xb);
  CHECK(xa != xg);
  // Children are uncorrelated with each other.
  double c = 0;
  for (int i = 0; i < 1000; ++i) c += xa[i] * xb[i];
  CHECK(std::fabs(c / 1000) < 4 / std::sqrt(1000.0));
  // Deterministic: the same parent state gives the same child.
  Generator h(1);
  CHECK(h.split().seed() == a.seed());
  CHECK(h.split().seed() == b.seed());
  // Different parent seeds give different children.
  Generator p(2);
  CHECK(p.split().seed() != a.seed());
  // Many splits are all distinct.
  Generator q(5);
  std::set<uint64_t> seeds;
  for (int i = 0; i < 1000; ++i) seeds.insert(q.split().seed());
  CHECK(seeds.size() == 1000);
}

TEST_CASE("moments of randn, rand, rademacher, bernoulli", "[rng][stats]") {
  for (DType dt : {DType::f32, DType::f64}) {
    INFO(dtype_name(dt));
    Generator g(31337);
    {
      const std::vector<double> z = randn({kN}, g, dt).to_vector();
      const Moments m = moments(z);
      INFO("randn mean " << m.mean << " var " << m.var << " m3 " << m.m3 << " m4 " << m.m4
                         << " lag1 " << m.lag1);
      CHECK(std::fabs(m.mean) <= 4 / kSqrtN);
      CHECK(std::fabs(m.var - 1) <= 4 * std::sqrt(2.0) / kSqrtN);
      CHECK(std::fabs(m.m3) <= 4 * std::sqrt(15.0) / kSqrtN);
      CHECK(std::fabs(m.m4 - 3) <= 4 * std::sqrt(96.0) / kSqrtN);
      CHECK(std::fabs(m.lag1) <= 4 / kSqrtN);
      // P(|Z| < 1) = 0.682689...
      double inside = 0;
      for (double x : z) inside += std::fabs(x) < 1;
      const double p = 0.6826894921370859;
      CHECK(std::fabs(inside / kN - p) <= 4 * std::sqrt(p * (1 - p)) / kSqrtN);
      for (double x : z) {
        if (!std::isfinite(x)) {
          FAIL("randn produced a non-finite value");
          break;
        }
      }
    }
    {
      const std::vector<double> u = rand({kN}, g, dt).to_vector();
      const Moments m = moments(u);
      INFO("rand mean " << m.mean << " var " << m.var << " min " << m.min << " max " << m.max);
      CHECK(m.min >= 0);
      CHECK(m.max < 1);
      CHECK(std::fabs(m.mean - 0.5) <= 4 * std::sqrt(1.0 / 12) / kSqrtN);
      CHECK(std::fabs(m.var - 1.0 / 12) <= 4 * std::sqrt(1.0 / 180) / kSqrtN);
      CHECK(std::fabs(m.lag1) <= 4 * (1.0 / 12) / kSqrtN);
      // Each decile holds a tenth of the draws.
      std::vector<double> bins(10, 0);
      for (double x : u) bins[static_cast<int>(x * 10)] += 1;
      for (int k = 0; k < 10; ++k)
        CHECK(std::fabs(bins[k] / kN - 0.1) <= 4 * std::sqrt(0.09) / kSqrtN);
    }
    {
      const std::vector<double> r = rademacher({kN}, g, dt).to_vector();
      bool pm1 = true;
      for (double x : r) pm1 &= x == 1 || x == -1;
      CHECK(pm1);
      const Moments m = moments(r);
      INFO("rademacher mean " << m.mean << " lag1 " << m.lag1);
      CHECK(std::fabs(m.mean) <= 4 / kSqrtN);
      CHECK(std::fabs(m.lag1) <= 4 / kSqrtN);
    }
    for (double p : {0.3, 0.5, 0.02, 0.9}) {
      const std::vector<double> b = bernoulli({kN}, p, g, dt).to_vector();
      bool zero_one = true;
      for (double x : b) zero_one &= x == 0 || x == 1;
      CHECK(zero_one);
      const Moments m = moments(b);
      INFO("bernoulli(" << p << ") mean " << m.mean);
      CHECK(std::fabs(m.mean - p) <= 4 * std::sqrt(p * (1 - p)) / kSqrtN);
    }
    CHECK(bernoulli({1000}, 0.0, g, dt).to_vector() == std::vector<double>(1000, 0.0));
    CHECK(bernoulli({1000}, 1.0, g, dt).to_vector() == std::vector<double>(1000, 1.0));
    // A multi-dimensional draw has the requested shape and dtype.
    const Tensor t = randn({3, 4, 5}, g, dt);
    CHECK(t.shape() == Shape{3, 4, 5});
    CHECK(t.dtype() == dt);
    CHECK(t.is_contiguous());
  }
}
