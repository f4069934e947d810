// Transforms against each other and against closed forms: HVP by both routes on a 3-layer
// MLP, Hessian symmetry, forward vs reverse Jacobians, exact divergence vs analytic traces,
// Hutchinson unbiasedness within standard errors.
#include <catch2/catch.hpp>

#include "autodiff/sg.hpp"

using namespace sg;

namespace {
struct Mlp {
  Tensor w1, b1, w2, b2, w3, b3;
  explicit Mlp(int64_t d, int64_t h, Generator& g) {
    w1 = randn({d, h}, g, DType::f64) * (1.0 / std::sqrt(double(d)));
    b1 = randn({h}, g, DType::f64) * 0.1;
    w2 = randn({h, h}, g, DType::f64) * (1.0 / std::sqrt(double(h)));
    b2 = randn({h}, g, DType::f64) * 0.1;
    w3 = randn({h, d}, g, DType::f64) * (1.0 / std::sqrt(double(h)));
    b3 = randn({d}, g, DType::f64) * 0.1;
  }
  Tensor operator()(const Tensor& x) const {
    Tensor h = tanh(matmul(x, w1) + b1);
    h = silu(matmul(h, w2) + b2);
    return matmul(h, w3) + b3;
  }
};
double max_abs_diff(const Tensor& a, const Tensor& b) { return max(abs(a - b)).item(); }
}  // namespace

TEST_CASE("HVP forward-over-reverse equals reverse-over-reverse on a 3-layer MLP", "[transforms]") {
  Generator g(0);
  Mlp net(5, 16, g);
  const Tensor x = randn({4, 5}, g, DType::f64), v = randn({4, 5}, g, DType::f64);
  auto loss = [&](const Tensor& z) { return sum(square(net(z))) + sum(sin(z)); };
  const Tensor h1 = hvp(loss, x, v, HvpMode::forward_over_reverse);
  const Tensor h2 = hvp(loss, x, v, HvpMode::reverse_over_reverse);
  CHECK(h1.shape() == x.shape());
  CHECK(max_abs_diff(h1, h2) < 1e-10);
  CHECK(max(abs(h1)).item() > 1e-3);  // not trivially zero
}

TEST_CASE("HVP with respect to parameters: both routes agree", "[transforms]") {
  Generator g(1);
  Mlp net(3, 8, g);
  const Tensor x = randn({6, 3}, g, DType::f64);
  const Tensor v = randn(net.w2.shape(), g, DType::f64);
  auto loss = [&](const Tensor& w2) {
    Mlp n2 = net;
    n2.w2 = w2;
    return mean(square(n2(x)));
  };
  CHECK(max_abs_diff(hvp(loss, net.w2, v), hvp(loss, net.w2, v, HvpMode::reverse_over_reverse)) <
        1e-10);
}

TEST_CASE("Hessian is symmetric and matches HVPs", "[transforms]") {
  Generator g(2);
  Mlp net(3, 8, g);
  const Tensor x = randn({6}, g, DType::f64);
  auto f = [&](const Tensor& z) { return sum(square(net(reshape(z, {2, 3})))); };
  const Tensor H = hessian(f, x);
  REQUIRE(H.shape() == Shape({6, 6}));
  CHECK(max_abs_diff(H, H.mT()) < 1e-10);
  const Tensor v = randn({6}, g, DType::f64);
  CHECK(max_abs_diff(matmul(H, v), hvp(f, x, v)) < 1e-10);
}

TEST_CASE("forward and reverse Jacobians agree", "[transforms]") {
  Generator g(3);
  Mlp net(4, 8, g);
  const Tensor x = randn({2, 4}, g, DType::f64);
  auto f = [&](const Tensor& z) { return net(z); };
  const Tensor Jr = jacobian(f, x, JacobianMode::reverse),
               Jf = jacobian(f, x, JacobianMode::forward);
  REQUIRE(Jr.shape() == Shape({2, 4, 2, 4}));
  CHECK(max_abs_diff(Jr, Jf) < 1e-12);
  // Samples are independent: cross-sample blocks vanish.
  CHECK(max(abs(select(select(Jr, 0, 0), 1, 1))).item() == 0.0);
}

