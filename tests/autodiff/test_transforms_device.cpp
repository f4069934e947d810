// The function transforms and the verification helpers on the stand-in device (a distinct
// device running the CPU's kernels, refusing host reads and mixing with CPU tensors): every
// transform builds its basis vectors, probes and zeros on its input's device, so each result is
// on that device with bitwise the CPU's values, first order and differentiated again
// (create_graph) with respect to a parameter. A tangent, cotangent or direction on another
// device is a DeviceError naming the transform, both devices and the shapes.
#include <catch2/catch.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "autodiff/sg.hpp"
#include "tests/support/device.hpp"
#include "tests/support/expect.hpp"

using namespace sg;
using test::kStandin;
using test::same_on_both;

namespace {
constexpr DType f64 = DType::f64;
const Device kCpu = Device::cpu();

// The same problem on device d: x [B, D] (B = 2, D = 3), a parameter W [D, D], a field
// F(x) = tanh(x W) * x + sin(x) coupling a sample's coordinates, and a scalar f = sum(F * x).
struct Problem {
  Tensor x, W, v;
  Fn field, scalar_fn;
  explicit Problem(Device d) {
    Generator g(3);
    x = randn({2, 3}, g, f64).to(d);
    W = (randn({3, 3}, g, f64) * 0.7).to(d).requires_grad_();
    v = randn({2, 3}, g, f64).to(d);
    field = [W = W](const Tensor& z) { return tanh(matmul(z, W)) * z + sin(z); };
    scalar_fn = [F = field](const Tensor& z) { return sum(F(z) * z); };
  }
};

// A transform's value, and the gradient with respect to W of the sum of it (the transform
// recorded under create_graph, as a score-matching loss uses it).
std::vector<Tensor> with_param_grad(const Problem& p, const Tensor& value) {
  const Tensor gW = grad({sum(value)}, {p.W}, {}, {.allow_unused = true})[0];
  return {value.detach(), gW};
}
}  // namespace

TEST_CASE("device: grad, value_and_grad, vjp, jvp and hvp give the CPU's bits on their device",
          "[transforms][device][standin]") {
  same_on_both(
      [](Device d) {
        const Problem p(d);
        return with_param_grad(p, grad(p.scalar_fn, p.x));
      },
      "grad");
  same_on_both(
      [](Device d) {
        const Problem p(d);
        const auto [y, g] = value_and_grad(p.scalar_fn, p.x);
        return std::vector<Tensor>{y.detach(), g.detach(), grad_fn(p.scalar_fn)(p.x).detach()};
      },
      "value_and_grad");
  same_on_both(
      [](Device d) {
        const Problem p(d);
        const auto [y, g] = vjp(p.field, p.x, p.v);
        std::vector<Tensor> r = with_param_grad(p, g);
        r.push_back(y.detach());
        return r;
      },
      "vjp");
  same_on_both(
      [](Device d) {
        const Problem p(d);
        const auto [y, t] = jvp(p.field, p.x, p.v);
        return std::vector<Tensor>{y.detach(), t.detach()};
      },
      "jvp");
  same_on_both(
      [](Device d) {
        const Problem p(d);
        std::vector<Tensor> r = with_param_grad(p, hvp(p.scalar_fn, p.x, p.v));
        r.push_back(hvp(p.scalar_fn, p.x, p.v, HvpMode::reverse_over_reverse).detach());
        return r;
      },
      "hvp");
  // A function with no dependence on x: the zero gradient is on x's device too.
  same_on_both(
      [](Device d) {
        const Problem p(d);
        const Fn constant = [&](const Tensor&) { return sum(p.W); };
        return std::vector<Tensor>{
            grad(constant, p.x).detach(),
            vjp([](const Tensor& z) { return z.detach(); }, p.x, p.v).second.detach()};
      },
      "unused input");
}

TEST_CASE("device: jacobian (both modes) and hessian build their basis vectors on x's device",
          "[transforms][device][standin]") {
  same_on_both(
      [](Device d) {
        const Problem p(d);
        const Tensor Jr = jacobian(p.field, p.x, JacobianMode::reverse);
        const Tensor Jf = jacobian(p.field, p.x, JacobianMode::forward);
        CHECK(Jr.shape() == Shape({2, 3, 2, 3}));
        std::vector<Tensor> r = with_param_grad(p, Jr);
        r.push_back(Jf.detach());
        return r;
      },
      "jacobian");
  same_on_both(
      [](Device d) {
        const Problem p(d);
        const Tensor H = hessian(p.scalar_fn, p.x);
        CHECK(H.shape() == Shape({2, 3, 2, 3}));
        return with_param_grad(p, H);
      },
      "hessian");
  // A function whose output has another shape than its input ([2, 3] -> [3]).
  same_on_both(
      [](Device d) {
        const Problem p(d);
        const Fn colsum = [&](const Tensor& z) { return sum(tanh(matmul(z, p.W)), {0}); };
        return std::vector<Tensor>{jacobian(colsum, p.x).detach(),
                                   jacobian(colsum, p.x, JacobianMode::forward).detach()};
      },
      "jacobian [2,3] -> [3]");
}

