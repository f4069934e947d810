// Bad input raises the typed error (ShapeError, DTypeError, ValueError, GradError,
// AnomalyError) with a message naming the op and the offending shapes or dtypes.
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "autodiff/sg.hpp"

using namespace sg;
using Catch::Contains;

TEST_CASE("shape mismatches raise ShapeError naming the op and shapes", "[errors]") {
  const Tensor a = zeros({4, 3}), b = zeros({3, 5});
  CHECK_THROWS_AS(add(a, b), ShapeError);
  CHECK_THROWS_WITH(add(a, b), Contains("add") && Contains("[4,3]") && Contains("[3,5]"));
  CHECK_THROWS_WITH(a + b, Contains("add") && Contains("[4,3]") && Contains("[3,5]"));
  CHECK_THROWS_WITH(a * b, Contains("mul") && Contains("[4,3]") && Contains("[3,5]"));
  CHECK_THROWS_AS(where(a > 0.0, a, b), ShapeError);
  CHECK_THROWS_WITH(where(a > 0.0, a, b), Contains("where"));

  CHECK_THROWS_AS(matmul(zeros({2, 3}), zeros({4, 5})), ShapeError);
  CHECK_THROWS_WITH(matmul(zeros({2, 3}), zeros({4, 5})),
                    "matmul: lhs [2,3] and rhs [4,5]: lhs.dim(1) must equal rhs.dim(0)");
  CHECK_THROWS_AS(matmul(zeros({2, 2, 3}), zeros({3, 2, 4})), ShapeError);  // batch 2 vs 3
  CHECK_THROWS_WITH(matmul(zeros({2, 2, 3}), zeros({3, 2, 4})), Contains("matmul"));
  CHECK_THROWS_AS(matmul(zeros({3}), zeros({4})), ShapeError);
  CHECK_THROWS_AS(matmul(scalar(1.0), zeros({4})), ShapeError);

  CHECK_THROWS_AS(reshape(zeros({2, 3}), {4, 2}), ShapeError);
  CHECK_THROWS_WITH(reshape(zeros({2, 3}), {4, 2}),
                    Contains("reshape") && Contains("[2,3]") && Contains("[4,2]"));
  CHECK_THROWS_AS(reshape(zeros({2, 3}), {-1, 4}), ShapeError);
  CHECK_THROWS_AS(reshape(zeros({2, 3}), {-1, -1}), ShapeError);

  CHECK_THROWS_AS(permute(zeros({2, 3, 4}), {0, 0, 1}), ShapeError);
  CHECK_THROWS_WITH(permute(zeros({2, 3, 4}), {0, 0, 1}),
                    Contains("permute") && Contains("[0,0,1]"));
  CHECK_THROWS_AS(permute(zeros({2, 3, 4}), {0, 1}), ShapeError);
  CHECK_THROWS_WITH(permute(zeros({2, 3, 4}), {0, 1}), Contains("permute"));
  CHECK_THROWS_AS(permute(zeros({2, 3, 4}), {0, 1, 3}), ShapeError);

  CHECK_THROWS_AS(expand(zeros({2, 3}), {4, 3}), ShapeError);
  CHECK_THROWS_WITH(expand(zeros({2, 3}), {4, 3}), Contains("expand") && Contains("[4,3]"));
  CHECK_THROWS_AS(squeeze(zeros({2, 3}), 0), ShapeError);
  CHECK_THROWS_WITH(squeeze(zeros({2, 3}), 0), Contains("squeeze"));
  CHECK_THROWS_AS(transpose(zeros({2, 3}), 0, 2), ShapeError);
  CHECK_THROWS_AS(sum(zeros({2, 3}), {2}), ShapeError);
  CHECK_THROWS_WITH(sum(zeros({2, 3}), {2}), Contains("sum"));
  CHECK_THROWS_AS(sum(zeros({2, 3}), {1, -1}), ShapeError);  // repeated axis
  CHECK_THROWS_AS(max(zeros({2, 0}), {1}), ShapeError);      // empty max
  CHECK_THROWS_AS(select(zeros({2, 3}), 1, 3), ShapeError);
  CHECK_THROWS_WITH(select(zeros({2, 3}), 1, 3), Contains("select"));
  CHECK_THROWS_AS(concat({zeros({2, 3}), zeros({2, 4})}, 0), ShapeError);
  CHECK_THROWS_WITH(concat({zeros({2, 3}), zeros({2, 4})}, 0),
                    Contains("concat") && Contains("[2,3]") && Contains("[2,4]"));
  CHECK_THROWS_AS(pad(zeros({2, 3}), {1}, {1}), ShapeError);
  CHECK_THROWS_AS(pad(zeros({2, 3}), {0, -1}, {0, 0}), ShapeError);
  CHECK_THROWS_AS(from_vector({1, 2, 3}, {2, 2}), ShapeError);
  CHECK_THROWS_WITH(from_vector({1, 2, 3}, {2, 2}), Contains("from_vector") && Contains("[2,2]"));
  CHECK_THROWS_AS(zeros({2, 3}).item(), ShapeError);
  CHECK_THROWS_AS(index_select(zeros({3, 4}), 0, from_indices({0, 1, 0, 1}, {2, 2})), ShapeError);
  CHECK_THROWS_AS(gather(zeros({3, 4}), 1, from_indices({0, 1, 2, 3, 0, 1, 2, 3}, {4, 2})),
                  ShapeError);
}

