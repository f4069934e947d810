// Elementwise math, written once. Each op is a scalar functor usable on the host and on a CUDA
// device; the CPU backend runs it in its loops (with an Eigen packet form where one exists, see
// cpu/packet_math.hpp) and the CUDA backend runs it in one grid-stride kernel template.
// The op enums here are the backend's vocabulary; the op table maps primitives onto them.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <type_traits>

#include "autodiff/core/half.hpp"  // SG_HD, bfloat16, float16
#include "autodiff/ops/op_list.hpp"

namespace sg {

// Generated from the op list (ops/op_list.hpp): a unary/binary primitive's backend op has its
// name and position, so OpId and backend op convert by offset (op_id below).
#define SG_ENUMERATOR(name, Functor, integers) name,
enum class UnaryOp : uint8_t { SG_UNARY_OPS(SG_ENUMERATOR) count };
enum class BinaryOp : uint8_t { SG_BINARY_OPS(SG_ENUMERATOR) SG_COMPARE_OPS(SG_ENUMERATOR) count };
#undef SG_ENUMERATOR
enum class ReduceOp : uint8_t { sum, max, min };
enum class RandomKind : uint8_t { uniform, normal, rademacher, bernoulli };

#define SG_ONE(name, Functor, integers) +1
inline constexpr int kArithmeticOps = 0 SG_BINARY_OPS(SG_ONE);  // BinaryOps before comparisons
#undef SG_ONE
inline constexpr bool is_comparison(BinaryOp op) { return static_cast<int>(op) >= kArithmeticOps; }
// The primitive that records a backend op (comparisons all record as `compare`).
inline constexpr OpId op_id(UnaryOp op) { return static_cast<OpId>(static_cast<int>(op)); }
inline constexpr OpId op_id(BinaryOp op) {
  return is_comparison(op)
             ? OpId::compare
             : static_cast<OpId>(static_cast<int>(UnaryOp::count) + static_cast<int>(op));
}
#define SG_NAME(name, Functor, integers) #name,
inline constexpr const char* kUnaryNames[] = {SG_UNARY_OPS(SG_NAME)};
inline constexpr const char* kBinaryNames[] = {SG_BINARY_OPS(SG_NAME) SG_COMPARE_OPS(SG_NAME)};
#undef SG_NAME
#define SG_FLAG(name, Functor, integers) integers,
inline constexpr bool kUnaryIntegers[] = {SG_UNARY_OPS(SG_FLAG)};
#undef SG_FLAG
// Unary ops defined on integers too (the rest need a floating dtype).
inline constexpr bool unary_takes_integers(UnaryOp op) {
  return kUnaryIntegers[static_cast<int>(op)];
}

namespace fn {

// float/double overloads of the C math library, callable on host and device.
#define SG_MATH1(name)                                         \
  SG_HD inline float name##_(float x) { return ::name##f(x); } \
  SG_HD inline double name##_(double x) { return ::name(x); }
SG_MATH1(exp)
SG_MATH1(log)
SG_MATH1(log1p)
SG_MATH1(expm1)
SG_MATH1(sqrt)
SG_MATH1(sin)
SG_MATH1(cos)
SG_MATH1(tanh)
SG_MATH1(erf)
SG_MATH1(fabs)
#undef SG_MATH1
SG_HD inline float pow_(float x, float y) { return ::powf(x, y); }
SG_HD inline double pow_(double x, double y) { return ::pow(x, y); }
// Integer arithmetic wraps around (two's complement, done in unsigned arithmetic): defined
// for every input, e.g. -INT64_MIN = INT64_MIN, as NumPy's int64. Floats are unchanged.
template <class T>
inline constexpr bool is_int = std::is_integral_v<T> && !std::is_same_v<T, bool>;
template <class T>
SG_HD inline T wrap_add(T a, T b) {
  if constexpr (is_int<T>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(static_cast<U>(a) + static_cast<U>(b)));
  } else {
    return a + b;
  }
}
template <class T>
SG_HD inline T wrap_sub(T a, T b) {
  if constexpr (is_int<T>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(static_cast<U>(a) - static_cast<U>(b)));
  } else {
    return a - b;
  }
}
template <class T>
SG_HD inline T wrap_mul(T a, T b) {
  if constexpr (is_int<T>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(static_cast<U>(a) * static_cast<U>(b)));
  } else {
    return a * b;
  }
}
template <class T>
SG_HD inline T fabs_(T x) {
  return x < 0 ? wrap_sub(T(0), x) : x;
}  // integers: |INT64_MIN| wraps to INT64_MIN

