// A custom op (caller-supplied VJP) differentiated several times: each backward pass calls the
// rule once, for its own cotangent, whatever addresses the pool hands out.
#include <catch2/catch.hpp>

#include "autodiff/ops/op_def.hpp"
#include "autodiff/sg.hpp"

using namespace sg;

namespace {
constexpr DType f64 = DType::f64;
double max_abs_diff(const Tensor& a, const Tensor& b) { return max(abs(a - b)).item(); }
}  // namespace

TEST_CASE("a custom op's VJP runs once per cotangent, never served from an earlier pass",
          "[custom][tape]") {
  struct Square : CustomRule {
    mutable int calls = 0;
    std::string name() const override { return "square"; }
    std::vector<Tensor> vjp(std::span<const Tensor> in, const Tensor&,
                            const Tensor& g) const override {
      ++calls;
      return {g * in[0] * 2.0, g * 0.0};
    }
  };
  auto rule = std::make_shared<Square>();
  const Tensor x = from_vector({0.3, -1.2, 2.0}, {3}, f64).requires_grad_();
  const Tensor other = from_vector({1.0, 1.0, 1.0}, {3}, f64).requires_grad_();
  const Tensor y = custom_op({x, other}, (x * x).detach(), rule);
  const Tensor dydx = x * 2.0;
  for (double c : {1.0, 2.0, -3.0, 0.5}) {  // the repro: c = 1 then c = 2
    const Tensor gx = grad(sum(sin(y) * c), {x})[0];
    CHECK(max_abs_diff(gx, cos(y) * c * dydx) < 1e-14);
  }
  rule->calls = 0;
  // one call of the rule serves both inputs of one backward pass
  const auto both = grad(sum(y * 3.0), {x, other});
  CHECK(rule->calls == 1);
  CHECK(max_abs_diff(both[0], dydx * 3.0) < 1e-14);
  // several cotangents, one backward pass each: each row gets its own
  const Fn f = [&](const Tensor& z) { return custom_op({z, other}, (z * z).detach(), rule); };
  const Tensor cots = eye(3, f64);
  for (int r = 0; r < 3; ++r) {
    const Tensor row = reshape(slice(cots, 0, r, r + 1), {3});
    CHECK(max_abs_diff(vjp(f, x.detach(), row).second, row * dydx) < 1e-14);
  }
}
