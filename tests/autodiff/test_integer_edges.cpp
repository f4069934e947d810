// Inputs that used to kill the process or hit undefined behaviour in the elementwise kernels:
// integer division by zero and INT64_MIN / -1 (SIGFPE), int64 overflow in neg/abs/add/sub/mul,
// and casts of NaN, infinities or out-of-range floats to int64. Each is a typed error naming
// the op or a documented, defined result (two's-complement wrap-around), on every path.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "autodiff/backend/functors.hpp"
#include "autodiff/sg.hpp"

using namespace sg;

namespace {

using I = std::vector<int64_t>;
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

Tensor ints(const I& v) { return from_indices(v, {static_cast<int64_t>(v.size())}); }

template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("integer division by zero is a ValueError naming div", "[values][integer]") {
  const Tensor a = ints({7, -7, 0, 5}), b = ints({2, 0, 3, 1});
  const std::string msg = error_of<ValueError>([&] { (void)div(a, b); });
  INFO(msg);
  CHECK(msg.find("div: integer division by zero") != std::string::npos);
  CHECK(msg.find("1 zero elements") != std::string::npos);
  // A broadcast zero scalar and a zero in a strided view are found too.
  CHECK(error_of<ValueError>([&] { (void)(a / scalar(0, DType::i64)); }) != "(no error)");
  const Tensor strided = slice(ints({1, 0, 2, 5}), 0, 1, 4, 2);  // {0, 5}
  CHECK(error_of<ValueError>([&] { (void)div(ints({3, 4}), strided); }) != "(no error)");
  // Float division by zero stays IEEE (inf, NaN), no error.
  CHECK(std::isinf((scalar(1.0, DType::f64) / scalar(0.0, DType::f64)).item()));
}

TEST_CASE("int64 arithmetic wraps around like two's complement", "[values][integer]") {
  // Truncating division, INT64_MIN / -1 = INT64_MIN (the one quotient that overflows).
  CHECK(div(ints({7, -7, 7, -7, kMin, kMin, kMax}), ints({2, 2, -2, -2, -1, 1, -1}))
            .values<int64_t>() == I{3, -3, -3, 3, kMin, kMin, -kMax});
  CHECK(neg(ints({kMin, kMax, 0})).values<int64_t>() == I{kMin, -kMax, 0});
  CHECK(abs(ints({kMin, -kMax})).values<int64_t>() == I{kMin, kMax});
  CHECK(add(ints({kMax, kMin}), ints({1, -1})).values<int64_t>() == I{kMin, kMax});
  CHECK(sub(ints({kMin, kMax}), ints({1, -1})).values<int64_t>() == I{kMax, kMin});
  CHECK(mul(ints({kMax, kMin, int64_t{1} << 32}), ints({2, -1, int64_t{1} << 32}))
            .values<int64_t>() == I{-2, kMin, 0});
  // The functors themselves (the CPU loops and the CUDA kernels run these) never trap.
  CHECK(fn::Div{}(int64_t{5}, int64_t{0}) == 0);
  CHECK(fn::Div{}(kMin, int64_t{-1}) == kMin);
  CHECK(fn::Neg{}(kMin) == kMin);
  CHECK(fn::Abs{}(kMin) == kMin);
}

TEST_CASE("casting NaN, infinities or out-of-range floats to int64 is a ValueError",
          "[values][integer][cast]") {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = INFINITY;
  for (DType dt : {DType::f32, DType::f64}) {
    for (double bad : {nan, inf, -inf, 1e19, -1e19, 9223372036854775808.0}) {
      const Tensor x = from_vector({1.5, bad, -2.5}, {3}, dt);
      const std::string msg = error_of<ValueError>([&] { (void)cast(x, DType::i64); });
      INFO(dtype_name(dt) << " " << bad << ": " << msg);
      CHECK(msg.find("cast: ") == 0);
      CHECK(msg.find(dtype_name(dt)) != std::string::npos);
      CHECK(msg.find("int64") != std::string::npos);
      CHECK(msg.find(std::isnan(bad)   ? "nan"
                     : std::isinf(bad) ? "inf"
                                       : "e+") != std::string::npos);
    }
    // The ends of the range convert exactly; fractions truncate toward zero.
    const double below = dt == DType::f32 ? 9223371487098961920.0 : 9223372036854774784.0;
    CHECK(cast(from_vector({-9223372036854775808.0, below, -2.7, 2.7}, {4}, dt), DType::i64)
              .values<int64_t>() == I{kMin, static_cast<int64_t>(below), -2, 2});
  }
  // Casting to bool or between floats is defined for every value.
  CHECK(cast(from_vector({nan, 0}, {2}, DType::f64), DType::b8).to_vector() ==
        std::vector<double>{1, 0});
  // The kernels' conversion itself is total: saturating, NaN to 0.
  CHECK(fn::convert<int64_t>(nan) == 0);
  CHECK(fn::convert<int64_t>(inf) == kMax);
  CHECK(fn::convert<int64_t>(-1e30f) == kMin);
  CHECK(fn::convert<int64_t>(-3.9) == -3);
}
