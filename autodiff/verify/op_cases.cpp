// The rows of the op test table. Adding a primitive adds a row here (the coverage test fails
// otherwise). Elementwise rows are checked to order 3, the rest to order 2.
#include "autodiff/verify/op_cases.hpp"

namespace sg::verify {
namespace {

using V = const std::vector<Tensor>&;

OpCase unary(OpId op, std::string name, Tensor (*fn)(const Tensor&), double lo = -2,
             double hi = 2) {
  return {op, std::move(name), {{3, 4}}, [fn](V x) { return fn(x[0]); }, lo, hi, 3};
}
OpCase binary(OpId op, std::string name, Tensor (*fn)(const Tensor&, const Tensor&), double lo = -2,
              double hi = 2) {
  // Broadcasting: [3,1,4] with [2,4] -> [3,2,4].
  return {op, std::move(name), {{3, 1, 4}, {2, 4}}, [fn](V x) { return fn(x[0], x[1]); }, lo, hi,
          3};
}
Tensor fixed_mask(const Shape& s) {
  Generator g(7);
  return rand(s, g, DType::f64) > 0.5;
}
Tensor fixed_index(std::vector<int64_t> v, const Shape& s) { return from_indices(v, s); }

std::vector<OpCase> build() {
  std::vector<OpCase> c;
  c.push_back(unary(OpId::neg, "neg", neg));
  c.push_back(unary(OpId::exp, "exp", exp));
  c.push_back(unary(OpId::log, "log", log, 0.5, 2));
  c.push_back(unary(OpId::log1p, "log1p", log1p, -0.5, 2));
  c.push_back(unary(OpId::expm1, "expm1", expm1));
  c.push_back(unary(OpId::sqrt, "sqrt", sqrt, 0.5, 2));
  c.push_back(unary(OpId::rsqrt, "rsqrt", rsqrt, 0.5, 2));
  c.push_back(unary(OpId::abs, "abs", abs));
  c.push_back(unary(OpId::sign, "sign", sign));
  c.push_back(unary(OpId::sin, "sin", sin));
  c.push_back(unary(OpId::cos, "cos", cos));
  c.push_back(unary(OpId::tanh, "tanh", tanh));
  c.push_back(unary(OpId::sigmoid, "sigmoid", sigmoid));
  c.push_back(unary(OpId::silu, "silu", silu, -4, 4));
  c.push_back(unary(OpId::silu_grad, "silu_grad", silu_grad, -4, 4));
  c.push_back(unary(OpId::silu_grad2, "silu_grad2", silu_grad2, -4, 4));
  c.push_back(unary(OpId::erf, "erf", erf));
  c.push_back(
      {OpId::pow_scalar, "pow(x, 2.5)", {{3, 4}}, [](V x) { return pow(x[0], 2.5); }, 0.5, 2, 3});
  c.push_back(
      {OpId::pow_scalar, "pow(x, 3)", {{3, 4}}, [](V x) { return pow(x[0], 3.0); }, -2, 2, 3});
  c.push_back(binary(OpId::add, "add", add));
  c.push_back(binary(OpId::sub, "sub", sub));
  c.push_back(binary(OpId::mul, "mul", mul));
  c.push_back(binary(OpId::div, "div", div, 0.5, 2));
  c.push_back(binary(OpId::pow, "pow", pow, 0.5, 2));
  c.push_back(binary(OpId::maximum, "maximum", maximum));
  c.push_back(binary(OpId::minimum, "minimum", minimum));
  c.push_back({OpId::compare,
               "compare",
               {{3, 4}, {4}},
               [](V x) { return cast(lt(x[0], x[1]), DType::f64); },
               -2,
               2,
               1,
               false});
  c.push_back({OpId::where, "where", {{3, 4}, {4}}, [](V x) {
                 return where(fixed_mask({3, 4}).to(x[0].device()), x[0] * x[0], sin(x[1]));
               }});
  c.push_back({OpId::sum, "sum(axis 1, keepdim)", {{3, 4, 5}}, [](V x) {
                 return square(sum(x[0], {1}, true));
               }});
  c.push_back({OpId::sum, "sum(all)", {{3, 4}}, [](V x) { return sum(x[0] * x[0]); }});
  c.push_back({OpId::max, "max(axes 0,2)", {{3, 4, 5}}, [](V x) {
                 return square(max(x[0], {0, 2}));
               }});
  c.push_back({OpId::min, "min(axis -1, keepdim)", {{3, 4}}, [](V x) {
                 return square(min(x[0], {-1}, true));
               }});
  c.push_back({OpId::matmul, "matmul", {{3, 4}, {4, 2}}, [](V x) { return matmul(x[0], x[1]); }});
  c.push_back({OpId::matmul, "matmul(broadcast batch)", {{2, 3, 4}, {4, 5}}, [](V x) {
                 return matmul(x[0], x[1]);
               }});
  c.push_back({OpId::matmul, "matmul(transposed, vector)", {{4, 3}, {4}}, [](V x) {
                 return tanh(matmul(x[0].mT(), x[1]));
               }});
  c.push_back({OpId::conv2d, "conv2d(3x3, padding 1)", {{2, 3, 5, 4}, {4, 3, 3, 3}}, [](V x) {
                 return conv2d(x[0], x[1], 1, 1);
               }});
  c.push_back({OpId::conv2d,
               "conv2d(2x3 kernel, stride 2, padding 1)",
               {{2, 2, 5, 6}, {3, 2, 2, 3}},
               [](V x) { return tanh(conv2d(x[0], x[1], 2, 1)); }});
  c.push_back({OpId::conv_transpose2d,
               "conv_transpose2d(stride 2, padding 1)",
               {{2, 3, 3, 3}, {3, 2, 3, 3}},
               [](V x) { return conv_transpose2d(x[0], x[1], 2, 1, 5, 6); }});
  c.push_back({OpId::conv2d_weight_grad,
               "conv2d_weight_grad(stride 2, padding 1)",
               {{2, 2, 5, 6}, {2, 3, 3, 3}},
               [](V x) { return conv2d_weight_grad(x[0], x[1], 3, 3, 2, 1); }});
  c.push_back({OpId::reshape, "reshape", {{3, 4}}, [](V x) {
                 return square(reshape(x[0], {2, 6}));
               }});
  c.push_back({OpId::permute, "permute", {{2, 3, 4}}, [](V x) {
                 return square(permute(x[0], {2, 0, 1}));
               }});
  c.push_back({OpId::expand, "expand", {{3, 1}}, [](V x) {
                 return square(expand(x[0], {2, 3, 4}));
               }});
  c.push_back(
      {OpId::slice, "slice(step 1)", {{5, 4}}, [](V x) { return square(slice(x[0], 0, 1, 4)); }});
  c.push_back({OpId::slice, "slice(step 2)", {{5, 4}}, [](V x) {
                 return square(slice(x[0], 1, 0, 4, 2));
               }});
  c.push_back({OpId::pad, "pad", {{2, 3}}, [](V x) {
                 return square(pad(x[0], {1, 0}, {2, 1}, 0.5));
               }});
  c.push_back({OpId::concat, "concat", {{2, 3}, {4, 3}}, [](V x) {
                 return square(concat({x[0], x[1]}, 0));
               }});
  c.push_back(
      {OpId::index_select, "index_select", {{4, 3}}, [](V x) {
         return square(index_select(x[0], 0, fixed_index({3, 0, 3, 1}, {4}).to(x[0].device())));
       }});
  c.push_back(
      {OpId::gather, "gather", {{3, 4}}, [](V x) {
         return square(gather(x[0], 1, fixed_index({0, 3, 3, 1, 2, 2}, {3, 2}).to(x[0].device())));
       }});
  c.push_back({OpId::scatter_add, "scatter_add", {{3, 4}, {3, 2}}, [](V x) {
                 return square(scatter_add(
                     x[0], 1, fixed_index({0, 3, 3, 3, 1, 2}, {3, 2}).to(x[0].device()), x[1]));
               }});
  c.push_back({OpId::cast, "cast", {{3, 4}}, [](V x) { return square(cast(x[0], DType::f64)); }});
  c.push_back({OpId::copy, "copy", {{3, 4}}, [](V x) { return square(x[0].mT().clone()); }});
  c.push_back({OpId::to_device, "to_device", {{3, 4}}, [](V x) {
                 return square(apply(OpId::to_device, {x[0]}, Attrs{.device = Device::cpu()}));
               }});
  c.push_back({OpId::custom,
               "custom (x^2 with its rule)",
               {{3, 4}},
               [](V x) {
                 struct Square : CustomRule {
                   std::string name() const override { return "square"; }
                   std::vector<Tensor> vjp(std::span<const Tensor> in, const Tensor&,
                                           const Tensor& g) const override {
                     return {g * in[0] * 2.0};
                   }
                 };
                 return custom_op({x[0]}, (x[0] * x[0]).detach(), std::make_shared<Square>());
               },
               -2,
               2,
               2,
               true,
               /*has_jvp=*/false});
  // Composites: every derivative order comes from their parts.
  const OpId comp = OpId::count;
  c.push_back({comp, "square", {{3, 4}}, [](V x) { return square(x[0]); }, -2, 2, 3});
  c.push_back({comp, "relu", {{3, 4}}, [](V x) { return relu(x[0]); }, -2, 2, 3});
  // The primitive against its composite definition, to third order.
  c.push_back({comp,
               "silu - x sigmoid(x)",
               {{3, 4}},
               [](V x) { return silu(x[0]) - x[0] * sigmoid(x[0]); },
               -3,
               3,
               3});
  c.push_back({comp, "softplus", {{3, 4}}, [](V x) { return softplus(x[0]); }, -3, 3, 3});
  c.push_back({comp, "log_sigmoid", {{3, 4}}, [](V x) { return log_sigmoid(x[0]); }, -3, 3, 3});
  c.push_back({comp, "elu", {{3, 4}}, [](V x) { return elu(x[0], 1.3); }, -2, 2, 3});
  c.push_back({comp, "gelu", {{3, 4}}, [](V x) { return gelu(x[0]); }, -2, 2, 3});
  c.push_back({comp, "gelu(tanh)", {{3, 4}}, [](V x) { return gelu(x[0], true); }, -2, 2, 3});
  c.push_back({comp, "clamp", {{3, 4}}, [](V x) { return square(clamp(x[0], -1, 1)); }});
  c.push_back({comp, "mean", {{3, 4}}, [](V x) { return square(mean(x[0], {0})); }});
  c.push_back({comp, "var", {{3, 4}}, [](V x) { return var(x[0], {1}); }});
  c.push_back({comp, "logsumexp", {{3, 4}}, [](V x) { return logsumexp(x[0], {1}); }});
  c.push_back({comp, "softmax", {{3, 4}}, [](V x) { return softmax(x[0], -1); }});
  c.push_back({comp, "log_softmax", {{3, 4}}, [](V x) { return log_softmax(x[0], 0); }});
  c.push_back({comp, "stack", {{2, 3}, {2, 3}}, [](V x) {
                 return square(stack({x[0], x[1]}, 1));
               }});
  c.push_back({comp, "select+transpose", {{3, 4, 2}}, [](V x) {
                 return square(select(transpose(x[0], 0, 2), 1, 1));
               }});
  c.push_back({comp, "sum_to", {{3, 4}}, [](V x) { return square(sum_to(x[0], {1, 4})); }});
  return c;
}

}  // namespace

const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> rows = build();
  return rows;
}

std::vector<Tensor> make_inputs(const OpCase& c, uint64_t seed) {
  Generator g(seed);
  std::vector<Tensor> xs;
  for (const Shape& s : c.shapes) xs.push_back(rand(s, g, DType::f64) * (c.hi - c.lo) + c.lo);
  return xs;
}

GradcheckReport check_op_case(const OpCase& c) {
  return gradcheck(
      c.f, make_inputs(c, 11),
      {.order = c.order, .atol = 1e-7, .rtol = 1e-5, .seed = 3, .check_jvp = c.has_jvp});
}

}  // namespace sg::verify