TEST_CASE("dtype mistakes raise DTypeError naming both dtypes", "[errors]") {
  const Tensor a = zeros({2, 3}, DType::f32), b = zeros({2, 3}, DType::f64);
  CHECK_THROWS_AS(a + b, DTypeError);
  CHECK_THROWS_WITH(a + b, Contains("add") && Contains("float32") && Contains("float64"));
  CHECK_THROWS_WITH(b - a, Contains("sub") && Contains("float64") && Contains("float32"));
  CHECK_THROWS_AS(matmul(zeros({2, 3}, DType::f32), zeros({3, 2}, DType::f64)), DTypeError);
  CHECK_THROWS_WITH(matmul(zeros({2, 3}, DType::f32), zeros({3, 2}, DType::f64)),
                    Contains("matmul") && Contains("float32") && Contains("float64"));
  CHECK_THROWS_AS(concat({a, b}, 0), DTypeError);

  const Tensor i = from_indices({1, 2, 3}, {3});
  CHECK_THROWS_AS(exp(i), DTypeError);
  CHECK_THROWS_WITH(exp(i), Contains("exp") && Contains("int64"));
  CHECK_THROWS_AS(log(i), DTypeError);
  CHECK_THROWS_AS(sigmoid(i), DTypeError);
  CHECK_THROWS_AS(pow(i, 2.0), DTypeError);
  CHECK_THROWS_AS(mean(i), DTypeError);
  CHECK_THROWS_WITH(mean(i), Contains("mean") && Contains("int64"));
  CHECK_THROWS_AS(matmul(from_indices({1, 2, 3, 4}, {2, 2}), from_indices({1, 2, 3, 4}, {2, 2})),
                  DTypeError);
  CHECK_THROWS_AS(i + zeros({3}), DTypeError);
  CHECK_THROWS_AS(where(zeros({3}), zeros({3}), zeros({3})), DTypeError);  // float condition
  CHECK_THROWS_WITH(where(zeros({3}), zeros({3}), zeros({3})),
                    Contains("where") && Contains("bool"));
  CHECK_THROWS_AS(gather(zeros({3, 4}), 1, zeros({3, 1})), DTypeError);  // float index
  CHECK_THROWS_WITH(gather(zeros({3, 4}), 1, zeros({3, 1})),
                    Contains("gather") && Contains("int64"));
  CHECK_THROWS_AS(one_hot(zeros({3}), 4), DTypeError);
  Generator gen(1);
  CHECK_THROWS_AS(randn({3}, gen, DType::i64), DTypeError);
  Tensor k = from_indices({1}, {1});
  CHECK_THROWS_AS(k.requires_grad_(), DTypeError);
  CHECK_THROWS_AS(zeros({2}).data<double>(), DTypeError);
  CHECK_THROWS_WITH(zeros({2}).data<double>(), Contains("float64") && Contains("float32"));
}