TEST_CASE("vjp and jvp agree with the explicit Jacobian", "[transforms]") {
  Generator g(4);
  const Tensor A = randn({3, 5}, g, DType::f64);
  auto f = [&](const Tensor& z) { return tanh(matmul(A, z)); };
  const Tensor x = randn({5}, g, DType::f64), t = randn({5}, g, DType::f64),
               c = randn({3}, g, DType::f64);
  const Tensor J = jacobian(f, x);
  CHECK(max_abs_diff(jvp(f, x, t).second, matmul(J, t)) < 1e-12);
  CHECK(max_abs_diff(vjp(f, x, c).second, matmul(c, J)) < 1e-12);
  auto [y, gr] = value_and_grad([&](const Tensor& z) { return sum(f(z)); }, x);
  CHECK(max_abs_diff(gr, sum(J, {0})) < 1e-12);
  CHECK(std::abs(y.item() - sum(f(x)).item()) < 1e-14);
}

TEST_CASE("nested jvp gives second directional derivatives", "[transforms]") {
  Generator g(5);
  const Tensor x = randn({4}, g, DType::f64), u = randn({4}, g, DType::f64),
               v = randn({4}, g, DType::f64);
  auto f = [](const Tensor& z) { return sum(exp(z) * sin(z)); };
  // u^T H v two ways: jvp of jvp, and u . hvp.
  auto inner = [&](const Tensor& z) { return jvp(f, z, v).second; };
  const double a = jvp(inner, x, u).second.item();
  const double b = sum(u * hvp(f, x, v)).item();
  CHECK(std::abs(a - b) < 1e-11);
}

TEST_CASE("exact divergence equals the analytic trace", "[transforms][divergence]") {
  Generator g(6);
  const int64_t B = 5, D = 4;
  const Tensor W = randn({D, D}, g, DType::f64), b = randn({D}, g, DType::f64);
  const Tensor x = randn({B, D}, g, DType::f64);
  SECTION("linear map x W^T + b: trace W") {
    auto f = [&](const Tensor& z) { return matmul(z, W.mT()) + b; };
    const double tr = sum(W * eye(D, DType::f64)).item();
    for (int chunk : {0, 1, 3, 4}) {
      const Tensor d = divergence(f, x, Divergence::exact(chunk));
      REQUIRE(d.shape() == Shape({B}));
      CHECK(max(abs(d - tr)).item() < 1e-12);
    }
  }
  SECTION("tanh(W x + b): sum_i (1 - tanh^2) W_ii") {
    auto f = [&](const Tensor& z) { return tanh(matmul(z, W.mT()) + b); };
    const Tensor h = tanh(matmul(x, W.mT()) + b);
    const Tensor diagW = sum(W * eye(D, DType::f64), {1});
    const Tensor expect = sum((1.0 - h * h) * diagW, {1});
    CHECK(max_abs_diff(divergence(f, x), expect) < 1e-12);
    CHECK(max_abs_diff(divergence(f, x, Divergence::exact(2)), expect) < 1e-12);
  }
}

TEST_CASE("Hutchinson divergence is unbiased within 4 standard errors",
          "[transforms][divergence]") {
  Generator g(7);
  Mlp net(3, 16, g);
  const Tensor x = randn({4, 3}, g, DType::f64);
  auto f = [&](const Tensor& z) { return net(z); };
  const Tensor exact = divergence(f, x);
  for (bool gaussian : {false, true}) {
    const MeanCheck c = mean_equals(
        [&](Generator& gen) { return divergence(f, x, Divergence::hutchinson(gen, 1, gaussian)); },
        exact, {.samples = 4000, .sigmas = 4, .seed = 9},
        gaussian ? "hutchinson gaussian" : "hutchinson rademacher");
    INFO(c);
    CHECK(c.pass);
    CHECK(c.std_error > 0);
  }
}

TEST_CASE("divergence is differentiable with respect to parameters", "[transforms][divergence]") {
  Generator g(8);
  const Tensor W = randn({3, 3}, g, DType::f64).requires_grad_();
  const Tensor x = randn({2, 3}, g, DType::f64);
  const Tensor d = sum(divergence([&](const Tensor& z) { return tanh(matmul(z, W)); }, x));
  const Tensor dW = grad(d, {W})[0];
  // Reference: finite differences of the exact divergence in W.
  auto div_at = [&](const Tensor& w) {
    NoGradGuard off;
    const Tensor h = tanh(matmul(x, w));
    return sum((1.0 - h * h) * sum(w * eye(3, DType::f64), {0})).item();
  };
  const double eps = 1e-6;
  const std::vector<double> wv = W.to_vector();
  std::vector<double> fd(9);
  for (int i = 0; i < 9; ++i) {
    auto p = wv, m = wv;
    p[i] += eps, m[i] -= eps;
    fd[i] =
        (div_at(from_vector(p, {3, 3}, DType::f64)) - div_at(from_vector(m, {3, 3}, DType::f64))) /
        (2 * eps);
  }
  CHECK(max_abs_diff(dW, from_vector(fd, {3, 3}, DType::f64)) < 1e-7);
}