TEST_CASE("device: divergence exact, chunked and Hutchinson (both probes) on x's device",
          "[transforms][device][standin][divergence]") {
  // Chunks of 2 over D = 3 coordinates leave a remainder chunk of 1.
  for (int chunk : {0, 1, 2, 3})
    same_on_both(
        [&](Device d) {
          const Problem p(d);
          return with_param_grad(p, divergence(p.field, p.x, Divergence::exact(chunk)));
        },
        "exact divergence, chunk " + std::to_string(chunk));
  for (bool gaussian : {false, true})
    same_on_both(
        [&](Device d) {
          const Problem p(d);
          Generator g(9);
          return with_param_grad(p,
                                 divergence(p.field, p.x, Divergence::hutchinson(g, 3, gaussian)));
        },
        std::string("Hutchinson ") + (gaussian ? "gaussian" : "rademacher"));
  // Exact and chunked agree on the device (the same trace; summed in another order).
  const Problem p(kStandin);
  const std::vector<double> a = divergence(p.field, p.x).to_vector(),
                            b = divergence(p.field, p.x, Divergence::exact(2)).to_vector();
  REQUIRE(a.size() == 2);
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i] == Approx(b[i]).epsilon(1e-12));
  // Images: [B, C, H, W] with D = C H W per sample.
  same_on_both(
      [](Device d) {
        Generator g(4);
        const Tensor x = randn({2, 2, 2, 2}, g, f64).to(d);
        const Fn f = [](const Tensor& z) { return tanh(z) * sum(z, {1, 2, 3}, true); };
        return std::vector<Tensor>{divergence(f, x).detach(),
                                   divergence(f, x, Divergence::exact(3)).detach()};
      },
      "divergence of images");
}

TEST_CASE("device: a tangent, cotangent or direction on another device is a clear DeviceError",
          "[transforms][device][standin][errors]") {
  const Problem p(kStandin);
  const Tensor host_v = ones({2, 3}, f64);
  auto expect_named = [](const std::string& msg, const char* op) {
    INFO(msg);
    CHECK(msg.find(op) != std::string::npos);
    CHECK(msg.find("standin:0") != std::string::npos);
    CHECK(msg.find("cpu") != std::string::npos);
    CHECK(msg.find("[2,3]") != std::string::npos);
  };
  expect_named(test::message_of<DeviceError>([&] { (void)jvp(p.field, p.x, host_v); }), "jvp");
  expect_named(test::message_of<DeviceError>([&] { (void)vjp(p.field, p.x, host_v); }), "vjp");
  expect_named(test::message_of<DeviceError>([&] { (void)hvp(p.scalar_fn, p.x, host_v); }), "hvp");
  expect_named(test::message_of<DeviceError>(
                   [&] { (void)hvp(p.scalar_fn, p.x, host_v, HvpMode::reverse_over_reverse); }),
               "hvp");
}

TEST_CASE("device: gradcheck and the statistical checks run on device tensors",
          "[transforms][device][standin][gradcheck][stats]") {
  // gradcheck draws its directions on the inputs' device: the same report as on the CPU.
  auto report = [](Device d) {
    const Problem p(d);
    const Tensor W = p.W.detach();
    return gradcheck(
        [W](const std::vector<Tensor>& v) { return tanh(matmul(v[0], W)) * v[1] + sin(v[0]); },
        {p.x, p.v}, {.order = 2});
  };
  const GradcheckReport rc = report(kCpu), rd = report(kStandin);
  std::ostringstream sc, sd;
  sc << rc;
  sd << rd;
  INFO(sd.str());
  CHECK(rd.ok());
  REQUIRE(rc.rows.size() == rd.rows.size());
  CHECK(rc.rows.size() == 8);  // 2 orders x 2 inputs x (vjp, jvp)
  for (std::size_t i = 0; i < rc.rows.size(); ++i) {
    CHECK(rc.rows[i].analytic == rd.rows[i].analytic);
    CHECK(rc.rows[i].numeric == rd.rows[i].numeric);
  }
  CHECK(sc.str() == sd.str());
  // An estimator on the device: Hutchinson's trace of the field's Jacobian, against the exact
  // divergence (a device tensor as the reference).
  auto mean_check = [](Device d) {
    const Problem p(d);
    const Tensor exact = divergence(p.field, p.x).detach();
    return mean_equals(
        [&](Generator& g) { return divergence(p.field, p.x, Divergence::hutchinson(g)).detach(); },
        exact, {.samples = 400, .sigmas = 5});
  };
  const MeanCheck mc = mean_check(kCpu), md = mean_check(kStandin);
  INFO(md);
  CHECK(md.pass);
  REQUIRE(mc.per_element.size() == md.per_element.size());
  for (std::size_t i = 0; i < mc.per_element.size(); ++i) {
    CHECK(mc.per_element[i].estimate == md.per_element[i].estimate);
    CHECK(mc.per_element[i].std_error == md.per_element[i].std_error);
  }
  // Paired: Rademacher against Gaussian probes on common random numbers.
  auto paired = [](Device d) {
    const Problem p(d);
    return paired_compare(
        [&](Generator& g) { return divergence(p.field, p.x, Divergence::hutchinson(g)).detach(); },
        [&](Generator& g) {
          return divergence(p.field, p.x, Divergence::hutchinson(g, 1, true)).detach();
        },
        {.samples = 400});
  };
  const PairedCheck pc = paired(kCpu), pd = paired(kStandin);
  CHECK(pc.var_a == pd.var_a);
  CHECK(pc.var_b == pd.var_b);
  CHECK(pc.difference.estimate == pd.difference.estimate);
  // Variances of the device estimator against a reference given as a number.
  const MeanCheck vc = variance_equals([](Generator& g) { return randn({1}, g, f64, kStandin); },
                                       1.0, {.samples = 400});
  INFO(vc);
  CHECK(vc.pass);
}
