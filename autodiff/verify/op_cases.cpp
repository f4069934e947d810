// The rows of the op test table. Adding a primitive adds a row here (the coverage test fails
// otherwise). Elementwise rows are checked to order 3, the rest to order 2.
#include "autodiff/verify/op_cases.hpp"

#include <cmath>
#include <limits>
#include <memory>
#include <span>
#include <sstream>

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

// ---- special-point rows -----------------------------------------------------------------
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kTiny = 1e-300, kSub = 4.9406564584124654e-324;  // tiny normal, subnormal

// s = sigma(x), evaluated without overflow for any x.
double sigma(double x) { return x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x)); }
double softplus_ref(double x) {
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}
// k-th derivative of softplus (k >= 1: of sigma).
double softplus_d(double x, int k) {
  const double s = sigma(x), u = s * (1 - s);
  switch (k) {
    case 0:
      return softplus_ref(x);
    case 1:
      return s;
    case 2:
      return u;
    case 3:
      return u * (1 - 2 * s);
    default:
      return u * (1 - 6 * s + 6 * s * s);
  }
}
// k-th derivative of silu(x) = x sigma(x), k <= 5 (silu_grad2 checked to third order needs 5).
double silu_d(double x, int k) {
  const double s = sigma(x), u = s * (1 - s), a = 1 - 2 * s;
  switch (k) {
    case 0:
      return x * s;
    case 1:
      return s + x * u;
    case 2:
      return u * (2 + x * a);
    case 3:
      return u * (a * (3 + x * a) - 2 * x * u);
    case 4:
      return u * (a * a * (4 + x * a) - 8 * u * (1 + x * a));
    default:
      return u * (a * a * a * (5 + x * a) - 40 * u * a - 22 * x * u * a * a + 16 * x * u * u);
  }
}
// Partial derivatives of a^b, na times by a and nb times by b (na + nb <= 3). Conventions at
// a = 0 (the rule's comment in ops_elementwise.cpp): log(a) := 0 there (d/db a^b = 0), a term
// c a^e with c = 0 is 0 even where a^e is infinite, and at a = b = 0 every derivative is 0.
double pow_d(double a, double b, int na, int nb) {
  if (a == 0 && b == 0) return na + nb == 0 ? 1 : 0;
  const double L = a == 0 ? 0 : std::log(a);
  auto term = [&](double c, double e) { return c == 0 ? 0 : c * std::pow(a, e); };
  if (na == 0) return nb == 0 ? std::pow(a, b) : term(std::pow(L, nb), b);
  if (nb == 0) {
    double c = 1;
    for (int j = 0; j < na; ++j) c *= b - j;
    return term(c, b - na);
  }
  // At a = 0, b <= 2 the true d3/da2db is -inf (a^(b-2) (3 + 2 log a) at b = 2): the masked
  // rules give a finite value that depends on the order of differentiation.
  if (a == 0 && na == 2 && nb == 1 && b <= 2) return kAnyFinite;
  if (na == 1 && nb == 1) return term(1 + b * L, b - 1);
  if (na == 1) return term(L * (2 + b * L), b - 1);  // nb = 2
  return term(2 * b - 1 + b * (b - 1) * L, b - 2);   // na = 2, nb = 1
}

using Deriv = std::function<double(double, int)>;  // (x, k) -> f^(k)(x)
OpCase unary_points(OpId op, std::string name, std::function<Tensor(const Tensor&)> fn,
                    std::vector<double> xs, Deriv d, DType dtype = DType::f64) {
  OpCase c{op, std::move(name), {}, [fn](V x) { return fn(x[0]); }, 0, 0, 3};
  for (double x : xs) c.points.push_back({x});
  c.exact = [d](const std::vector<double>& p, const std::vector<int>& w) {
    return d(p[0], static_cast<int>(w.size()));
  };
  c.dtype = dtype;
  return c;
}
using Deriv2 = std::function<double(double, double, int, int)>;  // (a, b, na, nb)
OpCase binary_points(OpId op, std::string name, Tensor (*fn)(const Tensor&, const Tensor&),
                     std::vector<std::vector<double>> ps, Deriv2 d) {
  OpCase c{op, std::move(name), {}, [fn](V x) { return fn(x[0], x[1]); }, 0, 0, 3};
  c.points = std::move(ps);
  c.exact = [d](const std::vector<double>& p, const std::vector<int>& w) {
    int nb = 0;
    for (int i : w) nb += i;
    return d(p[0], p[1], static_cast<int>(w.size()) - nb, nb);
  };
  return c;
}
// f(x) = g(x) for k = 0, the constant h for k = 1, 0 beyond: the piecewise-linear ops.
Deriv linear(std::function<double(double)> g, std::function<double(double)> h) {
  return [g, h](double x, int k) { return k == 0 ? g(x) : k == 1 ? h(x) : 0.0; };
}
// d^k/dx^k x^p with the pow conventions at 0.
Deriv power(double p) {
  return [p](double x, int k) { return pow_d(x, p, k, 0); };
}

