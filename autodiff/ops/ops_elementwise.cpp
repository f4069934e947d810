// Op table, elementwise family: unary math, binary arithmetic with broadcasting, comparisons
// and where. Each row: shape rule, forward, VJP, JVP; the math of each rule is on its line.
#include <cmath>

#include "autodiff/ops/op_table.hpp"
#include "autodiff/tape/autograd.hpp"

namespace sg {
namespace {

Meta unary_shape(std::span<const Tensor> in, const Attrs&, const char* op, bool integers) {
  if (!integers) check_floating(op, in[0]);
  if (in[0].dtype() == DType::b8)
    fail<DTypeError>(op, ": bool tensors are not numbers (", describe(in[0]), ")");
  return {in[0].shape(), in[0].dtype(), in[0].device()};
}
template <UnaryOp K>
Meta unary_rule(std::span<const Tensor> in, const Attrs& a) {
  return unary_shape(in, a, op_def(op_id(K)).name, unary_takes_integers(K));
}
template <UnaryOp K>
Tensor unary_fwd(std::span<const Tensor> in, const Attrs& a, const Meta& m) {
  Tensor out = fresh(m);
  if (out.numel()) backend_of(out).unary(K, a.scalar, kview(in[0]), kview(out));
  return out;
}

Meta binary_rule(std::span<const Tensor> in, const Attrs& a, const char* op, bool compare) {
  check_same_device(op, in);
  check_same_dtype(op, in);
  if (in[0].dtype() == DType::b8)
    fail<DTypeError>(op, ": bool tensors are not numbers (", describe(in[0]), ")");
  return {broadcast_shapes(in[0].shape(), in[1].shape(), op), compare ? DType::b8 : in[0].dtype(),
          in[0].device()};
}
template <BinaryOp K>
Meta binary_shape(std::span<const Tensor> in, const Attrs& a) {
  if (K == BinaryOp::pow) check_floating("pow", in[0]);
  return binary_rule(in, a, op_def(op_id(K)).name, false);
}
Tensor binary_run(BinaryOp k, std::span<const Tensor> in, const Meta& m) {
  Tensor out = fresh(m);
  if (out.numel())
    backend_of(out).binary(k, kview_broadcast(in[0], m.shape), kview_broadcast(in[1], m.shape),
                           kview(out));
  return out;
}
template <BinaryOp K>
Tensor binary_fwd(std::span<const Tensor> in, const Attrs&, const Meta& m) {
  if (K == BinaryOp::div && !is_floating(m.dtype)) {
    // Integer division by zero has no value (and traps in hardware): refused before the kernel.
    NoGradGuard off;
    const int64_t zeros = static_cast<int64_t>(sum(eq(in[1], zeros_like(in[1]))).item());
    if (zeros > 0)
      fail<ValueError>("div: integer division by zero (", zeros, " zero elements in the divisor ",
                       describe(in[1]), ")");
  }
  return binary_run(K, in, m);
}

// Share of the gradient that maximum/minimum send to `a`: 1 where a wins, 1/2 at ties
// (convention), and 1 where a is NaN (the NaN is the value that propagates; b takes it if
// only b is NaN). Built from comparisons: no derivative flows through the weight.
Tensor winner_weight(const Tensor& a, const Tensor& b, bool max) {
  const Tensor wins = max ? gt(a, b) : lt(a, b);
  const Tensor w = where(wins, ones_like(a), where(eq(a, b), full_like(a, 0.5), zeros_like(a)));
  return where(ne(a, a), ones_like(w), where(ne(b, b), zeros_like(w), w));
}

// silu'''(x) = u ((1 - 2 s)(3 + x (1 - 2 s)) - 2 x u), s = sigma(x), u = s (1 - s); x u is
// formed before doubling so that float32 x near its maximum does not overflow into inf * 0.
Tensor silu_grad3(const RuleCtx& c) {
  const Tensor &x = c.in[0], s = sigmoid(x), u = s * (1.0 - s), a = 1.0 - 2.0 * s;
  return u * (a * (3.0 + x * a) - (x * u) * 2.0);
}

// erf'(x) = 2/sqrt(pi) e^(-x^2), with x held at +-64 beyond |x| = 64 (where e^(-x^2) is 0 in
// any precision): the same values, and the derivatives of e^(-x^2) stay 0 instead of
// 0 * inf = NaN at x = +-inf.
Tensor erf_grad(const RuleCtx& c) {
  const Tensor& x = c.in[0];
  const Tensor xs = where(abs(x) > 64.0, full_like(x, 64.0), x);
  return exp(-(xs * xs)) * (2.0 / std::sqrt(M_PI));
}

// a^b. Conventions at a = 0, where a^b is not differentiable in b: log(a) := 0 in d/db, and
// d/da := 0 at a = b = 0 (a^0 = 1 for every a). Each masked branch is evaluated at a = 1,
// never at the singular point, so that its inf or NaN reaches no derivative of any order
// (the "double where"); off a = 0 the rules are the plain formulas.
Tensor pow_da(const RuleCtx& c) {  // b a^(b-1)
  const Tensor &a = c.in[0], &b = c.in[1];
  const Tensor ok = ne(where(eq(b, zeros_like(b)), a, 1.0), zeros_like(a));  // not a = b = 0
  const Tensor as = where(ok, a, 1.0);
  return where(ok, b * pow(as, b - 1.0), 0.0);
}
Tensor pow_db(const RuleCtx& c) {  // log(a) a^b
  const Tensor &a = c.in[0], &b = c.in[1];
  const Tensor ok = ne(a, zeros_like(a));
  const Tensor as = where(ok, a, 1.0);
  return where(ok, log(as) * pow(as, b), 0.0);
}

const OpDef kOps[] = {
    // -x:  d = -dx
    {OpId::neg, "neg", 1, unary_rule<UnaryOp::neg>, unary_fwd<UnaryOp::neg>,
     [](const RuleCtx&, int, const Tensor& g) { return -g; },
     [](const RuleCtx&, int, const Tensor& t) { return -t; }},
    // e^x:  d = e^x dx
    {OpId::exp, "exp", 1, unary_rule<UnaryOp::exp>, unary_fwd<UnaryOp::exp>,
     diag_rule<+[](const RuleCtx& c) { return c.out; }>,
     diag_rule<+[](const RuleCtx& c) { return c.out; }>},
    // log x:  d = dx / x
    {OpId::log, "log", 1, unary_rule<UnaryOp::log>, unary_fwd<UnaryOp::log>,
     [](const RuleCtx& c, int, const Tensor& g) { return g / c.in[0]; },
     [](const RuleCtx& c, int, const Tensor& t) { return t / c.in[0]; }},
    // log(1 + x):  d = dx / (1 + x)
    {OpId::log1p, "log1p", 1, unary_rule<UnaryOp::log1p>, unary_fwd<UnaryOp::log1p>,
     [](const RuleCtx& c, int, const Tensor& g) { return g / (c.in[0] + 1.0); },
     [](const RuleCtx& c, int, const Tensor& t) { return t / (c.in[0] + 1.0); }},
    // e^x - 1:  d = (y + 1) dx
    {OpId::expm1, "expm1", 1, unary_rule<UnaryOp::expm1>, unary_fwd<UnaryOp::expm1>,
     diag_rule<+[](const RuleCtx& c) { return c.out + 1.0; }>,
     diag_rule<+[](const RuleCtx& c) { return c.out + 1.0; }>},
    // sqrt x:  d = dx / (2 y)
    {OpId::sqrt, "sqrt", 1, unary_rule<UnaryOp::sqrt>, unary_fwd<UnaryOp::sqrt>,
     [](const RuleCtx& c, int, const Tensor& g) { return g / (c.out * 2.0); },
     [](const RuleCtx& c, int, const Tensor& t) { return t / (c.out * 2.0); }},
    // x^(-1/2):  d = -y^3 / 2 dx
    {OpId::rsqrt, "rsqrt", 1, unary_rule<UnaryOp::rsqrt>, unary_fwd<UnaryOp::rsqrt>,
     diag_rule<+[](const RuleCtx& c) { return c.out * c.out * c.out * -0.5; }>,
     diag_rule<+[](const RuleCtx& c) { return c.out * c.out * c.out * -0.5; }>},
    // |x|:  d = sign(x) dx   (abs'(0) = sign(0) = 0, convention)
    {OpId::abs, "abs", 1, unary_rule<UnaryOp::abs>, unary_fwd<UnaryOp::abs>,
     diag_rule<+[](const RuleCtx& c) { return sign(c.in[0]); }>,
     diag_rule<+[](const RuleCtx& c) { return sign(c.in[0]); }>},
    // sign x:  d = 0 (almost everywhere)
    {OpId::sign, "sign", 1, unary_rule<UnaryOp::sign>, unary_fwd<UnaryOp::sign>,
     [](const RuleCtx& c, int, const Tensor&) { return zeros_like(c.in[0]); },
     [](const RuleCtx& c, int, const Tensor&) { return zeros_like(c.out); }},
    // sin x:  d = cos(x) dx
    {OpId::sin, "sin", 1, unary_rule<UnaryOp::sin>, unary_fwd<UnaryOp::sin>,
     diag_rule<+[](const RuleCtx& c) { return cos(c.in[0]); }>,
     diag_rule<+[](const RuleCtx& c) { return cos(c.in[0]); }>},
    // cos x:  d = -sin(x) dx
    {OpId::cos, "cos", 1, unary_rule<UnaryOp::cos>, unary_fwd<UnaryOp::cos>,
     diag_rule<+[](const RuleCtx& c) { return -sin(c.in[0]); }>,
     diag_rule<+[](const RuleCtx& c) { return -sin(c.in[0]); }>},
    // tanh x:  d = (1 - y^2) dx
    {OpId::tanh, "tanh", 1, unary_rule<UnaryOp::tanh>, unary_fwd<UnaryOp::tanh>,
     diag_rule<+[](const RuleCtx& c) { return 1.0 - c.out * c.out; }>,
     diag_rule<+[](const RuleCtx& c) { return 1.0 - c.out * c.out; }>},
    // sigma(x):  d = y (1 - y) dx
    {OpId::sigmoid, "sigmoid", 1, unary_rule<UnaryOp::sigmoid>, unary_fwd<UnaryOp::sigmoid>,
     diag_rule<+[](const RuleCtx& c) { return c.out * (1.0 - c.out); }>,
     diag_rule<+[](const RuleCtx& c) { return c.out * (1.0 - c.out); }>},
    // erf x:  d = 2/sqrt(pi) e^(-x^2) dx
    {OpId::erf, "erf", 1, unary_rule<UnaryOp::erf>, unary_fwd<UnaryOp::erf>, diag_rule<erf_grad>,
     diag_rule<erf_grad>},
    // silu(x) = x sigma(x):  d = silu'(x) dx, silu' itself a one-pass primitive
    {OpId::silu, "silu", 1, unary_rule<UnaryOp::silu>, unary_fwd<UnaryOp::silu>,
     diag_rule<+[](const RuleCtx& c) { return silu_grad(c.in[0]); }>,
     diag_rule<+[](const RuleCtx& c) { return silu_grad(c.in[0]); }>},
    // silu'(x) = s (1 + x (1 - s)), s = sigma(x):  d = silu''(x) dx, also a one-pass primitive
    {OpId::silu_grad, "silu_grad", 1, unary_rule<UnaryOp::silu_grad>, unary_fwd<UnaryOp::silu_grad>,
     diag_rule<+[](const RuleCtx& c) { return silu_grad2(c.in[0]); }>,
     diag_rule<+[](const RuleCtx& c) { return silu_grad2(c.in[0]); }>},
    // silu''(x) = u (2 + x (1 - 2 s)), u = s (1 - s):  d = u ((1 - 2 s)(3 + x (1 - 2 s)) - 2 x u)
    // dx
    {OpId::silu_grad2, "silu_grad2", 1, unary_rule<UnaryOp::silu_grad2>,
     unary_fwd<UnaryOp::silu_grad2>, diag_rule<silu_grad3>, diag_rule<silu_grad3>},
    // x^p (constant p = attrs.scalar):  d = p x^(p-1) dx
    {OpId::pow_scalar, "pow", 1, unary_rule<UnaryOp::pow_scalar>, unary_fwd<UnaryOp::pow_scalar>,
     diag_rule<+[](const RuleCtx& c) {
       const double p = c.attrs.scalar;
       return p == 0 ? zeros_like(c.out) : p == 1 ? ones_like(c.out) : pow(c.in[0], p - 1) * p;
     }>,
     diag_rule<+[](const RuleCtx& c) {
       const double p = c.attrs.scalar;
       return p == 0 ? zeros_like(c.out) : p == 1 ? ones_like(c.out) : pow(c.in[0], p - 1) * p;
     }>},
    // a + b:  d = da + db
    {OpId::add, "add", 2, binary_shape<BinaryOp::add>, binary_fwd<BinaryOp::add>,
     [](const RuleCtx&, int, const Tensor& g) { return g; },
     [](const RuleCtx&, int, const Tensor& t) { return t; }},
    // a - b:  d = da - db
    {OpId::sub, "sub", 2, binary_shape<BinaryOp::sub>, binary_fwd<BinaryOp::sub>,
     [](const RuleCtx&, int i, const Tensor& g) { return i == 0 ? g : -g; },
     [](const RuleCtx&, int i, const Tensor& t) { return i == 0 ? t : -t; }},
    // a b:  d = b da + a db
    {OpId::mul, "mul", 2, binary_shape<BinaryOp::mul>, binary_fwd<BinaryOp::mul>,
     [](const RuleCtx& c, int i, const Tensor& g) { return g * c.in[1 - i]; },
     [](const RuleCtx& c, int i, const Tensor& t) { return i == 0 ? t * c.in[1] : c.in[0] * t; }},
    // a / b:  d = da / b - y db / b
    {OpId::div, "div", 2, binary_shape<BinaryOp::div>, binary_fwd<BinaryOp::div>,
     [](const RuleCtx& c, int i, const Tensor& g) {
       return i == 0 ? g / c.in[1] : -(g * c.out) / c.in[1];
     },
     [](const RuleCtx& c, int i, const Tensor& t) {
       return i == 0 ? t / c.in[1] : -(t * c.out) / c.in[1];
     }},
    // a^b:  d = b a^(b-1) da + log(a) a^b db   (conventions at a = 0: pow_da, pow_db)
    {OpId::pow, "pow", 2, binary_shape<BinaryOp::pow>, binary_fwd<BinaryOp::pow>,
     [](const RuleCtx& c, int i, const Tensor& g) { return g * (i == 0 ? pow_da(c) : pow_db(c)); },
     [](const RuleCtx& c, int i, const Tensor& t) { return t * (i == 0 ? pow_da(c) : pow_db(c)); }},
    // max(a, b):  d = w da + (1 - w) db, w = [a > b] + [a = b]/2 (ties split: convention)
    {OpId::maximum, "maximum", 2, binary_shape<BinaryOp::maximum>, binary_fwd<BinaryOp::maximum>,
     [](const RuleCtx& c, int i, const Tensor& g) {
       const Tensor w = winner_weight(c.in[0], c.in[1], true);
       return i == 0 ? g * w : g * (1.0 - w);
     },
     [](const RuleCtx& c, int i, const Tensor& t) {
       const Tensor w = winner_weight(c.in[0], c.in[1], true);
       return i == 0 ? t * w : t * (1.0 - w);
     }},
    // min(a, b):  d = w da + (1 - w) db, w = [a < b] + [a = b]/2
    {OpId::minimum, "minimum", 2, binary_shape<BinaryOp::minimum>, binary_fwd<BinaryOp::minimum>,
     [](const RuleCtx& c, int i, const Tensor& g) {
       const Tensor w = winner_weight(c.in[0], c.in[1], false);
       return i == 0 ? g * w : g * (1.0 - w);
     },
     [](const RuleCtx& c, int i, const Tensor& t) {
       const Tensor w = winner_weight(c.in[0], c.in[1], false);
       return i == 0 ? t * w : t * (1.0 - w);
     }},
    // a <op> b (attrs.kind = BinaryOp): boolean, not differentiable
    {OpId::compare, "compare", 2,
     [](std::span<const Tensor> in, const Attrs& a) { return binary_rule(in, a, "compare", true); },
     [](std::span<const Tensor> in, const Attrs& a, const Meta& m) {
       return binary_run(static_cast<BinaryOp>(a.kind), in, m);
     },
     nullptr, nullptr},
    // where(c, a, b):  d = [c] da + [not c] db
    {OpId::where, "where", 3,
     [](std::span<const Tensor> in, const Attrs&) {
       check_same_device("where", in);
       if (in[0].dtype() != DType::b8)
         fail<DTypeError>("where: condition must be bool, got ", describe(in[0]));
       check_same_dtype("where", in.subspan(1));
       const Shape s = broadcast_shapes(broadcast_shapes(in[0].shape(), in[1].shape(), "where"),
                                        in[2].shape(), "where");
       return Meta{s, in[1].dtype(), in[1].device()};
     },
     [](std::span<const Tensor> in, const Attrs&, const Meta& m) {
       Tensor out = fresh(m);
       if (out.numel())
         backend_of(out).where(kview_broadcast(in[0], m.shape), kview_broadcast(in[1], m.shape),
                               kview_broadcast(in[2], m.shape), kview(out));
       return out;
     },
     [](const RuleCtx& c, int i, const Tensor& g) {
       return i == 1 ? where(c.in[0], g, 0.0) : where(c.in[0], zeros_like(g), g);
     },
     [](const RuleCtx& c, int i, const Tensor& t) {
       return i == 1 ? where(c.in[0], t, 0.0) : where(c.in[0], zeros_like(t), t);
     },
     /*nondiff_inputs=*/1u},
};

// Two operands after type promotion (promote_halves), recorded as primitive `id`.
Tensor binary(OpId id, const Tensor& a, const Tensor& b, const Attrs& attrs = {}) {
  if (!a.defined() || !b.defined() || a.dtype() == b.dtype()) return apply(id, {a, b}, attrs);
  const Tensor ab[] = {a, b};
  const std::vector<Tensor> p = promote_halves(ab);
  return apply(id, {p[0], p[1]}, attrs);
}
Tensor cmp(BinaryOp k, const Tensor& a, const Tensor& b) {
  return binary(OpId::compare, a, b, Attrs{.kind = static_cast<uint8_t>(k)});
}
// A scalar operand takes the tensor's dtype and device.
Tensor like(const Tensor& x, double v) { return scalar(v, x.dtype(), x.device()); }

}  // namespace

std::span<const OpDef> elementwise_ops() { return kOps; }

void check_cast_values(const Tensor& x, DType to) {
  if (!is_floating(x.dtype()) || to != DType::i64 || x.numel() == 0) return;
  NoGradGuard off;
  const double hi = 9223372036854775808.0;  // 2^63: int64 holds [-2^63, 2^63)
  // NaN and values below -2^63 become 2^63, so one comparison finds every bad element.
  const Tensor t = where(x >= -hi, x, full_like(x, hi));
  if (sum(t >= hi).item() == 0) return;
  for (double v : x.to_vector())
    if (!(v >= -hi && v < hi))
      fail<ValueError>("cast: ", dtype_name(x.dtype()), " value ", v,
                       " has no int64 value (NaN, infinities and values outside [-2^63, 2^63) "
                       "cannot be cast to int64); in ",
                       describe(x));
}

Tensor neg(const Tensor& x) { return apply(OpId::neg, {x}); }
Tensor exp(const Tensor& x) { return apply(OpId::exp, {x}); }
Tensor log(const Tensor& x) { return apply(OpId::log, {x}); }
Tensor log1p(const Tensor& x) { return apply(OpId::log1p, {x}); }
Tensor expm1(const Tensor& x) { return apply(OpId::expm1, {x}); }
Tensor sqrt(const Tensor& x) { return apply(OpId::sqrt, {x}); }
Tensor rsqrt(const Tensor& x) { return apply(OpId::rsqrt, {x}); }
Tensor abs(const Tensor& x) { return apply(OpId::abs, {x}); }
Tensor sign(const Tensor& x) { return apply(OpId::sign, {x}); }
Tensor sin(const Tensor& x) { return apply(OpId::sin, {x}); }
Tensor cos(const Tensor& x) { return apply(OpId::cos, {x}); }
Tensor tanh(const Tensor& x) { return apply(OpId::tanh, {x}); }
Tensor sigmoid(const Tensor& x) { return apply(OpId::sigmoid, {x}); }
Tensor erf(const Tensor& x) { return apply(OpId::erf, {x}); }
Tensor pow(const Tensor& x, double p) { return apply(OpId::pow_scalar, {x}, Attrs{.scalar = p}); }

Tensor add(const Tensor& a, const Tensor& b) { return binary(OpId::add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(OpId::sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(OpId::mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(OpId::div, a, b); }
Tensor pow(const Tensor& a, const Tensor& b) { return binary(OpId::pow, a, b); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary(OpId::maximum, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return binary(OpId::minimum, a, b); }
Tensor eq(const Tensor& a, const Tensor& b) { return cmp(BinaryOp::eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return cmp(BinaryOp::ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return cmp(BinaryOp::lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return cmp(BinaryOp::le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return cmp(BinaryOp::gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return cmp(BinaryOp::ge, a, b); }
Tensor where(const Tensor& c, const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined() || a.dtype() == b.dtype()) return apply(OpId::where, {c, a, b});
  const Tensor ab[] = {a, b};
  const std::vector<Tensor> p = promote_halves(ab);
  return apply(OpId::where, {c, p[0], p[1]});
}
Tensor where(const Tensor& c, const Tensor& a, double b) { return where(c, a, like(a, b)); }

Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return add(a, like(a, b)); }
Tensor operator-(const Tensor& a, double b) { return sub(a, like(a, b)); }
Tensor operator*(const Tensor& a, double b) { return mul(a, like(a, b)); }
Tensor operator/(const Tensor& a, double b) { return div(a, like(a, b)); }
Tensor operator+(double a, const Tensor& b) { return add(like(b, a), b); }
Tensor operator-(double a, const Tensor& b) { return sub(like(b, a), b); }
Tensor operator*(double a, const Tensor& b) { return mul(like(b, a), b); }
Tensor operator/(double a, const Tensor& b) { return div(like(b, a), b); }
Tensor operator<(const Tensor& a, const Tensor& b) { return lt(a, b); }
Tensor operator>(const Tensor& a, const Tensor& b) { return gt(a, b); }
Tensor operator<=(const Tensor& a, const Tensor& b) { return le(a, b); }
Tensor operator>=(const Tensor& a, const Tensor& b) { return ge(a, b); }
Tensor operator<(const Tensor& a, double b) { return lt(a, like(a, b)); }
Tensor operator>(const Tensor& a, double b) { return gt(a, like(a, b)); }
Tensor operator<=(const Tensor& a, double b) { return le(a, like(a, b)); }
Tensor operator>=(const Tensor& a, double b) { return ge(a, like(a, b)); }

// ---- composites (derivatives of every order from their parts) ----
Tensor square(const Tensor& x) { return x * x; }
// relu(x) = x [x > 0]; relu'(0) = 0 (convention, the left derivative, as PyTorch and JAX)
Tensor relu(const Tensor& x) { return where(x > 0.0, x, 0.0); }
// silu(x) = x sigma(x)
Tensor silu(const Tensor& x) { return apply(OpId::silu, {x}); }
Tensor silu_grad(const Tensor& x) { return apply(OpId::silu_grad, {x}); }
Tensor silu_grad2(const Tensor& x) { return apply(OpId::silu_grad2, {x}); }
// softplus(x) = log(1 + e^x) = relu(x) + log1p(e^u), u = -|x| <= 0, stable for any x. Both
// pieces switch at x > 0, so at x = 0 (and left of it) the tape sees log1p(e^x) itself and
// every derivative order is exact there (max/abs would give softplus''(0) = 0, not 1/4);
// no branch is ever inf or NaN.
Tensor softplus(const Tensor& x) {
  const Tensor pos = x > 0.0;
  return where(pos, x, 0.0) + log1p(exp(where(pos, -x, x)));
}
Tensor log_sigmoid(const Tensor& x) { return -softplus(-x); }
// elu(x) = x for x > 0, alpha (e^x - 1) otherwise (the inner where keeps e^x finite and
// its gradient exactly masked); elu'(0) = alpha (convention, the left derivative)
Tensor elu(const Tensor& x, double alpha) {
  const Tensor pos = x > 0.0;
  return where(pos, x, expm1(where(pos, zeros_like(x), x)) * alpha);
}
// gelu(x) = x Phi(x), exactly with erf or with the tanh approximation
Tensor gelu(const Tensor& x, bool tanh_approximation) {
  if (tanh_approximation) {
    const double k = std::sqrt(2.0 / M_PI);
    return 0.5 * x * (1.0 + tanh(k * (x + 0.044715 * x * x * x)));
  }
  return 0.5 * x * (1.0 + erf(x * (1.0 / std::sqrt(2.0))));
}
// clamp: gradient 1 on [lo, hi] (boundaries included), 0 outside
Tensor clamp(const Tensor& x, double lo, double hi) {
  if (lo > hi) fail<ValueError>("clamp: lo ", lo, " is greater than hi ", hi);
  return where(x < lo, full_like(x, lo), where(x > hi, full_like(x, hi), x));
}

}  // namespace sg
