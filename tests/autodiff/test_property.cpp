// Property test: random expression graphs (random ops, shapes with broadcasting, shared
// subexpressions) checked against central differences at orders 1 and 2, and evaluated on a
// tiny scalar reference implementation for their values.
#include <catch2/catch.hpp>
#include <functional>
#include <random>
#include <sstream>

#include "autodiff/sg.hpp"

using namespace sg;

namespace {
// A random program over a pool of values; each op takes pool entries and appends one.
struct Program {
  struct Step {
    int op, a, b;
  };
  std::vector<Step> steps;
  int n_inputs;
};

constexpr int kOps = 9;
Tensor eval_op(int op, const Tensor& a, const Tensor& b) {
  switch (op) {
    case 0:
      return a + b;
    case 1:
      return a * b;
    case 2:
      return a - b;
    case 3:
      return tanh(a);
    case 4:
      return sin(a) * b;
    case 5:
      return a / (1.5 + b * b);
    case 6:
      return softplus(a);
    case 7:
      return exp(a * 0.3);
    default:
      return sigmoid(a) + b;
  }
}
double eval_scalar(int op, double a, double b) {
  switch (op) {
    case 0:
      return a + b;
    case 1:
      return a * b;
    case 2:
      return a - b;
    case 3:
      return std::tanh(a);
    case 4:
      return std::sin(a) * b;
    case 5:
      return a / (1.5 + b * b);
    case 6:
      return std::log1p(std::exp(a));
    case 7:
      return std::exp(a * 0.3);
    default:
      return 1 / (1 + std::exp(-a)) + b;
  }
}

Program random_program(std::mt19937& rng, int inputs, int len) {
  Program p{{}, inputs};
  for (int i = 0; i < len; ++i) {
    const int pool = inputs + i;
    p.steps.push_back({static_cast<int>(rng() % kOps), static_cast<int>(rng() % pool),
                       static_cast<int>(rng() % pool)});
  }
  return p;
}
Tensor run(const Program& p, const std::vector<Tensor>& xs) {
  std::vector<Tensor> pool = xs;
  for (const auto& s : p.steps) pool.push_back(eval_op(s.op, pool[s.a], pool[s.b]));
  return pool.back() + pool[pool.size() / 2];
}
}  // namespace

TEST_CASE("random expression graphs pass gradcheck at orders 1 and 2", "[property]") {
  std::mt19937 rng(1234);
  // Broadcast-compatible shapes: inputs of shape [3,4], [4], [3,1].
  const std::vector<Shape> shapes = {{3, 4}, {4}, {3, 1}};
  for (int trial = 0; trial < 40; ++trial) {
    const Program p = random_program(rng, 3, 6 + static_cast<int>(rng() % 6));
    Generator g(trial);
    std::vector<Tensor> xs;
    for (const Shape& s : shapes) xs.push_back(randn(s, g, DType::f64));
    const GradcheckReport r =
        gradcheck([&](const std::vector<Tensor>& v) { return run(p, v); }, xs,
                  {.order = 2, .atol = 1e-6, .rtol = 1e-5, .seed = static_cast<uint64_t>(trial)});
    std::ostringstream s;
    s << r;
    INFO("trial " << trial << "\n" << s.str());
    REQUIRE(r.ok());
  }
}

TEST_CASE("random expression graphs match a scalar reference", "[property]") {
  std::mt19937 rng(99);
  for (int trial = 0; trial < 40; ++trial) {
    const Program p = random_program(rng, 2, 8);
    Generator g(trial);
    const Tensor a = randn({5}, g, DType::f64), b = randn({5}, g, DType::f64);
    const std::vector<double> got = run(p, {a, b}).to_vector();
    const auto av = a.to_vector(), bv = b.to_vector();
    for (int i = 0; i < 5; ++i) {
      std::vector<double> pool = {av[i], bv[i]};
      for (const auto& s : p.steps) pool.push_back(eval_scalar(s.op, pool[s.a], pool[s.b]));
      const double expect = pool.back() + pool[pool.size() / 2];
      CHECK(got[i] == Approx(expect).epsilon(1e-12).margin(1e-12));
    }
  }
}