void add_special_rows(std::vector<OpCase>& c) {
  const double inf = kInf, nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> zeros = {0.0, -0.0, kTiny, -kTiny, kSub, -kSub};
  auto with = [&](std::vector<double> more) {
    std::vector<double> v = zeros;
    v.insert(v.end(), more.begin(), more.end());
    return v;
  };
  auto f64 = [](Tensor (*f)(const Tensor&)) { return std::function<Tensor(const Tensor&)>(f); };
  c.push_back(unary_points(OpId::neg, "neg @ special", f64(neg), with({1e300, inf, -inf}),
                           linear([](double x) { return -x; }, [](double) { return -1.0; })));
  c.push_back(unary_points(OpId::exp, "exp @ special", f64(exp), with({-745, -800, 700, -inf, inf}),
                           [](double x, int) { return std::exp(x); }));
  c.push_back(unary_points(OpId::log, "log @ special", f64(log), {1, 0.5, kTiny, 1e300, inf, 0.0},
                           [](double x, int k) {
                             const double r[] = {std::log(x), 1 / x, -1 / (x * x), 2 / (x * x * x)};
                             return r[k];
                           }));
  c.push_back(
      unary_points(OpId::log1p, "log1p @ special", f64(log1p), with({1e300, inf, -0.5, -1.0}),
                   [](double x, int k) {
                     const double y = 1 + x;
                     const double r[] = {std::log1p(x), 1 / y, -1 / (y * y), 2 / (y * y * y)};
                     return r[k];
                   }));
  c.push_back(unary_points(OpId::expm1, "expm1 @ special", f64(expm1), with({-800, -inf, 700}),
                           [](double x, int k) { return k == 0 ? std::expm1(x) : std::exp(x); }));
  c.push_back(unary_points(OpId::sqrt, "sqrt @ special", f64(sqrt), {0.0, kTiny, 4, 1e300, inf},
                           power(0.5)));
  c.push_back(unary_points(OpId::rsqrt, "rsqrt @ special", f64(rsqrt), {0.0, kTiny, 4, 1e300, inf},
                           power(-0.5)));
  // abs'(0) = sign(0) = 0 by convention (the rule's comment).
  c.push_back(unary_points(OpId::abs, "abs @ special (abs'(0) = 0)", f64(abs), with({inf, -inf}),
                           linear([](double x) { return std::fabs(x); },
                                  [](double x) { return x > 0   ? 1.0
                                                        : x < 0 ? -1.0
                                                                : 0.0; })));
  c.push_back(unary_points(
      OpId::sign, "sign @ special", f64(sign), with({inf, -inf}),
      linear([](double x) { return x > 0   ? 1.0
                                   : x < 0 ? -1.0
                                           : x; }, [](double) { return 0.0; })));
  c.push_back(unary_points(
      OpId::sin, "sin @ special", f64(sin), with({1e300, M_PI / 2}), [](double x, int k) {
        const double r[] = {std::sin(x), std::cos(x), -std::sin(x), -std::cos(x)};
        return r[k];
      }));
  c.push_back(unary_points(
      OpId::cos, "cos @ special", f64(cos), with({1e300, M_PI / 2}), [](double x, int k) {
        const double r[] = {std::cos(x), -std::sin(x), -std::cos(x), std::sin(x)};
        return r[k];
      }));
  c.push_back(unary_points(OpId::tanh, "tanh @ special", f64(tanh),
                           with({20, -20, 400, -400, inf, -inf}), [](double x, int k) {
                             const double y = std::tanh(x), v = 1 - y * y;
                             const double r[] = {y, v, -2 * y * v, v * (6 * y * y - 2)};
                             return r[k];
                           }));
  c.push_back(unary_points(OpId::sigmoid, "sigmoid @ special", f64(sigmoid),
                           with({40, -40, 800, -800, inf, -inf}),
                           [](double x, int k) { return softplus_d(x, k + 1); }));
  c.push_back(unary_points(OpId::erf, "erf @ special", f64(erf), with({3, -3, 30, -30, inf, -inf}),
                           [](double x, int k) {
                             const double g = 2 / std::sqrt(M_PI) * std::exp(-x * x);
                             const double r[] = {std::erf(x), g, std::isinf(x) ? 0 : -2 * x * g,
                                                 std::isinf(x) ? 0 : (4 * x * x - 2) * g};
                             return r[k];
                           }));
  // silu(-inf) is NaN (-inf / inf in the one-pass functor): the saturated tails are +-800.
  c.push_back(
      unary_points(OpId::silu, "silu @ special", f64(silu), with({40, -40, 800, -800}), silu_d));
  c.push_back(unary_points(OpId::silu_grad, "silu_grad @ special", f64(silu_grad),
                           with({40, -40, 800, -800}),
                           [](double x, int k) { return silu_d(x, k + 1); }));
  c.push_back(unary_points(OpId::silu_grad2, "silu_grad2 @ special", f64(silu_grad2),
                           with({40, -40, 800, -800}),
                           [](double x, int k) { return silu_d(x, k + 2); }));
  for (double p : {0.0, 1.0, 2.0, 3.0, 2.5, 0.5, -1.0}) {
    std::ostringstream name;
    name << "pow(x, " << p << ") @ special";
    std::vector<double> xs = {0.0, kTiny, 2, 1e100};
    if (p == std::floor(p)) xs.insert(xs.end(), {-0.0, -2, inf, -inf});
    c.push_back(unary_points(
        OpId::pow_scalar, name.str(), [p](const Tensor& x) { return pow(x, p); }, xs, power(p)));
  }
  const std::vector<std::vector<double>> pairs = {
      {0, 0}, {-0.0, 0}, {1, 2}, {kSub, -kSub}, {kTiny, kTiny}, {inf, 1}, {-inf, 2}};
  c.push_back(
      binary_points(OpId::add, "add @ special", add, pairs, [](double a, double b, int na, int nb) {
        return na + nb == 0 ? a + b : na + nb == 1 ? 1.0 : 0.0;
      }));
  c.push_back(
      binary_points(OpId::sub, "sub @ special", sub, pairs, [](double a, double b, int na, int nb) {
        return na + nb == 0 ? a - b : na + nb == 1 ? (na ? 1.0 : -1.0) : 0.0;
      }));
  c.push_back(binary_points(OpId::mul, "mul @ special", mul,
                            {{0, 0}, {-0.0, 0}, {kTiny, kTiny}, {1e300, 1e300}, {inf, 2}, {0, 3}},
                            [](double a, double b, int na, int nb) {
                              if (na + nb == 0) return a * b;
                              if (na + nb == 1) return na ? b : a;
                              return na == 1 && nb == 1 ? 1.0 : 0.0;
                            }));
  c.push_back(binary_points(OpId::div, "div @ special", div,
                            {{0, 1}, {-0.0, -1}, {1, 2}, {kTiny, 1}, {1, inf}, {-3, inf}},
                            [](double a, double b, int na, int nb) {
                              switch (na * 4 + nb) {
                                case 0:
                                  return a / b;
                                case 4:
                                  return 1 / b;
                                case 1:
                                  return -a / (b * b);
                                case 5:
                                  return -1 / (b * b);
                                case 2:
                                  return 2 * a / (b * b * b);
                                case 6:
                                  return 2 / (b * b * b);
                                case 3:
                                  return -6 * a / (b * b * b * b);
                                default:
                                  return 0.0;  // da^2: the quotient is linear in a
                              }
                            }));
  // The point: a^b at a = 0, b = 0 (and around it: mixed derivatives at b = 0, a != 0
  // are 1/a, not masked away).
  c.push_back(binary_points(
      OpId::pow, "pow @ special (a = 0, b = 0)", pow,
      {{0, 0}, {0, 2}, {0, 3}, {1, 0}, {2, 0}, {0.5, 0}, {2, -1}, {1, 0.5}, {3, 2}, {1e-100, 2}},
      pow_d));
  // Ties split the cotangent evenly; NaN wins (it is the value that propagates).
  auto extremum = [&](bool is_max) {
    return [is_max](double a, double b, int na, int nb) {
      const bool an = std::isnan(a), bn = std::isnan(b);
      const double wa = an ? 1 : bn ? 0 : a == b ? 0.5 : (is_max ? a > b : a < b) ? 1 : 0;
      if (na + nb == 0)
        return an || bn ? std::numeric_limits<double>::quiet_NaN() : (wa > 0 ? a : b);
      if (na + nb == 1) return na ? wa : 1 - wa;
      return 0.0;
    };
  };
  const std::vector<std::vector<double>> ties = {{0, 0},     {-0.0, 0}, {1, 2},       {2, 1},
                                                 {inf, inf}, {inf, 1},  {-inf, -inf}, {kSub, 0},
                                                 {nan, 1},   {1, nan},  {nan, nan}};
  c.push_back(
      binary_points(OpId::maximum, "maximum @ ties, NaN, inf", maximum, ties, extremum(true)));
  c.push_back(
      binary_points(OpId::minimum, "minimum @ ties, NaN, inf", minimum, ties, extremum(false)));
  // The unselected side's inf or NaN never reaches the selected side's derivative.
  c.push_back(binary_points(
      OpId::where, "where @ unselected inf, NaN",
      [](const Tensor& a, const Tensor& b) { return where(a > 0.0, a, b); },
      {{1, nan}, {inf, -inf}, {0, 1}, {-inf, inf}, {-1, nan}},
      [](double a, double b, int na, int nb) {
        const bool pick = a > 0;
        if (na + nb == 0) return pick ? a : b;
        if (na + nb == 1) return (na ? pick : !pick) ? 1.0 : 0.0;
        return 0.0;
      }));

  const OpId comp = OpId::count;
  c.push_back(
      unary_points(comp, "square @ special", square, with({1e300, inf, -inf}), [](double x, int k) {
        const double r[] = {x * x, 2 * x, 2, 0};
        return r[k];
      }));
  // relu'(0) = 0 by convention (the left derivative, as PyTorch and JAX).
  c.push_back(unary_points(comp, "relu @ special (relu'(0)=0)", relu, with({inf, -inf}),
                           linear([](double x) { return x > 0 ? x : 0.0; },
                                  [](double x) { return x > 0 ? 1.0 : 0.0; })));
  c.push_back(unary_points(comp, "softplus @ special", softplus,
                           with({40, -40, 800, -800, inf, -inf}), softplus_d));
  c.push_back(unary_points(comp, "log_sigmoid @ special", log_sigmoid,
                           with({40, -40, 800, -800, inf, -inf}),
                           [](double x, int k) { return (k % 2 ? 1 : -1) * softplus_d(-x, k); }));
  // elu'(0) = alpha: the left derivative (elu is not differentiable at 0 for alpha != 1).
  c.push_back(unary_points(
      comp, "elu(1.3) @ 0 (elu'(0)=alpha)", [](const Tensor& x) { return elu(x, 1.3); },
      with({inf, -inf, -800}),
      [](double x, int k) {
        if (x > 0) return k == 0 ? x : k == 1 ? 1.0 : 0.0;
        return k == 0 ? 1.3 * std::expm1(x) : 1.3 * std::exp(x);
      }));
  c.push_back(unary_points(
      comp, "gelu @ special", [](const Tensor& x) { return gelu(x); }, with({10, -10, 40, -40}),
      [](double x, int k) {
        const double Phi = 0.5 * std::erfc(-x / std::sqrt(2.0)),
                     phi = std::exp(-x * x / 2) / std::sqrt(2 * M_PI);
        const double r[] = {x * Phi, Phi + x * phi, phi * (2 - x * x), phi * (x * x * x - 4 * x)};
        return r[k];
      }));
  c.push_back(unary_points(
      comp, "gelu(tanh) @ 0", [](const Tensor& x) { return gelu(x, true); }, {0.0, -0.0},
      [](double, int k) {
        const double r[] = {0, 0.5, std::sqrt(2 / M_PI), 0};
        return r[k];
      }));
  // clamp: gradient 1 on [lo, hi], boundaries included (the composite's comment).
  c.push_back(unary_points(
      comp, "clamp(-1, 1) @ bounds, inf", [](const Tensor& x) { return clamp(x, -1, 1); },
      with({-1, 1, -2, 2, inf, -inf}),
      linear([](double x) { return x < -1  ? -1.0
                                   : x > 1 ? 1.0
                                           : x; },
             [](double x) { return x >= -1 && x <= 1 ? 1.0 : 0.0; })));

  // float32 at large |x| (the saturation and overflow edges of single precision).
  const double fmax = std::numeric_limits<float>::max();
  const std::vector<double> large = {100, -100, 1e4, -1e4, 1e30, -1e30, fmax, -fmax};
  c.push_back(
      unary_points(comp, "softplus @ float32 large", softplus, large, softplus_d, DType::f32));
  c.push_back(unary_points(
      comp, "log_sigmoid @ float32 large", log_sigmoid, large,
      [](double x, int k) { return (k % 2 ? 1 : -1) * softplus_d(-x, k); }, DType::f32));
  c.push_back(unary_points(
      OpId::sigmoid, "sigmoid @ float32 large", f64(sigmoid), large,
      [](double x, int k) { return softplus_d(x, k + 1); }, DType::f32));
  c.push_back(unary_points(
      OpId::tanh, "tanh @ float32 large", f64(tanh), large,
      [](double x, int k) {
        const double y = std::tanh(x), v = 1 - y * y;
        const double r[] = {y, v, -2 * y * v, v * (6 * y * y - 2)};
        return r[k];
      },
      DType::f32));
  c.push_back(
      unary_points(OpId::silu, "silu @ float32 large", f64(silu), large, silu_d, DType::f32));
  c.push_back(unary_points(
      OpId::exp, "exp @ float32 large", f64(exp), {88, -88, -104, -200, 89},
      [](double x, int) { return std::exp(x); }, DType::f32));
  c.push_back(unary_points(
      OpId::log, "log @ float32 large", f64(log), {1e30, fmax, 1e-30},
      [](double x, int k) {
        const double r[] = {std::log(x), 1 / x, -1 / (x * x), 2 / (x * x * x)};
        return r[k];
      },
      DType::f32));
  c.push_back(unary_points(OpId::sqrt, "sqrt @ float32 large", f64(sqrt), {1e30, fmax, 1e-30},
                           power(0.5), DType::f32));
}

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
  // Order statistics: gathers through a host-computed permutation (weights make the order
  // matter to the result).
  c.push_back({comp, "sort (descending, weighted)", {{3, 5}}, [](V x) {
                 const Tensor w = arange(5, x[0].dtype(), x[0].device()) + 1.0;
                 return square(sort(x[0], 1, true) * w);
               }});
  c.push_back({comp, "quantile (0.1, 0.5, 0.93)", {{6, 3}}, [](V x) {
                 return square(quantile(x[0], {0.1, 0.5, 0.93}, 0));
               }});
  c.push_back({comp, "stack", {{2, 3}, {2, 3}}, [](V x) {
                 return square(stack({x[0], x[1]}, 1));
               }});
  c.push_back({comp, "select+transpose", {{3, 4, 2}}, [](V x) {
                 return square(select(transpose(x[0], 0, 2), 1, 1));
               }});
  c.push_back({comp, "sum_to", {{3, 4}}, [](V x) { return square(sum_to(x[0], {1, 4})); }});
  add_special_rows(c);
  return c;
}

}  // namespace