TEST_CASE("bad values raise ValueError", "[errors]") {
  const Tensor x = from_vector({0, 1, 2, 3, 4, 5}, {2, 3}, DType::f64);
  CHECK_THROWS_AS(gather(x, 1, from_indices({0, 3}, {2, 1})), ValueError);
  CHECK_THROWS_WITH(gather(x, 1, from_indices({0, 3}, {2, 1})),
                    Contains("gather") && Contains("3"));
  CHECK_THROWS_AS(gather(x, 0, from_indices({-1, 0, 0}, {1, 3})), ValueError);
  CHECK_THROWS_AS(index_select(x, 1, from_indices({0, 5}, {2})), ValueError);
  CHECK_THROWS_AS(scatter_add(x, 1, from_indices({0, 9}, {2, 1}), zeros({2, 1}, DType::f64)),
                  ValueError);
  CHECK_THROWS_WITH(scatter_add(x, 1, from_indices({0, 9}, {2, 1}), zeros({2, 1}, DType::f64)),
                    Contains("scatter_add"));

  CHECK_THROWS_AS(one_hot(from_indices({0, 4}, {2}), 4), ValueError);
  CHECK_THROWS_WITH(one_hot(from_indices({0, 4}, {2}), 4), Contains("one_hot"));
  CHECK_THROWS_AS(one_hot(from_indices({-1}, {1}), 4), ValueError);
  CHECK_THROWS_AS(one_hot(from_indices({0}, {1}), 0), ValueError);

  CHECK_THROWS_AS(slice(x, 1, 0, 3, 0), ValueError);
  CHECK_THROWS_WITH(slice(x, 1, 0, 3, 0), Contains("slice") && Contains("step"));
  CHECK_THROWS_AS(slice(x, 1, 0, 3, -1), ValueError);

  Generator g(1);
  CHECK_THROWS_AS(bernoulli({3}, 1.5, g), ValueError);
  CHECK_THROWS_WITH(bernoulli({3}, -0.1, g), Contains("bernoulli"));
  CHECK_THROWS_AS(bernoulli({3}, NAN, g), ValueError);
  CHECK_THROWS_AS(clamp(x, 1.0, 0.0), ValueError);
  CHECK_THROWS_AS(var(from_vector({1}, {1}, DType::f64)), ValueError);
  CHECK_THROWS_AS(arange(0.0, 1.0, 0.0), ValueError);
  CHECK_THROWS_AS(linspace(0, 1, -1), ValueError);
  CHECK_THROWS_AS(concat({}, 0), ValueError);
  CHECK_THROWS_AS(stack({}, 0), ValueError);
  CHECK_THROWS_AS(add(x, Tensor()), ValueError);  // undefined operand
}