// static_cast<D>(s) made total: a float outside int64's range saturates and NaN gives 0
// (C++ leaves those undefined). The cast op refuses such values before any kernel runs;
// this keeps the kernels themselves defined on every input.
// bfloat16 and float16 go through float (exact widening); narrowing to them rounds once from
// the source's exact value (an int64 is first rounded to double).
template <class D, class S>
SG_HD inline D convert(S s) {
  if constexpr (is_half_v<S>) {
    if constexpr (std::is_same_v<D, S>) {
      return s;
    } else {
      return convert<D>(to_float(s));
    }
  } else if constexpr (is_half_v<D>) {
    if constexpr (std::is_same_v<S, float> || std::is_same_v<S, double>) {
      return to_half<D>(s);
    } else {
      return to_half<D>(static_cast<double>(s));
    }
  } else {
    if constexpr (std::is_floating_point_v<S> && std::is_same_v<D, int64_t>) {
      const S lo = S(-9223372036854775807.0 - 1.0);  // -2^63, exact in float and double
      if (s != s) return 0;
      if (s < lo) return INT64_MIN;
      if (s >= -lo) return INT64_MAX;
    }
    return static_cast<D>(s);
  }
}

struct Neg {
  template <class T>
  SG_HD T operator()(T x) const {
    if constexpr (is_int<T>) {
      return wrap_sub(T(0), x);  // -INT64_MIN wraps
    } else {
      return -x;  // -0.0 for 0.0
    }
  }
};
struct Exp {
  template <class T>
  SG_HD T operator()(T x) const {
    return exp_(x);
  }
};
struct Log {
  template <class T>
  SG_HD T operator()(T x) const {
    return log_(x);
  }
};
struct Log1p {
  template <class T>
  SG_HD T operator()(T x) const {
    return log1p_(x);
  }
};
struct Expm1 {
  template <class T>
  SG_HD T operator()(T x) const {
    return expm1_(x);
  }
};
struct Sqrt {
  template <class T>
  SG_HD T operator()(T x) const {
    return sqrt_(x);
  }
};
struct Rsqrt {
  template <class T>
  SG_HD T operator()(T x) const {
    return T(1) / sqrt_(x);
  }
};
struct Abs {
  template <class T>
  SG_HD T operator()(T x) const {
    return fabs_(x);
  }
};
// sign(x) in {-1, 0, 1}; NaN stays NaN.
struct Sign {
  template <class T>
  SG_HD T operator()(T x) const {
    return x > T(0) ? T(1) : x < T(0) ? T(-1) : x;
  }
};
struct Sin {
  template <class T>
  SG_HD T operator()(T x) const {
    return sin_(x);
  }
};
struct Cos {
  template <class T>
  SG_HD T operator()(T x) const {
    return cos_(x);
  }
};
struct Tanh {
  template <class T>
  SG_HD T operator()(T x) const {
    return tanh_(x);
  }
};
// sigma(x) = 1 / (1 + e^-x): saturates to exactly 0 and 1 without NaN for large |x|.
struct Sigmoid {
  template <class T>
  SG_HD T operator()(T x) const {
    return T(1) / (T(1) + exp_(-x));
  }
};
struct Erf {
  template <class T>
  SG_HD T operator()(T x) const {
    return erf_(x);
  }
};
// silu(x) = x sigma(x) = x / (1 + e^-x), in one pass (the MLP score networks' activation).
struct Silu {
  template <class T>
  SG_HD T operator()(T x) const {
    return x / (T(1) + exp_(-x));
  }
};
// silu'(x) = sigma(x) (1 + x (1 - sigma(x))) = s + x s (1 - s), in one pass.
struct SiluGrad {
  template <class T>
  SG_HD T operator()(T x) const {
    const T s = T(1) / (T(1) + exp_(-x));
    return s + x * s * (T(1) - s);
  }
};
// silu''(x) = s (1 - s) (2 + x (1 - 2 s)), s = sigma(x), in one pass.
struct SiluGrad2 {
  template <class T>
  SG_HD T operator()(T x) const {
    const T s = T(1) / (T(1) + exp_(-x));
    return s * (T(1) - s) * (T(2) + x * (T(1) - T(2) * s));
  }
};
// x^p for a constant p; p = 0 gives 1 everywhere (also at x = 0), as in C's pow.
struct PowScalar {
  double p;
  template <class T>
  SG_HD T operator()(T x) const {
    return pow_(x, T(p));
  }
};

