// The edges of the elementwise ops: SIMD and scalar paths agree at every special value (zeros,
// subnormals, infinities, NaN, huge), and derivatives at special points (pow at 0, the kinks
// and switch points of the composites, NaN in a max, large logits) are finite and right.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <functional>
#include <iomanip>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "autodiff/sg.hpp"

using namespace sg;

namespace {

[[maybe_unused]] std::string fmt(double x) {
  std::ostringstream s;
  s << std::setprecision(17) << x;
  return s.str();
}

}  // namespace

namespace {

using Vec = std::vector<double>;
Tensor f64(const Vec& v) { return from_vector(v, {static_cast<int64_t>(v.size())}, DType::f64); }
// d^k f / dx^k elementwise, by k reverse passes.
Tensor nth_grad(const std::function<Tensor(const Tensor&)>& f, const Tensor& x0, int k) {
  EnableGradGuard on;
  const Tensor x = x0.detach().requires_grad_();
  Tensor d = f(x);
  for (int i = 0; i < k; ++i)
    d = grad({d}, {x}, {ones_like(d)}, {.create_graph = true, .allow_unused = true})[0];
  return d.detach();
}
bool all_finite(const Tensor& t) {
  for (double v : t.to_vector())
    if (!std::isfinite(v)) return false;
  return true;
}

}  // namespace

TEST_CASE("pow with a tensor exponent: finite derivatives at a = 0, b = 0", "[special][pow]") {
  const Tensor a0 = f64({0, 0, 2, 0}), b0 = f64({0, 2, 0, 1});
  EnableGradGuard on;
  const Tensor a = a0.detach().requires_grad_(), b = b0.detach().requires_grad_();
  const Tensor y = pow(a, b);
  CHECK(y.to_vector() == Vec{1, 0, 1, 0});
  auto [da, db] = [&] {
    auto g = grad({y}, {a, b}, {ones_like(y)}, {.create_graph = true});
    return std::pair{g[0], g[1]};
  }();
  INFO("da " << fmt(da.to_vector()[0]) << " db " << fmt(db.to_vector()[0]));
  CHECK(da.to_vector() == Vec{0, 0, 0, 1});              // b a^(b-1); 0 at a = b = 0 (a^0 = 1)
  CHECK(db.to_vector() == Vec{0, 0, std::log(2.0), 0});  // log(a) a^b; 0 at a = 0
  // Second order: d2/da db at (2, 0) is 1/a (not masked away), 0 at (0, 0).
  const Tensor dab = grad({da}, {b}, {ones_like(da)}, {.allow_unused = true})[0];
  CHECK(all_finite(dab));
  CHECK(dab.to_vector()[0] == 0);
  CHECK(dab.to_vector()[2] == Approx(0.5).epsilon(1e-15));
  const Tensor daa = grad({da}, {a}, {ones_like(da)}, {.allow_unused = true})[0];
  CHECK(daa.to_vector() == Vec{0, 2, 0, 0});
  // Forward mode agrees.
  auto [y2, t] = jvp([&](const Tensor& u) { return pow(u, b0); }, a0, ones_like(a0));
  CHECK(t.to_vector() == Vec{0, 0, 0, 1});
}

TEST_CASE("softplus and log_sigmoid: exact derivatives at 0 to third order", "[special]") {
  const Tensor x = f64({0.0, -0.0, 1e-300});
  for (int k = 1; k <= 3; ++k) {
    const Vec sp = nth_grad([](const Tensor& z) { return softplus(z); }, x, k).to_vector();
    const Vec ls = nth_grad([](const Tensor& z) { return log_sigmoid(z); }, x, k).to_vector();
    const double want[] = {0.5, 0.25, 0.0};  // sigma(0), sigma'(0), sigma''(0)
    for (size_t i = 0; i < sp.size(); ++i) {
      INFO("k " << k << " point " << i << ": softplus " << fmt(sp[i]) << " log_sigmoid "
                << fmt(ls[i]));
      CHECK(sp[i] == Approx(want[k - 1]).margin(1e-16));
      CHECK(ls[i] == Approx(k % 2 ? want[k - 1] : -want[k - 1]).margin(1e-16));
    }
  }
  // Values unchanged: log(2) at 0, stable at +-1000 (the composite's two sides).
  CHECK(softplus(f64({0})).item() == Approx(std::log(2.0)).epsilon(1e-16));
  CHECK(softplus(f64({1000, -1000})).to_vector() == Vec{1000, 0});
  CHECK(log_sigmoid(f64({1000, -1000})).to_vector() == Vec{-0.0, -1000});
}