TEST_CASE("autodiff misuse raises GradError", "[errors][grad]") {
  Generator g(3);
  Tensor x = randn({3, 2}, g, DType::f64).requires_grad_();
  Tensor z = randn({2}, g, DType::f64).requires_grad_();
  const Tensor y = x * 2.0;  // non-scalar

  // backward/grad of a non-scalar output without a cotangent.
  CHECK_THROWS_AS(backward(y), GradError);
  CHECK_THROWS_WITH(backward(y), Contains("scalar") && Contains("[3,2]"));
  CHECK_THROWS_AS(grad(y, {x}), GradError);
  CHECK_THROWS_WITH(grad(y, {x}), Contains("scalar"));
  // ... but with a matching cotangent it works, and a mismatched one is rejected.
  CHECK_NOTHROW(grad(std::vector<Tensor>{y}, {x}, {ones({3, 2}, DType::f64)}));
  CHECK_THROWS_AS(grad(std::vector<Tensor>{y}, {x}, {ones({2, 3}, DType::f64)}), GradError);
  CHECK_THROWS_AS(grad(std::vector<Tensor>{y}, {x}, {ones({3, 2}, DType::f32)}), GradError);

  // grad with respect to a tracked tensor that is not on the path.
  const Tensor l = sum(y);
  CHECK_THROWS_AS(grad(l, {z}), GradError);
  CHECK_THROWS_WITH(grad(l, {z}), Contains("not on the path"));
  CHECK_THROWS_WITH(grad(l, {x, z}), Contains("input 1"));
  // allow_unused gives zeros instead.
  const std::vector<Tensor> gz = grad(l, {z}, {.allow_unused = true});
  CHECK(gz[0].to_vector() == std::vector<double>{0, 0});

  // grad with respect to a tensor that does not require grad.
  const Tensor c = randn({3, 2}, g, DType::f64);
  const Tensor lc = sum(x * c);
  CHECK_THROWS_AS(grad(lc, {c}), GradError);
  CHECK_THROWS_WITH(grad(lc, {c}), Contains("does not require grad"));

  // An output that depends on nothing tracked.
  CHECK_THROWS_AS(grad(sum(c), {x}), GradError);
  CHECK_THROWS_AS(backward(sum(c)), GradError);
  // requires_grad_ on a computed (non-leaf) tensor.
  Tensor computed = x * 3.0;
  CHECK_THROWS_AS(computed.requires_grad_(), GradError);
}

TEST_CASE("anomaly mode names the op that produced NaN or Inf", "[errors][anomaly]") {
  const Tensor neg = from_vector({1.0, -1.0, 2.0}, {3}, DType::f64);
  // Off: NaN flows silently.
  {
    Tensor y;
    CHECK_NOTHROW(y = log(neg));
    CHECK(std::isnan(y.to_vector()[1]));
  }
  // On: the forward op that produced NaN is named.
  {
    AnomalyGuard guard;
    CHECK_THROWS_AS(log(neg), AnomalyError);
    CHECK_THROWS_WITH(log(neg), Contains("log") && Contains("NaN"));
    CHECK_THROWS_WITH(log(neg), Contains("float64[3]"));
    CHECK_THROWS_WITH(sqrt(neg), Contains("sqrt") && Contains("NaN"));
    CHECK_THROWS_WITH(zeros({2}, DType::f64) / zeros({2}, DType::f64),
                      Contains("div") && Contains("NaN"));
    CHECK_THROWS_WITH(exp(from_vector({1000.0}, {1}, DType::f64)),
                      Contains("exp") && Contains("Inf"));
    CHECK_NOTHROW(log(from_vector({1.0, 2.0}, {2}, DType::f64)));
  }
  // The guard restores the previous mode.
  CHECK_NOTHROW(log(neg));
  {
    AnomalyGuard on;
    {
      AnomalyGuard off(false);
      CHECK_NOTHROW(log(neg));
    }
    CHECK_THROWS_AS(log(neg), AnomalyError);
  }

  // In backward: sqrt at 0 has an infinite derivative; the message names the backward pass.
  {
    Tensor x = zeros({3}, DType::f64).requires_grad_();
    const Tensor y = sum(sqrt(x));  // forward is finite: sqrt(0) = 0
    AnomalyGuard guard;
    CHECK_THROWS_AS(backward(y), AnomalyError);
    CHECK_THROWS_WITH(backward(y), Contains("backward"));
    CHECK_THROWS_WITH(backward(y), Contains("sqrt") && Contains("Inf"));
    CHECK_THROWS_AS(grad(y, {x}), AnomalyError);
    CHECK_THROWS_WITH(grad(y, {x}), Contains("backward") && Contains("sqrt"));
  }
  // Without anomaly mode the same backward silently gives Inf.
  {
    Tensor x = zeros({3}, DType::f64).requires_grad_();
    const std::vector<Tensor> gx = grad(sum(sqrt(x)), {x});
    CHECK(gx[0].to_vector() == std::vector<double>(3, INFINITY));
  }
}