struct Add {
  template <class T>
  SG_HD T operator()(T a, T b) const {
    return wrap_add(a, b);
  }
};
struct Sub {
  template <class T>
  SG_HD T operator()(T a, T b) const {
    return wrap_sub(a, b);
  }
};
struct Mul {
  template <class T>
  SG_HD T operator()(T a, T b) const {
    return wrap_mul(a, b);
  }
};
// Integer division truncates toward zero; INT64_MIN / -1 wraps to INT64_MIN, and a / 0 gives 0
// here so that no kernel traps (the div op refuses a zero integer divisor before it runs).
struct Div {
  template <class T>
  SG_HD T operator()(T a, T b) const {
    if constexpr (is_int<T>) {
      if (b == 0) return T(0);
      if (b == T(-1)) return wrap_sub(T(0), a);
    }
    return a / b;
  }
};
struct Pow {
  template <class T>
  SG_HD T operator()(T a, T b) const {
    return pow_(a, b);
  }
};
// maximum/minimum propagate NaN from either side (like torch.maximum).
struct Maximum {
  template <class T>
  SG_HD T operator()(T a, T b) const {
    return (a > b || a != a) ? a : b;
  }
};
struct Minimum {
  template <class T>
  SG_HD T operator()(T a, T b) const {
    return (a < b || a != a) ? a : b;
  }
};
struct Eq {
  template <class T>
  SG_HD bool operator()(T a, T b) const {
    return a == b;
  }
};
struct Ne {
  template <class T>
  SG_HD bool operator()(T a, T b) const {
    return a != b;
  }
};
struct Lt {
  template <class T>
  SG_HD bool operator()(T a, T b) const {
    return a < b;
  }
};
struct Le {
  template <class T>
  SG_HD bool operator()(T a, T b) const {
    return a <= b;
  }
};
struct Gt {
  template <class T>
  SG_HD bool operator()(T a, T b) const {
    return a > b;
  }
};
struct Ge {
  template <class T>
  SG_HD bool operator()(T a, T b) const {
    return a >= b;
  }
};

}  // namespace fn

// Functors that are defined on integer dtypes too (the others need float or double).
#define SG_INTEGERS(name, Functor, integers) || ((integers) && std::is_same_v<F, fn::Functor>)
template <class F>
inline constexpr bool takes_integers = false SG_UNARY_OPS(SG_INTEGERS) SG_BINARY_OPS(SG_INTEGERS)
    SG_COMPARE_OPS(SG_INTEGERS);
#undef SG_INTEGERS

// The functor of a unary op; pow_scalar's carries its exponent.
template <class Functor>
Functor make_unary(double) {
  return {};
}
template <>
inline fn::PowScalar make_unary<fn::PowScalar>(double p) {
  return {p};
}
// Calls f(Functor{}) for a unary op.
template <class F>
decltype(auto) visit_unary(UnaryOp op, double scalar, F&& f) {
  switch (op) {
#define SG_CASE(name, Functor, integers) \
  case UnaryOp::name:                    \
    return f(make_unary<fn::Functor>(scalar));
    SG_UNARY_OPS(SG_CASE)
#undef SG_CASE
    case UnaryOp::count:
      break;
  }
  std::abort();  // not an op
}
template <class F>
decltype(auto) visit_binary(BinaryOp op, F&& f) {
  switch (op) {
#define SG_CASE(name, Functor, integers) \
  case BinaryOp::name:                   \
    return f(fn::Functor{});
    SG_BINARY_OPS(SG_CASE)
    SG_COMPARE_OPS(SG_CASE)
#undef SG_CASE
    case BinaryOp::count:
      break;
  }
  std::abort();  // not an op
}

}  // namespace sg