TEST_CASE("max/min reductions: a NaN takes the gradient, the other elements get 0",
          "[special][reduce]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor x = from_vector({1, nan, 3, 2, 4, 5, 6, 6}, {2, 4}, DType::f64);
  for (bool is_max : {true, false}) {
    INFO((is_max ? "max" : "min"));
    auto f = [&](const Tensor& z) { return is_max ? max(z, {1}) : min(z, {1}); };
    const Vec g = nth_grad([&](const Tensor& z) { return sum(f(z)); }, x, 1).to_vector();
    // Row 0: the NaN is the result and takes the cotangent. Row 1: the argmax/argmin
    // (ties split evenly: max 6, 6 -> 1/2 each).
    const Vec want = is_max ? Vec{0, 1, 0, 0, 0, 0, 0.5, 0.5} : Vec{0, 1, 0, 0, 1, 0, 0, 0};
    CHECK(g == want);
    // Forward mode: the tangent of the result is the tangent of the chosen element.
    const Tensor t = from_vector({10, 20, 30, 40, 50, 60, 70, 80}, {2, 4}, DType::f64);
    const Vec jt = jvp(f, x, t).second.to_vector();
    CHECK(jt == (is_max ? Vec{20, 75} : Vec{20, 50}));
  }
  // maximum/minimum (binary): the NaN side takes the gradient.
  const Tensor a = f64({nan, 1, 2}), b = f64({1, nan, 2});
  EnableGradGuard on;
  const Tensor at = a.detach().requires_grad_(), bt = b.detach().requires_grad_();
  const auto g = grad({sum(maximum(at, bt))}, {at, bt});
  CHECK(g[0].to_vector() == Vec{1, 0, 0.5});
  CHECK(g[1].to_vector() == Vec{0, 1, 0.5});
}

TEST_CASE("log_softmax, softmax and logsumexp keep the answer for large logits",
          "[special][softmax]") {
  const double ln2 = std::log(2.0);
  for (double big : {1e15, 1e300, -1e300}) {
    INFO("logits " << big);
    const Tensor x = f64({big, big, 0});
    const Vec ls = log_softmax(x).to_vector();
    const Vec sm = softmax(x).to_vector();
    if (big > 0) {
      CHECK(ls[0] == Approx(-ln2).epsilon(1e-15));
      CHECK(ls[1] == Approx(-ln2).epsilon(1e-15));
      CHECK(ls[2] == -big - ln2);  // correctly rounded
      CHECK(sm == Vec{0.5, 0.5, 0});
      CHECK(logsumexp(x).item() == big + ln2);  // correctly rounded
    } else {
      CHECK(ls[2] == 0);
      CHECK(sm == Vec{0, 0, 1});
    }
    // Every derivative is shift-invariant: compare with the same logits shifted to max 0.
    const Tensor z = x - (big > 0 ? big : 0.0);
    for (int k = 1; k <= 3; ++k) {
      auto f = [](const Tensor& u) { return sum(log_softmax(u) * f64({0.3, -1.2, 2.0})); };
      auto s = [](const Tensor& u) { return sum(softmax(u) * f64({0.3, -1.2, 2.0})); };
      const Vec gf = nth_grad(f, x, k).to_vector(), gz = nth_grad(f, z, k).to_vector();
      const Vec sf = nth_grad(s, x, k).to_vector(), sz = nth_grad(s, z, k).to_vector();
      for (size_t i = 0; i < 3; ++i) {
        INFO("order " << k << " element " << i);
        CHECK(gf[i] == Approx(gz[i]).margin(1e-15));
        CHECK(sf[i] == Approx(sz[i]).margin(1e-15));
      }
    }
  }
  // The gradient of softmax at [1e15, 1e15, 0] with cotangent e_0: s0 (1 - s0) = 1/4, -1/4, 0.
  const Tensor x = f64({1e15, 1e15, 0});
  const Vec g =
      nth_grad([](const Tensor& u) { return select(softmax(u), 0, 0); }, x, 1).to_vector();
  CHECK(g == Vec{0.25, -0.25, 0});
}