const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> rows = build();
  return rows;
}

namespace {

// Every sorted multiset of `arity` input indices of size k (the partial derivatives of order k).
void multisets(int arity, int k, int from, std::vector<int>& cur,
               std::vector<std::vector<int>>& out) {
  if (static_cast<int>(cur.size()) == k) {
    out.push_back(cur);
    return;
  }
  for (int i = from; i < arity; ++i) {
    cur.push_back(i);
    multisets(arity, k, i, cur, out);
    cur.pop_back();
  }
}

// The partial derivative by the inputs in wrt, elementwise, by repeated reverse mode.
Tensor reverse_partial(const MultiFn& f, const std::vector<Tensor>& xs,
                       const std::vector<int>& wrt) {
  EnableGradGuard on;
  std::vector<Tensor> tracked;
  for (const Tensor& x : xs) tracked.push_back(x.detach().requires_grad_());
  Tensor d = f(tracked);
  for (int i : wrt) {
    const Tensor& x = tracked[static_cast<size_t>(i)];
    if (!d.requires_grad()) return zeros_like(x);
    d = grad({d}, {x}, {ones_like(d)}, {.create_graph = true, .allow_unused = true})[0];
    if (!d.defined()) d = zeros_like(x);
  }
  return d.detach();
}
// The same by nested forward mode: one dual level per derivative, outermost first.
Tensor forward_partial(const MultiFn& f, std::vector<Tensor> xs, std::span<const int> wrt) {
  if (wrt.empty()) return f(xs);
  DualLevel level;
  Tensor& x = xs[static_cast<size_t>(wrt[0])];
  x = level.make_dual(x, ones_like(x));
  return level.tangent(forward_partial(f, std::move(xs), wrt.subspan(1)));
}

// Input i of a special-point row: its value at every point.
std::vector<Tensor> point_inputs(const OpCase& c) {
  std::vector<Tensor> xs;
  for (size_t i = 0; i < c.points[0].size(); ++i) {
    std::vector<double> v;
    for (const auto& p : c.points) v.push_back(p[i]);
    xs.push_back(from_vector(v, {static_cast<int64_t>(v.size())}, c.dtype));
  }
  return xs;
}

// got against a reference: NaN only where the reference is NaN, infinities exactly.
bool matches(double got, double want, double rtol, double atol) {
  if (want == kAnyFinite) return std::isfinite(got);
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  return std::isfinite(got) && std::fabs(got - want) <= atol + rtol * std::fabs(want);
}

GradcheckReport check_special(const OpCase& c) {
  const size_t np = c.points.size(), arity = c.points[0].size();
  const std::vector<Tensor> xs = point_inputs(c);
  const bool f32 = c.dtype == DType::f32;
  const double rtol = f32 ? 1e-5 : 1e-10, atol = f32 ? 1e-6 : 1e-14;
  GradcheckReport report;
  for (int k = 0; k <= c.order; ++k) {
    std::vector<std::vector<int>> sets;
    std::vector<int> cur;
    multisets(static_cast<int>(arity), k, 0, cur, sets);
    for (const auto& wrt : sets) {
      for (int mode = 0; mode < (c.has_jvp && k > 0 ? 2 : 1); ++mode) {
        const std::vector<double> got =
            (mode == 0 ? reverse_partial(c.f, xs, wrt) : forward_partial(c.f, xs, wrt)).to_vector();
        for (size_t p = 0; p < np; ++p) {
          double want = c.exact(c.points[p], wrt);
          if (f32 && std::isfinite(want) &&
              std::fabs(want) > static_cast<double>(std::numeric_limits<float>::max()))
            want = std::copysign(kInf, want);  // overflows float32
          const double g = got[p];
          const bool pass = matches(g, want, rtol, atol);
          if (want == kAnyFinite) want = g;  // no reference value: reported as no error
          const double err = std::fabs(g - want);
          std::ostringstream what;
          what << (mode == 0 ? "vjp" : "jvp") << " d" << k;
          for (int i : wrt) what << "/dx" << i;
          what << " at (";
          for (size_t i = 0; i < arity; ++i) what << (i ? ", " : "") << c.points[p][i];
          what << ")";
          report.rows.push_back(
              {k, wrt.empty() ? 0 : wrt.back(), what.str(), g, want, std::isfinite(err) ? err : 0.0,
               std::isfinite(err) && want != 0 ? err / std::fabs(want) : 0.0, pass});
        }
      }
    }
  }
  return report;
}

}  // namespace

std::vector<Tensor> make_inputs(const OpCase& c, uint64_t seed) {
  if (c.special()) return point_inputs(c);
  Generator g(seed);
  std::vector<Tensor> xs;
  for (const Shape& s : c.shapes) xs.push_back(rand(s, g, DType::f64) * (c.hi - c.lo) + c.lo);
  return xs;
}

GradcheckReport check_op_case(const OpCase& c) {
  if (c.special()) return check_special(c);
  return gradcheck(
      c.f, make_inputs(c, 11),
      {.order = c.order, .atol = 1e-7, .rtol = 1e-5, .seed = 3, .check_jvp = c.has_jvp});
}

}  // namespace sg::verify
