// Forward values of every op against plain C++ loop / <cmath> references: unary math (SIMD,
// scalar-strided and threaded paths), composites, broadcasting binaries, reductions, matmul,
// movement/indexing ops, creation functions, and edge values through the shared functors.
#include <omp.h>

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <functional>
#include <iomanip>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "autodiff/backend/cpu/cpu_options.hpp"
#include "autodiff/backend/functors.hpp"
#include "autodiff/sg.hpp"

using namespace sg;

namespace {

using Vec = std::vector<double>;
using Dims = std::vector<int64_t>;

// Deterministic inputs (SplitMix64), uniform in [lo, hi].
Vec uniform_values(int64_t n, double lo, double hi, uint64_t seed) {
  Vec v(static_cast<size_t>(n));
  uint64_t s = seed * 0x632BE59BD9B4E019ull + 12345;
  for (double& x : v) {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    x = lo + (hi - lo) * (static_cast<double>(z >> 11) * 0x1p-53);
  }
  return v;
}
// The values as the tensor stores them (float32 rounds to nearest).
Vec rounded(Vec v, DType dt) {
  if (dt == DType::f32)
    for (double& x : v) x = static_cast<double>(static_cast<float>(x));
  return v;
}
Shape shp(const Dims& d) { return Shape(std::span<const int64_t>(d.data(), d.size())); }
int64_t numel(const Dims& d) {
  int64_t n = 1;
  for (int64_t x : d) n *= x;
  return n;
}

std::string fmt(double x) {
  std::ostringstream s;
  s << std::setprecision(17) << x;
  return s.str();
}

// "" when every got[i] is within atol + rtol |want[i]| of want[i] (NaN matches NaN, an infinity
// matches itself); otherwise a description of the first mismatch and the count.
std::string close_report(const Vec& got, const Vec& want, double rtol, double atol) {
  if (got.size() != want.size())
    return "size " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], w = want[i];
    bool ok;
    if (std::isnan(w)) {
      ok = std::isnan(g);
    } else if (std::isinf(w)) {
      ok = g == w;
    } else {
      ok = std::isfinite(g) && std::fabs(g - w) <= atol + rtol * std::fabs(w);
    }
    if (!ok && bad++ == 0) first = i;
  }
  if (!bad) return "";
  return std::to_string(bad) + " of " + std::to_string(got.size()) + " differ; first at " +
         std::to_string(first) + ": got " + fmt(got[first]) + " want " + fmt(want[first]);
}
std::string exact_report(const Vec& got, const Vec& want) { return close_report(got, want, 0, 0); }

struct Tol {
  double rtol, atol;
};
Tol unary_tol(DType dt) { return dt == DType::f32 ? Tol{2e-6, 1e-7} : Tol{1e-13, 1e-15}; }
Tol composite_tol(DType dt) { return dt == DType::f32 ? Tol{1e-5, 1e-6} : Tol{1e-12, 1e-14}; }
// Sums of up to ~100 values of magnitude <= 4.
Tol reduce_tol(DType dt) { return dt == DType::f32 ? Tol{1e-5, 1e-4} : Tol{1e-12, 1e-12}; }

// Calls f(idx) for every multi-index of `shape` in row-major order.
template <class F>
void for_each_index(const Dims& shape, F&& f) {
  const int64_t n = numel(shape);
  Dims idx(shape.size(), 0);
  for (int64_t flat = 0; flat < n; ++flat) {
    f(idx);
    for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}
// Flat row-major index into an operand of `shape` broadcast (right-aligned) to idx's rank.
int64_t bcast_index(const Dims& idx, const Dims& shape) {
  int64_t flat = 0;
  const size_t off = idx.size() - shape.size();
  for (size_t d = 0; d < shape.size(); ++d)
    flat = flat * shape[d] + (shape[d] == 1 ? 0 : idx[off + d]);
  return flat;
}
int64_t flat_index(const Dims& idx, const Dims& shape) { return bcast_index(idx, shape); }
// Values of permute(x, perm) for a row-major x of `shape`.
Vec permuted(const Vec& x, const Dims& shape, const Dims& perm) {
  Dims out_shape;
  for (int64_t p : perm) out_shape.push_back(shape[p]);
  Vec out;
  for_each_index(out_shape, [&](const Dims& o) {
    Dims src(shape.size());
    for (size_t d = 0; d < perm.size(); ++d) src[perm[d]] = o[d];
    out.push_back(x[flat_index(src, shape)]);
  });
  return out;
}

// ---- a tensor in several layouts, with its logical values --------------------------------
struct Input {
  std::string layout;
  Tensor t;
  Vec vals;         // logical row-major values (as stored: float32-rounded)
  bool contiguous;  // expected layout, checked
};
// 1003 contiguous elements (SIMD body plus a scalar tail), a transposed view and a step-2
// slice (both scalar, strided), and a [400,100] row-strided view large enough to run threaded.
std::vector<Input> layouts(double lo, double hi, DType dt, uint64_t seed, bool snap = false) {
  auto gen = [&](int64_t n, uint64_t s) {
    Vec v = uniform_values(n, lo, hi, s);
    if (snap)
      for (double& x : v) x = std::round(x);
    return rounded(v, dt);
  };
  std::vector<Input> r;
  {
    Vec v = gen(1003, seed);
    r.push_back({"contiguous[1003]", from_vector(v, {1003}, dt), v, true});
  }
  {
    Vec v = gen(37 * 29, seed + 1);
    r.push_back({"transpose([37,29])", transpose(from_vector(v, {37, 29}, dt), 0, 1),
                 permuted(v, {37, 29}, {1, 0}), false});
  }
  {
    Vec v = gen(2006, seed + 2), s;
    for (int64_t i = 1; i < 2006; i += 2) s.push_back(v[i]);
    r.push_back(
        {"slice([2006], 1::2)", slice(from_vector(v, {2006}, dt), 0, 1, 2006, 2), s, false});
  }
  {
    Vec v = gen(800 * 100, seed + 3), s;
    for (int64_t i = 0; i < 800; i += 2)
      for (int64_t j = 0; j < 100; ++j) s.push_back(v[i * 100 + j]);
    r.push_back({"slice([800,100], axis 0, ::2)",
                 slice(from_vector(v, {800, 100}, dt), 0, 0, 800, 2), s, false});
  }
  return r;
}

struct UnaryCase {
  std::string name;
  std::function<Tensor(const Tensor&)> op;
  std::function<double(double)> ref;
  double lo, hi;
  bool snap = false;  // integer-valued inputs (exact zeros for sign)
};

double sigmoid_ref(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double softplus_ref(double x) {
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

std::vector<UnaryCase> unary_cases() {
  std::vector<UnaryCase> c;
  c.push_back({"neg", [](const Tensor& x) { return neg(x); }, [](double x) { return -x; }, -5, 5});
  c.push_back({"exp", [](const Tensor& x) { return exp(x); }, [](double x) { return std::exp(x); },
               -10, 10});
  c.push_back({"log", [](const Tensor& x) { return log(x); }, [](double x) { return std::log(x); },
               0.01, 20});
  c.push_back({"log1p", [](const Tensor& x) { return log1p(x); },
               [](double x) { return std::log1p(x); }, -0.9, 20});
  c.push_back({"expm1", [](const Tensor& x) { return expm1(x); },
               [](double x) { return std::expm1(x); }, -5, 5});
  c.push_back({"sqrt", [](const Tensor& x) { return sqrt(x); },
               [](double x) { return std::sqrt(x); }, 0, 20});
  c.push_back({"rsqrt", [](const Tensor& x) { return rsqrt(x); },
               [](double x) { return 1 / std::sqrt(x); }, 0.01, 20});
  c.push_back({"abs", [](const Tensor& x) { return abs(x); }, [](double x) { return std::fabs(x); },
               -5, 5});
  c.push_back({"sign", [](const Tensor& x) { return sign(x); },
               [](double x) { return x > 0   ? 1.0
                                     : x < 0 ? -1.0
                                             : 0.0; }, -3, 3, true});
  c.push_back({"sign(nonint)", [](const Tensor& x) { return sign(x); },
               [](double x) { return x > 0   ? 1.0
                                     : x < 0 ? -1.0
                                             : 0.0; }, -3, 3});
  c.push_back({"sin", [](const Tensor& x) { return sin(x); }, [](double x) { return std::sin(x); },
               -10, 10});
  c.push_back({"cos", [](const Tensor& x) { return cos(x); }, [](double x) { return std::cos(x); },
               -10, 10});
  c.push_back({"tanh", [](const Tensor& x) { return tanh(x); },
               [](double x) { return std::tanh(x); }, -6, 6});
  c.push_back({"sigmoid", [](const Tensor& x) { return sigmoid(x); }, sigmoid_ref, -20, 20});
  c.push_back(
      {"erf", [](const Tensor& x) { return erf(x); }, [](double x) { return std::erf(x); }, -4, 4});
  for (double p : {2.0, 0.5, -1.5, 2.5, 0.0, 1.0})
    c.push_back({"pow(x, " + fmt(p) + ")", [p](const Tensor& x) { return pow(x, p); },
                 [p](double x) { return std::pow(x, p); }, 0.1, 5});
  c.push_back({"pow(x, 3) on negatives", [](const Tensor& x) { return pow(x, 3.0); },
               [](double x) { return x * x * x; }, -3, 3});
  c.push_back({"pow(x, 2) on negatives", [](const Tensor& x) { return pow(x, 2.0); },
               [](double x) { return x * x; }, -3, 3});
  return c;
}

std::vector<UnaryCase> composite_cases() {
  std::vector<UnaryCase> c;
  c.push_back(
      {"square", [](const Tensor& x) { return square(x); }, [](double x) { return x * x; }, -5, 5});
  c.push_back({"relu", [](const Tensor& x) { return relu(x); },
               [](double x) { return x > 0 ? x : 0.0; }, -5, 5});
  c.push_back({"relu(int)", [](const Tensor& x) { return relu(x); },
               [](double x) { return x > 0 ? x : 0.0; }, -3, 3, true});
  c.push_back({"silu", [](const Tensor& x) { return silu(x); },
               [](double x) { return x * sigmoid_ref(x); }, -8, 8});
  c.push_back({"silu_grad", [](const Tensor& x) { return silu_grad(x); },
               [](double x) {
                 const double s = sigmoid_ref(x);
                 return s * (1 + x * (1 - s));
               },
               -8, 8});
  c.push_back({"silu_grad2", [](const Tensor& x) { return silu_grad2(x); },
               [](double x) {
                 const double s = sigmoid_ref(x);
                 return s * (1 - s) * (2 + x * (1 - 2 * s));
               },
               -8, 8});
  c.push_back({"softplus", [](const Tensor& x) { return softplus(x); }, softplus_ref, -30, 30});
  c.push_back({"log_sigmoid", [](const Tensor& x) { return log_sigmoid(x); },
               [](double x) { return -softplus_ref(-x); }, -30, 30});
  c.push_back({"elu(alpha 1.3)", [](const Tensor& x) { return elu(x, 1.3); },
               [](double x) { return x > 0 ? x : 1.3 * std::expm1(x); }, -5, 5});
  c.push_back({"elu(default)", [](const Tensor& x) { return elu(x); },
               [](double x) { return x > 0 ? x : std::expm1(x); }, -5, 5});
  c.push_back({"gelu(erf)", [](const Tensor& x) { return gelu(x); },
               [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }, -5, 5});
  c.push_back({"gelu(tanh)", [](const Tensor& x) { return gelu(x, true); },
               [](double x) {
                 return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
               },
               -5, 5});
  c.push_back({"clamp(-0.5, 0.7)", [](const Tensor& x) { return clamp(x, -0.5, 0.7); },
               [](double x) { return std::min(std::max(x, -0.5), 0.7); }, -2, 2});
  c.push_back({"clamp at the bounds", [](const Tensor& x) { return clamp(x, -1.0, 1.0); },
               [](double x) { return std::min(std::max(x, -1.0), 1.0); }, -3, 3, true});
  return c;
}

void run_elementwise(const std::vector<UnaryCase>& cases, DType dt, Tol tol) {
  uint64_t seed = 100;
  for (const UnaryCase& c : cases) {
    for (const Input& in : layouts(c.lo, c.hi, dt, ++seed, c.snap)) {
      INFO(c.name << " " << dtype_name(dt) << " on " << in.layout);
      REQUIRE(in.t.is_contiguous() == in.contiguous);
      const Tensor y = c.op(in.t);
      CHECK(y.dtype() == dt);
      CHECK(y.shape() == in.t.shape());
      Vec want;
      for (double x : in.vals) want.push_back(c.ref(x));
      CHECK(close_report(y.to_vector(), want, tol.rtol, tol.atol) == "");
    }
  }
}

// Units in the last place between a and b (NaN matches NaN).
template <class T>
int64_t ulp_distance(T a, T b) {
  if (a == b) return 0;
  if (std::isnan(a) || std::isnan(b))
    return std::isnan(a) && std::isnan(b) ? 0 : std::numeric_limits<int64_t>::max();
  using I = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  I ia, ib;
  std::memcpy(&ia, &a, sizeof a);
  std::memcpy(&ib, &b, sizeof b);
  auto lin = [](I i) {
    return i < 0 ? static_cast<long double>(std::numeric_limits<I>::min()) - i
                 : static_cast<long double>(i);
  };
  const long double d = lin(ia) - lin(ib);
  return static_cast<int64_t>(std::min<long double>(d < 0 ? -d : d, 9e18L));
}

// Zeros, subnormals, extremes, infinities, NaN and the thresholds of the packet fast paths.
template <class T>
std::vector<T> special_values() {
  using L = std::numeric_limits<T>;
  return {T(0),
          T(-0.0),
          L::denorm_min(),
          -L::denorm_min(),
          L::min() / T(4),
          -L::min() / T(4),
          L::min(),
          -L::min(),
          L::max(),
          -L::max(),
          L::infinity(),
          -L::infinity(),
          L::quiet_NaN(),
          T(1),
          T(-1),
          T(0.5),
          T(2),
          T(1e-30),
          T(-1e-30),
          T(30),
          T(-30),
          T(88),
          T(-88),
          T(-104),
          T(700),
          T(-750),
          T(1e30),
          T(-1e30),
          T(3.5),
          T(-3.5)};
}

// ---- reference reductions over axes of a row-major tensor --------------------------------
enum class Red { sum, max, min, mean };
Vec ref_reduce(const Vec& x, const Dims& shape, Dims axes, bool keepdim, Red op, Dims* out_shape) {
  const int r = static_cast<int>(shape.size());
  if (axes.empty())
    for (int d = 0; d < r; ++d) axes.push_back(d);
  for (int64_t& a : axes)
    if (a < 0) a += r;
  std::vector<bool> red(r, false);
  for (int64_t a : axes) red[a] = true;
  Dims kept, os;
  for (int d = 0; d < r; ++d) {
    kept.push_back(red[d] ? 1 : shape[d]);
    if (!red[d] || keepdim) os.push_back(red[d] ? 1 : shape[d]);
  }
  const int64_t n = numel(kept);
  Vec acc(n, op == Red::max ? -INFINITY : op == Red::min ? INFINITY : 0.0);
  std::vector<int64_t> count(n, 0);
  for_each_index(shape, [&](const Dims& i) {
    Dims k = i;
    for (int d = 0; d < r; ++d)
      if (red[d]) k[d] = 0;
    const int64_t o = flat_index(k, kept);
    const double v = x[flat_index(i, shape)];
    if (op == Red::max) {
      acc[o] = std::max(acc[o], v);
    } else if (op == Red::min) {
      acc[o] = std::min(acc[o], v);
    } else {
      acc[o] += v;
    }
    ++count[o];
  });
  if (op == Red::mean)
    for (int64_t o = 0; o < n; ++o) acc[o] /= static_cast<double>(count[o]);
  *out_shape = os;
  return acc;
}

// Naive batched matmul with broadcast batch axes; both operands rank >= 2.
Vec ref_matmul(const Vec& a, const Dims& as, const Vec& b, const Dims& bs, Dims* out_shape) {
  const int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  REQUIRE(bs[bs.size() - 2] == k);
  Dims ba(as.begin(), as.end() - 2), bb(bs.begin(), bs.end() - 2);
  const size_t r = std::max(ba.size(), bb.size());
  Dims batch(r, 1);
  for (size_t i = 0; i < r; ++i) {
    const int64_t da = i + ba.size() >= r ? ba[i + ba.size() - r] : 1;
    const int64_t db = i + bb.size() >= r ? bb[i + bb.size() - r] : 1;
    batch[i] = std::max(da, db);
  }
  Vec out;
  for_each_index(batch, [&](const Dims& bi) {
    const int64_t oa = ba.empty() ? 0 : bcast_index(bi, ba),
                  ob = bb.empty() ? 0 : bcast_index(bi, bb);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        long double s = 0;
        for (int64_t p = 0; p < k; ++p)
          s += static_cast<long double>(a[oa * m * k + i * k + p]) * b[ob * k * n + p * n + j];
        out.push_back(static_cast<double>(s));
      }
  });
  Dims os = batch;
  os.push_back(m);
  os.push_back(n);
  *out_shape = os;
  return out;
}

}  // namespace

// ============================================================================================
// Unary math
// ============================================================================================

TEMPLATE_TEST_CASE("unary ops match <cmath> on SIMD, strided and threaded layouts",
                   "[values][unary]", float, double) {
  const DType dt = dtype_v<TestType>;
  run_elementwise(unary_cases(), dt, unary_tol(dt));
}

TEST_CASE("unary ops on int64: neg, abs, sign", "[values][unary]") {
  const std::vector<int64_t> v = {-7, -1, 0, 1, 3, 4000000000000LL, -4000000000000LL};
  const Tensor x = from_indices(v, {7});
  CHECK(neg(x).dtype() == DType::i64);
  CHECK(neg(x).values<int64_t>() ==
        std::vector<int64_t>{7, 1, 0, -1, -3, -4000000000000LL, 4000000000000LL});
  CHECK(abs(x).values<int64_t>() ==
        std::vector<int64_t>{7, 1, 0, 1, 3, 4000000000000LL, 4000000000000LL});
  CHECK(sign(x).values<int64_t>() == std::vector<int64_t>{-1, -1, 0, 1, 1, 1, -1});
}

TEST_CASE("unary special values: NaN, infinities and zeros", "[values][unary]") {
  const double inf = INFINITY, nan = NAN;
  const Vec in = {0.0, -0.0, inf,  -inf, nan,    1.0,     -1.0, 2.0,
                  0.5, 3.0,  -2.5, 0.25, 1e-300, -1e-300, 10.0, 1.5};
  for (DType dt : {DType::f32, DType::f64}) {
    const Tensor x = from_vector(in, {16}, dt);  // 16 elements: the SIMD body covers all of them
    INFO(dtype_name(dt));
    const Vec xs = rounded(in, dt);
    auto ref = [&](double (*f)(double)) {
      Vec r;
      for (double v : xs) r.push_back(f(v));
      return r;
    };
    const double tiny =
        dt == DType::f32 ? std::numeric_limits<float>::min() : std::numeric_limits<double>::min();
    // exp(-inf) is exactly 0.
    CHECK(close_report(exp(x).to_vector(), ref([](double v) { return std::exp(v); }), 2e-6, 0) ==
          "");
    CHECK(close_report(abs(x).to_vector(), ref([](double v) { return std::fabs(v); }), 0, 0) == "");
    CHECK(close_report(tanh(x).to_vector(), ref([](double v) { return std::tanh(v); }), 2e-6,
                       tiny) == "");
    CHECK(close_report(sigmoid(x).to_vector(), ref(sigmoid_ref), 2e-6, tiny) == "");
    CHECK(close_report(sign(x).to_vector(),
                       ref([](double v) { return v > 0   ? 1.0
                                                 : v < 0 ? -1.0
                                                         : v; }), 0, 0) == "");
    // sqrt(-1) and log(-1) are NaN, log(0) is -inf, rsqrt(0) is +inf.
    const Tensor neg1 =
        from_vector({-1, 0, 4, -0.0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13}, {16}, dt);
    const Vec s = sqrt(neg1).to_vector(), l = log(neg1).to_vector(), rs = rsqrt(neg1).to_vector();
    CHECK(std::isnan(s[0]));
    CHECK(s[2] == 2.0);
    CHECK(std::isnan(l[0]));
    CHECK(l[1] == -inf);
    CHECK(rs[1] == inf);
    CHECK(rs[2] == 0.5);
  }
}

TEST_CASE("composite elementwise ops match references", "[values][composite]") {
  for (DType dt : {DType::f32, DType::f64})
    run_elementwise(composite_cases(), dt, composite_tol(dt));
}

TEST_CASE("softmax, log_softmax and logsumexp match references, stably", "[values][composite]") {
  for (DType dt : {DType::f32, DType::f64}) {
    Vec v = rounded(uniform_values(7 * 13, -5, 5, 42), dt);
    // A row of huge and widely spread values: naive exp would overflow.
    for (int64_t j = 0; j < 13; ++j)
      v[3 * 13 + j] = (j % 3 == 0 ? 1000.0 : j % 3 == 1 ? 998.5 : -1000.0);
    const Dims s = {7, 13};
    const Tol tol = composite_tol(dt);
    for (bool transposed : {false, true}) {
      const Tensor base = from_vector(v, {7, 13}, dt);
      const Tensor x = transposed ? transpose(base, 0, 1) : base;
      const Dims xs = transposed ? Dims{13, 7} : s;
      const Vec xv = transposed ? permuted(v, s, {1, 0}) : v;
      for (int axis : {0, 1, -1}) {
        INFO(dtype_name(dt) << (transposed ? " transposed" : "") << " axis " << axis);
        const int ax = axis < 0 ? axis + 2 : axis;
        // Reference per slice along ax, with the max subtracted.
        Vec lse_full(xv.size()), sm(xv.size()), lsm(xv.size());
        Vec lse_red;
        const int64_t outer = xs[1 - ax], len = xs[ax];
        Vec lse_by_outer(outer);
        for (int64_t o = 0; o < outer; ++o) {
          auto at = [&](int64_t i) { return ax == 1 ? o * xs[1] + i : i * xs[1] + o; };
          double mx = -INFINITY;
          for (int64_t i = 0; i < len; ++i) mx = std::max(mx, xv[at(i)]);
          double ssum = 0;
          for (int64_t i = 0; i < len; ++i) ssum += std::exp(xv[at(i)] - mx);
          const double lse = mx + std::log(ssum);
          lse_by_outer[o] = lse;
          for (int64_t i = 0; i < len; ++i) {
            lsm[at(i)] = xv[at(i)] - lse;
            sm[at(i)] = std::exp(xv[at(i)] - lse);
            lse_full[at(i)] = lse;
          }
        }
        const Tensor y = softmax(x, axis);
        CHECK(y.shape() == x.shape());
        // float32: x - lse near 1000 carries ulp(1000) = 6e-5 of absolute error into exp.
        CHECK(close_report(y.to_vector(), sm, dt == DType::f32 ? 2e-4 : tol.rtol, tol.atol) == "");
        // Each slice sums to 1.
        const Vec rs = sum(y, {axis}).to_vector();
        CHECK(close_report(rs, Vec(rs.size(), 1.0), dt == DType::f32 ? 1e-5 : 1e-13, 0) == "");
        CHECK(close_report(log_softmax(x, axis).to_vector(), lsm, tol.rtol,
                           dt == DType::f32 ? 2e-4 : 1e-12) == "");
        const Tensor l = logsumexp(x, {axis});
        CHECK(l.shape() == Shape{outer});
        CHECK(close_report(l.to_vector(), lse_by_outer, tol.rtol, tol.atol) == "");
        const Tensor lk = logsumexp(x, {axis}, true);
        CHECK(lk.shape() == (ax == 0 ? Shape{1, xs[1]} : Shape{xs[0], 1}));
        CHECK(close_report(lk.to_vector(), lse_by_outer, tol.rtol, tol.atol) == "");
      }
      // Over all axes.
      double mx = -INFINITY, ssum = 0;
      for (double t : xv) mx = std::max(mx, t);
      for (double t : xv) ssum += std::exp(t - mx);
      const Tensor all = logsumexp(x);
      CHECK(all.rank() == 0);
      CHECK(all.item() == Approx(mx + std::log(ssum)).epsilon(tol.rtol));
    }
  }
  // Rows of -inf stay -inf (not NaN); +inf stays +inf.
  const Tensor x = from_vector({-INFINITY, -INFINITY, 0.0, 1.0}, {2, 2}, DType::f64);
  const Vec l = logsumexp(x, {1}).to_vector();
  CHECK(l[0] == -INFINITY);
  CHECK(l[1] == Approx(1 + std::log1p(std::exp(-1.0))).epsilon(1e-14));
}

TEST_CASE("mean and var match references", "[values][composite][reduce]") {
  for (DType dt : {DType::f32, DType::f64}) {
    const Dims s = {4, 5, 6};
    const Vec v = rounded(uniform_values(120, -3, 3, 7), dt);
    const Tensor x = from_vector(v, shp(s), dt);
    const Tol tol = composite_tol(dt);
    for (const Dims& axes :
         {Dims{}, Dims{0}, Dims{1}, Dims{2}, Dims{0, 2}, Dims{-1, 0}, Dims{0, 1, 2}}) {
      for (bool keepdim : {false, true}) {
        Dims os;
        const Vec mu = ref_reduce(v, s, axes, keepdim, Red::mean, &os);
        INFO(dtype_name(dt) << " axes " << shp(axes).str() << " keepdim " << keepdim);
        const Tensor m = mean(x, shp(axes), keepdim);
        CHECK(m.shape() == shp(os));
        CHECK(close_report(m.to_vector(), mu, tol.rtol, tol.atol) == "");
        // var: sum of squared deviations from the kept mean over (n - correction).
        Dims ks;
        const Vec muk = ref_reduce(v, s, axes, true, Red::mean, &ks);
        Vec dev(v.size());
        for_each_index(s, [&](const Dims& i) {
          Dims k = i;
          for (size_t d = 0; d < 3; ++d)
            if (ks[d] == 1) k[d] = 0;
          const double t = v[flat_index(i, s)] - muk[flat_index(k, ks)];
          dev[flat_index(i, s)] = t * t;
        });
        Dims vs;
        const Vec ss = ref_reduce(dev, s, axes, keepdim, Red::sum, &vs);
        const int64_t n = numel(s) / numel(ks);
        for (int64_t corr : {0, 1}) {
          Vec want;
          for (double t : ss) want.push_back(t / static_cast<double>(n - corr));
          const Tensor vr = var(x, shp(axes), corr, keepdim);
          CHECK(vr.shape() == shp(vs));
          CHECK(close_report(vr.to_vector(), want, tol.rtol * 10, tol.atol) == "");
        }
      }
    }
  }
}

// ============================================================================================
// Binary ops, comparisons, where
// ============================================================================================

namespace {
struct BinCase {
  const char* name;
  std::function<Tensor(const Tensor&, const Tensor&)> op;
  std::function<double(double, double)> ref;
  bool positive = false;  // operands drawn from (0.5, 3) (div, pow)
  bool compare = false;
};
std::vector<BinCase> bin_cases() {
  return {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); },
       [](double a, double b) { return a + b; }},
      {"sub", [](const Tensor& a, const Tensor& b) { return a - b; },
       [](double a, double b) { return a - b; }},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); },
       [](double a, double b) { return a * b; }},
      {"div", [](const Tensor& a, const Tensor& b) { return a / b; },
       [](double a, double b) { return a / b; }, true},
      {"pow", [](const Tensor& a, const Tensor& b) { return pow(a, b); },
       [](double a, double b) { return std::pow(a, b); }, true},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); },
       [](double a, double b) { return std::max(a, b); }},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); },
       [](double a, double b) { return std::min(a, b); }},
      {"eq", [](const Tensor& a, const Tensor& b) { return eq(a, b); },
       [](double a, double b) { return double(a == b); }, false, true},
      {"ne", [](const Tensor& a, const Tensor& b) { return ne(a, b); },
       [](double a, double b) { return double(a != b); }, false, true},
      {"lt", [](const Tensor& a, const Tensor& b) { return a < b; },
       [](double a, double b) { return double(a < b); }, false, true},
      {"le", [](const Tensor& a, const Tensor& b) { return a <= b; },
       [](double a, double b) { return double(a <= b); }, false, true},
      {"gt", [](const Tensor& a, const Tensor& b) { return a > b; },
       [](double a, double b) { return double(a > b); }, false, true},
      {"ge", [](const Tensor& a, const Tensor& b) { return ge(a, b); },
       [](double a, double b) { return double(a >= b); }, false, true},
  };
}
}  // namespace

TEST_CASE("binary ops broadcast like NumPy and match references", "[values][binary]") {
  // Shape pairs: broadcasting in both directions, rank extension, identical shapes (SIMD
  // path), a large pair run threaded, and 0-d operands.
  const std::vector<std::pair<Dims, Dims>> shapes = {
      {{3, 1, 4}, {2, 1}}, {{2, 1}, {3, 1, 4}},      {{5, 4}, {4}},          {{1003}, {1003}},
      {{4, 1}, {1, 9}},    {{300, 200}, {200}},      {{300, 1}, {300, 200}}, {{}, {3, 2}},
      {{6}, {}},           {{2, 3, 1, 5}, {3, 4, 1}}};
  uint64_t seed = 500;
  for (DType dt : {DType::f32, DType::f64}) {
    for (const BinCase& c : bin_cases()) {
      for (const auto& [sa, sb] : shapes) {
        const double lo = c.positive ? 0.5 : -3, hi = c.positive ? 3 : 3;
        Vec a = rounded(uniform_values(numel(sa), lo, hi, ++seed), dt);
        Vec b = rounded(uniform_values(numel(sb), lo, hi, ++seed), dt);
        if (c.compare || c.name == std::string("maximum") || c.name == std::string("minimum")) {
          // Small integers so that ties occur.
          for (double& t : a) t = std::round(t);
          for (double& t : b) t = std::round(t);
        }
        INFO(c.name << " " << dtype_name(dt) << " " << shp(sa).str() << " with " << shp(sb).str());
        const Tensor y = c.op(from_vector(a, shp(sa), dt), from_vector(b, shp(sb), dt));
        Dims os(std::max(sa.size(), sb.size()), 1);
        for (size_t i = 0; i < os.size(); ++i) {
          const int64_t da = i + sa.size() >= os.size() ? sa[i + sa.size() - os.size()] : 1;
          const int64_t db = i + sb.size() >= os.size() ? sb[i + sb.size() - os.size()] : 1;
          os[i] = std::max(da, db);
        }
        CHECK(y.shape() == shp(os));
        CHECK(y.dtype() == (c.compare ? DType::b8 : dt));
        Vec want;
        for_each_index(os, [&](const Dims& i) {
          const double r = c.ref(a[bcast_index(i, sa)], b[bcast_index(i, sb)]);
          want.push_back(dt == DType::f32 && !c.compare ? static_cast<double>(static_cast<float>(r))
                                                        : r);
        });
        const Tol tol = c.name == std::string("pow") ? composite_tol(dt) : unary_tol(dt);
        CHECK(close_report(y.to_vector(), want, tol.rtol, tol.atol) == "");
      }
    }
  }
}

TEST_CASE("binary ops on strided views and with scalar operands", "[values][binary]") {
  for (DType dt : {DType::f32, DType::f64}) {
    INFO(dtype_name(dt));
    const Vec av = rounded(uniform_values(12 * 9, -2, 2, 1), dt),
              bv = rounded(uniform_values(9 * 12, 0.5, 2, 2), dt);
    const Tensor a = transpose(from_vector(av, {12, 9}, dt), 0, 1);  // [9,12], strides [1,9]
    const Tensor b = from_vector(bv, {9, 12}, dt);
    const Vec at = permuted(av, {12, 9}, {1, 0});
    auto ew = [&](auto f) {
      Vec r;
      for (size_t i = 0; i < at.size(); ++i) r.push_back(rounded({f(at[i], bv[i])}, dt)[0]);
      return r;
    };
    const Tol tol = unary_tol(dt);
    CHECK(close_report((a + b).to_vector(), ew([](double x, double y) { return x + y; }), tol.rtol,
                       tol.atol) == "");
    CHECK(close_report((b * a).to_vector(), ew([](double x, double y) { return x * y; }), tol.rtol,
                       tol.atol) == "");
    CHECK(close_report((a / b).to_vector(), ew([](double x, double y) { return x / y; }), tol.rtol,
                       tol.atol) == "");
    // Step-2 slices on both sides.
    const Tensor as = slice(from_vector(bv, {108}, dt), 0, 0, 108, 2),
                 bs = slice(from_vector(av, {108}, dt), 0, 1, 108, 2);
    Vec want;
    for (int i = 0; i < 54; ++i) want.push_back(rounded({bv[2 * i] - av[2 * i + 1]}, dt)[0]);
    CHECK(close_report((as - bs).to_vector(), want, tol.rtol, tol.atol) == "");

    // Scalar operands on either side.
    auto each = [&](auto f) {
      Vec r;
      for (double x : at) r.push_back(rounded({f(x)}, dt)[0]);
      return r;
    };
    CHECK(close_report((a + 2.5).to_vector(), each([](double x) { return x + 2.5; }), tol.rtol,
                       tol.atol) == "");
    CHECK(close_report((2.5 - a).to_vector(), each([](double x) { return 2.5 - x; }), tol.rtol,
                       tol.atol) == "");
    CHECK(close_report((a - 0.25).to_vector(), each([](double x) { return x - 0.25; }), tol.rtol,
                       tol.atol) == "");
    CHECK(close_report((a * 3.0).to_vector(), each([](double x) { return x * 3.0; }), tol.rtol,
                       tol.atol) == "");
    CHECK(close_report((-2.0 * a).to_vector(), each([](double x) { return -2.0 * x; }), tol.rtol,
                       tol.atol) == "");
    CHECK(close_report((a / 4.0).to_vector(), each([](double x) { return x / 4.0; }), tol.rtol,
                       tol.atol) == "");
    CHECK(close_report((1.0 / (a + 5.0)).to_vector(),
                       each([](double x) { return 1.0 / (x + 5.0); }), 1e-6, 0) == "");
    CHECK(close_report((-a).to_vector(), each([](double x) { return -x; }), 0, 0) == "");
    CHECK(close_report(cast(a > 0.5, dt).to_vector(),
                       each([](double x) { return double(x > 0.5); }), 0, 0) == "");
    CHECK(close_report(cast(a <= 0.5, dt).to_vector(),
                       each([](double x) { return double(x <= 0.5); }), 0, 0) == "");
    CHECK(close_report(cast(a < -1.0, dt).to_vector(),
                       each([](double x) { return double(x < -1.0); }), 0, 0) == "");
    CHECK(close_report(cast(a >= -1.0, dt).to_vector(),
                       each([](double x) { return double(x >= -1.0); }), 0, 0) == "");
    // A 0-d tensor operand and its result dtype.
    const Tensor s = scalar(1.5, dt);
    CHECK(s.rank() == 0);
    CHECK((a * s).shape() == a.shape());
    CHECK(close_report((a * s).to_vector(), each([](double x) { return x * 1.5; }), tol.rtol,
                       tol.atol) == "");
    CHECK((s + s).item() == 3.0);
  }
}

TEST_CASE("maximum/minimum propagate NaN; integer binary ops", "[values][binary]") {
  const Tensor a = from_vector({NAN, 1, 2, 3, -1, 5, 6, 7, 8, 9}, {10}, DType::f64);
  const Tensor b = from_vector({0, NAN, 1, 4, -1, 0, 0, 0, 0, 0}, {10}, DType::f64);
  const Vec mx = maximum(a, b).to_vector(), mn = minimum(a, b).to_vector();
  CHECK(std::isnan(mx[0]));
  CHECK(std::isnan(mx[1]));
  CHECK(std::isnan(mn[0]));
  CHECK(std::isnan(mn[1]));
  CHECK(mx[2] == 2);
  CHECK(mx[3] == 4);
  CHECK(mn[3] == 3);
  CHECK(mn[4] == -1);

  const Tensor i = from_indices({1, -2, 3, 40, 5, 6}, {2, 3});
  const Tensor j = from_indices({10, 20, -30}, {3});
  CHECK((i + j).dtype() == DType::i64);
  CHECK((i + j).values<int64_t>() == std::vector<int64_t>{11, 18, -27, 50, 25, -24});
  CHECK((i * j).values<int64_t>() == std::vector<int64_t>{10, -40, -90, 400, 100, -180});
  CHECK((i - j).values<int64_t>() == std::vector<int64_t>{-9, -22, 33, 30, -15, 36});
  CHECK(maximum(i, j).values<int64_t>() == std::vector<int64_t>{10, 20, 3, 40, 20, 6});
  CHECK(minimum(i, j).values<int64_t>() == std::vector<int64_t>{1, -2, -30, 10, 5, -30});
  CHECK(lt(i, j).values<bool>() == std::vector<bool>{true, true, false, false, true, false});
}

TEST_CASE("where selects with broadcasting", "[values][binary]") {
  for (DType dt : {DType::f32, DType::f64}) {
    const Dims sc = {3, 1, 4}, sa = {2, 1}, sb = {4};
    const Vec cv = uniform_values(12, -1, 1, 3), av = rounded(uniform_values(2, -5, 5, 4), dt),
              bv = rounded(uniform_values(4, -5, 5, 5), dt);
    Vec cb;
    for (double t : cv) cb.push_back(t > 0 ? 1.0 : 0.0);
    const Tensor cond = from_vector(cv, shp(sc), DType::f64) > 0.0;
    CHECK(cond.dtype() == DType::b8);
    const Tensor y = where(cond, from_vector(av, shp(sa), dt), from_vector(bv, shp(sb), dt));
    const Dims os = {3, 2, 4};
    CHECK(y.shape() == shp(os));
    CHECK(y.dtype() == dt);
    Vec want;
    for_each_index(os, [&](const Dims& i) {
      want.push_back(cb[bcast_index(i, sc)] != 0 ? av[bcast_index(i, sa)] : bv[bcast_index(i, sb)]);
    });
    CHECK(exact_report(y.to_vector(), want) == "");
    // where(cond, a, double)
    const Tensor a = from_vector(uniform_values(12, -5, 5, 6), shp(sc), dt);
    const Vec ay = a.to_vector();
    Vec want2;
    for (size_t i = 0; i < 12; ++i) want2.push_back(cb[i] != 0 ? ay[i] : -7.25);
    CHECK(exact_report(where(cond, a, -7.25).to_vector(), want2) == "");
  }
}

// ============================================================================================
// Reductions
// ============================================================================================

TEST_CASE("sum/max/min/mean over axis sets, keepdim, contiguous and strided", "[values][reduce]") {
  const std::vector<Dims> axis_sets = {{},     {0},    {1},    {2},    {-1},
                                       {0, 1}, {0, 2}, {1, 2}, {2, 0}, {0, 1, 2}};
  for (DType dt : {DType::f32, DType::f64}) {
    // Contiguous [3,4,5]; permuted view of [4,5,3]; step-2 slice of [3,10,5] on axis 1;
    // transposed view of [5,4,3] (axes 0 and 2 swapped).
    const Vec base = rounded(uniform_values(300, -4, 4, 77), dt);
    struct V {
      std::string name;
      Tensor t;
      Vec vals;
    };
    std::vector<V> views;
    {
      Vec v(base.begin(), base.begin() + 60);
      views.push_back({"contiguous [3,4,5]", from_vector(v, {3, 4, 5}, dt), v});
      views.push_back({"permute([4,5,3], {2,0,1})",
                       permute(from_vector(v, {4, 5, 3}, dt), {2, 0, 1}),
                       permuted(v, {4, 5, 3}, {2, 0, 1})});
      views.push_back({"transpose([5,4,3], 0, 2)", transpose(from_vector(v, {5, 4, 3}, dt), 0, 2),
                       permuted(v, {5, 4, 3}, {2, 1, 0})});
    }
    {
      Vec v(base.begin(), base.begin() + 150), s;
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 1; j < 10; j += 2)
          for (int64_t k = 0; k < 5; ++k) s.push_back(v[i * 50 + j * 5 + k]);
      // [3,5,5] but fix the shape to [3,4,5] by slicing j in [1, 9).
      Vec s4;
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 4; ++j)
          for (int64_t k = 0; k < 5; ++k) s4.push_back(s[i * 25 + j * 5 + k]);
      views.push_back({"slice([3,10,5], axis 1, 1:9:2)",
                       slice(from_vector(v, {3, 10, 5}, dt), 1, 1, 9, 2), s4});
    }
    for (const V& view : views) {
      REQUIRE(view.t.shape() == Shape{3, 4, 5});
      for (const Dims& axes : axis_sets)
        for (bool keepdim : {false, true}) {
          INFO(dtype_name(dt) << " " << view.name << " axes " << shp(axes).str() << " keepdim "
                              << keepdim);
          const Shape ax = shp(axes);
          const Dims s = {3, 4, 5};
          Dims os;
          const Tol tol = reduce_tol(dt);
          const Vec ws = ref_reduce(view.vals, s, axes, keepdim, Red::sum, &os);
          const Tensor ys = sum(view.t, ax, keepdim);
          CHECK(ys.shape() == shp(os));
          CHECK(ys.dtype() == dt);
          CHECK(close_report(ys.to_vector(), ws, tol.rtol, tol.atol) == "");
          const Tensor ymax = max(view.t, ax, keepdim), ymin = min(view.t, ax, keepdim);
          CHECK(ymax.shape() == shp(os));
          CHECK(exact_report(ymax.to_vector(),
                             ref_reduce(view.vals, s, axes, keepdim, Red::max, &os)) == "");
          CHECK(exact_report(ymin.to_vector(),
                             ref_reduce(view.vals, s, axes, keepdim, Red::min, &os)) == "");
          CHECK(close_report(mean(view.t, ax, keepdim).to_vector(),
                             ref_reduce(view.vals, s, axes, keepdim, Red::mean, &os), tol.rtol,
                             tol.atol) == "");
        }
    }
  }
}

TEST_CASE("reductions: large (threaded) inputs, int64, 0-d and size-1 axes", "[values][reduce]") {
  for (DType dt : {DType::f32, DType::f64}) {
    INFO(dtype_name(dt));
    const Dims s = {300, 500};
    const Vec v = rounded(uniform_values(150000, -1, 1, 8), dt);
    const Tensor x = from_vector(v, shp(s), dt);
    for (const Dims& axes : {Dims{1}, Dims{0}, Dims{}}) {
      INFO("axes " << shp(axes).str());
      // Rounding error of a float sum grows with the count of summed values.
      const double count = axes.empty() ? 150000.0 : static_cast<double>(s[axes[0]]);
      const double rt = dt == DType::f32 ? 1e-5 : 1e-12,
                   at = (dt == DType::f32 ? 2e-7 : 1e-15) * count;
      Dims os;
      CHECK(close_report(sum(x, shp(axes)).to_vector(),
                         ref_reduce(v, s, axes, false, Red::sum, &os), rt, at) == "");
      CHECK(exact_report(max(x, shp(axes)).to_vector(),
                         ref_reduce(v, s, axes, false, Red::max, &os)) == "");
      CHECK(exact_report(min(x, shp(axes)).to_vector(),
                         ref_reduce(v, s, axes, false, Red::min, &os)) == "");
      // The same reduction of the transposed view.
      const Dims perm_axes = axes.empty() ? Dims{} : Dims{1 - axes[0]};
      CHECK(close_report(sum(transpose(x, 0, 1), shp(perm_axes)).to_vector(),
                         ref_reduce(v, s, axes, false, Red::sum, &os), rt, at) == "");
      CHECK(exact_report(max(transpose(x, 0, 1), shp(perm_axes)).to_vector(),
                         ref_reduce(v, s, axes, false, Red::max, &os)) == "");
    }
  }
  // int64 reductions are exact.
  const Tensor i = from_indices({5, -3, 7, 2, 100, -50}, {2, 3});
  CHECK(sum(i).dtype() == DType::i64);
  CHECK(sum(i).values<int64_t>() == std::vector<int64_t>{61});
  CHECK(sum(i, {0}).values<int64_t>() == std::vector<int64_t>{7, 97, -43});
  CHECK(max(i, {1}).values<int64_t>() == std::vector<int64_t>{7, 100});
  CHECK(min(i, {1}, true).values<int64_t>() == std::vector<int64_t>{-3, -50});
  CHECK(min(i, {1}, true).shape() == Shape{2, 1});
  // 0-d input and size-1 axes.
  const Tensor z = scalar(2.5, DType::f64);
  CHECK(sum(z).item() == 2.5);
  CHECK(sum(z).rank() == 0);
  CHECK(max(z).item() == 2.5);
  const Tensor one = from_vector({1, 2, 3}, {1, 3, 1}, DType::f64);
  CHECK(sum(one, {0, 2}).to_vector() == Vec{1, 2, 3});
  CHECK(sum(one, {1}, true).to_vector() == Vec{6});
  CHECK(sum(one, {1}, true).shape() == Shape{1, 1, 1});
  // A sum over an empty axis is 0.
  const Tensor e = zeros({3, 0}, DType::f64);
  CHECK(sum(e, {1}).to_vector() == Vec{0, 0, 0});
  // max ignores nothing: NaN propagates.
  CHECK(std::isnan(max(from_vector({1, NAN, 3}, {3}, DType::f64)).item()));
}

// ============================================================================================
// Matmul
// ============================================================================================

namespace {
void check_matmul(const Tensor& a, const Vec& av, const Dims& as, const Tensor& b, const Vec& bv,
                  const Dims& bs, DType dt) {
  Dims os;
  const Vec want = ref_matmul(av, as, bv, bs, &os);
  const Tensor y = matmul(a, b);
  CHECK(y.shape() == shp(os));
  CHECK(y.dtype() == dt);
  const int64_t k = as.back();
  const double rt = dt == DType::f32 ? 1e-5 : 1e-12,
               at = (dt == DType::f32 ? 2e-6 : 1e-14) * static_cast<double>(k);
  CHECK(close_report(y.to_vector(), want, rt, at) == "");
}
}  // namespace

// Both float32 GEMM libraries of the CPU backend (cpu_options.hpp), normal and transposed
// operands, against the triple loop; the choice is restored afterwards.
TEST_CASE("float32 matmul is right with either CPU GEMM library", "[values][matmul]") {
  const cpu::GemmLibrary before = cpu::gemm_library();
  for (cpu::GemmLibrary lib : {cpu::GemmLibrary::onednn, cpu::GemmLibrary::blis}) {
    cpu::set_gemm_library(lib);
    REQUIRE(cpu::gemm_library() == lib);
    uint64_t seed = 950;
    auto mk = [&](const Dims& s) {
      return rounded(uniform_values(numel(s), -1, 1, ++seed), DType::f32);
    };
    for (const auto& [m, k, n] : std::vector<std::array<int64_t, 3>>{
             {512, 128, 128}, {128, 512, 128}, {64, 48, 32}, {33, 17, 70}}) {
      INFO((lib == cpu::GemmLibrary::blis ? "blis" : "onednn")
           << " m=" << m << " k=" << k << " n=" << n);
      const Vec av = mk({m, k}), bv = mk({k, n}), bt = permuted(bv, {k, n}, {1, 0}),
                at = permuted(av, {m, k}, {1, 0});
      const Tensor a = from_vector(av, {m, k}, DType::f32), b = from_vector(bv, {k, n}, DType::f32);
      check_matmul(a, av, {m, k}, b, bv, {k, n}, DType::f32);
      check_matmul(from_vector(at, {k, m}, DType::f32).mT(), av, {m, k},
                   from_vector(bt, {n, k}, DType::f32).mT(), bv, {k, n}, DType::f32);
    }
  }
  cpu::set_gemm_library(before);
}

TEST_CASE("matmul matches a naive triple loop", "[values][matmul]") {
  for (DType dt : {DType::f32, DType::f64}) {
    uint64_t seed = 900;
    auto mk = [&](const Dims& s) { return rounded(uniform_values(numel(s), -1, 1, ++seed), dt); };
    const std::vector<std::pair<Dims, Dims>> cases = {
        {{3, 4}, {4, 5}},           {{1, 4}, {4, 1}},       {{7, 1}, {1, 6}},
        {{2, 3, 4, 5}, {5, 6}},     {{5, 6}, {2, 3, 6, 4}}, {{1, 3, 4}, {2, 4, 5}},
        {{2, 1, 3, 4}, {5, 4, 6}},  {{4, 3, 8}, {4, 8, 2}}, {{300, 300}, {300, 300}},
        {{4, 64, 64}, {4, 64, 64}}, {{257, 130}, {130, 3}}};
    for (const auto& [as, bs] : cases) {
      INFO(dtype_name(dt) << " " << shp(as).str() << " x " << shp(bs).str());
      const Vec av = mk(as), bv = mk(bs);
      check_matmul(from_vector(av, shp(as), dt), av, as, from_vector(bv, shp(bs), dt), bv, bs, dt);
    }
    // Transposed operands (column-major views), alone and together, and large.
    for (int64_t n : {5, 300}) {
      const int64_t m = n == 5 ? 3 : 300, k = n == 5 ? 4 : 300;
      INFO(dtype_name(dt) << " transposed operands, m=" << m << " k=" << k << " n=" << n);
      const Vec at = mk({k, m}), bt = mk({n, k});
      const Vec av = permuted(at, {k, m}, {1, 0}), bv = permuted(bt, {n, k}, {1, 0});
      const Vec ac = mk({m, k}), bc = mk({k, n});
      const Tensor aT = from_vector(at, {k, m}, dt).mT(), bT = from_vector(bt, {n, k}, dt).mT();
      REQUIRE_FALSE(aT.is_contiguous());
      check_matmul(aT, av, {m, k}, from_vector(bc, {k, n}, dt), bc, {k, n}, dt);
      check_matmul(from_vector(ac, {m, k}, dt), ac, {m, k}, bT, bv, {k, n}, dt);
      check_matmul(aT, av, {m, k}, bT, bv, {k, n}, dt);
    }
    // Batched transposed view, row-strided (slice on the row axis) and column-strided operands,
    // and an expanded (stride-0) operand.
    {
      const Vec bt = mk({2, 6, 5});  // [2,6,5] -> mT -> [2,5,6]
      const Vec av = mk({2, 3, 5});
      const Vec bv = permuted(bt, {2, 6, 5}, {0, 2, 1});
      INFO(dtype_name(dt) << " batched mT");
      check_matmul(from_vector(av, {2, 3, 5}, dt), av, {2, 3, 5},
                   from_vector(bt, {2, 6, 5}, dt).mT(), bv, {2, 5, 6}, dt);
    }
    {
      const Vec big = mk({8, 4});
      Vec rows, cols;
      for (int64_t i = 0; i < 8; i += 2)
        for (int64_t j = 0; j < 4; ++j) rows.push_back(big[i * 4 + j]);
      const Vec bw = mk({4, 8});
      for (int64_t i = 0; i < 4; ++i)
        for (int64_t j = 0; j < 8; j += 2) cols.push_back(bw[i * 8 + j]);
      INFO(dtype_name(dt) << " slice-strided operands");
      check_matmul(slice(from_vector(big, {8, 4}, dt), 0, 0, 8, 2), rows, {4, 4},
                   slice(from_vector(bw, {4, 8}, dt), 1, 0, 8, 2), cols, {4, 4}, dt);
      const Vec row = mk({1, 4});
      Vec ex;
      for (int r = 0; r < 3; ++r) ex.insert(ex.end(), row.begin(), row.end());
      check_matmul(expand(from_vector(row, {1, 4}, dt), {3, 4}), ex, {3, 4},
                   from_vector(cols, {4, 4}, dt), cols, {4, 4}, dt);
    }
    // 1-D operands: vector.vector (0-d), matrix.vector, vector.matrix, vector.batch, batch.vector.
    {
      INFO(dtype_name(dt) << " 1-D operands");
      const Vec u = mk({4}), w = mk({4}), M = mk({3, 4}), N = mk({4, 5}), B = mk({2, 4, 5}),
                C = mk({2, 3, 4});
      const double rt = dt == DType::f32 ? 1e-5 : 1e-13, at = dt == DType::f32 ? 1e-5 : 1e-14;
      const Tensor tu = from_vector(u, {4}, dt), tw = from_vector(w, {4}, dt);
      const Tensor d = matmul(tu, tw);
      CHECK(d.rank() == 0);
      double dd = 0;
      for (int i = 0; i < 4; ++i) dd += u[i] * w[i];
      CHECK(d.item() == Approx(dd).epsilon(rt).margin(at));
      Dims os;
      const Tensor mv = matmul(from_vector(M, {3, 4}, dt), tw);
      CHECK(mv.shape() == Shape{3});
      CHECK(close_report(mv.to_vector(), ref_matmul(M, {3, 4}, w, {4, 1}, &os), rt, at) == "");
      const Tensor vm = matmul(tu, from_vector(N, {4, 5}, dt));
      CHECK(vm.shape() == Shape{5});
      CHECK(close_report(vm.to_vector(), ref_matmul(u, {1, 4}, N, {4, 5}, &os), rt, at) == "");
      const Tensor vb = matmul(tu, from_vector(B, {2, 4, 5}, dt));
      CHECK(vb.shape() == Shape{2, 5});
      CHECK(close_report(vb.to_vector(), ref_matmul(u, {1, 4}, B, {2, 4, 5}, &os), rt, at) == "");
      const Tensor bvv = matmul(from_vector(C, {2, 3, 4}, dt), tw);
      CHECK(bvv.shape() == Shape{2, 3});
      CHECK(close_report(bvv.to_vector(), ref_matmul(C, {2, 3, 4}, w, {4, 1}, &os), rt, at) == "");
    }
    // k = 0 gives zeros; m = 0 gives an empty result.
    CHECK(matmul(zeros({3, 0}, dt), zeros({0, 4}, dt)).to_vector() == Vec(12, 0.0));
    CHECK(matmul(zeros({0, 3}, dt), ones({3, 4}, dt)).shape() == Shape{0, 4});
  }
}

// ============================================================================================
// Movement and indexing
// ============================================================================================

// The three convolution ops against direct loops: y = conv(x, w), its adjoint in x applied to
// g (dx), and its adjoint in w (dw), all from one loop over every (output, tap) pair. float32
// runs through oneDNN where it is built in, float64 through im2col + GEMM.
TEST_CASE("conv2d, conv_transpose2d and conv2d_weight_grad match direct loops", "[values][conv]") {
  struct Geo {
    int64_t N, C, H, W, O, kh, kw, s, p;
  };
  const std::vector<Geo> geos = {{2, 3, 7, 6, 4, 3, 3, 1, 1},  {1, 2, 5, 6, 3, 2, 3, 2, 1},
                                 {3, 4, 6, 6, 5, 1, 1, 1, 0},  {2, 2, 9, 7, 3, 3, 3, 2, 0},
                                 {1, 1, 4, 4, 1, 3, 3, 1, 2},  {4, 32, 8, 8, 64, 3, 3, 1, 1},
                                 {2, 96, 4, 4, 32, 3, 3, 1, 1}};
  for (DType dt : {DType::f32, DType::f64}) {
    uint64_t seed = 1500;
    for (const Geo& q : geos) {
      const int64_t Ho = (q.H + 2 * q.p - q.kh) / q.s + 1, Wo = (q.W + 2 * q.p - q.kw) / q.s + 1;
      const Dims xs{q.N, q.C, q.H, q.W}, ws{q.O, q.C, q.kh, q.kw}, ys{q.N, q.O, Ho, Wo};
      const Vec xv = rounded(uniform_values(numel(xs), -1, 1, ++seed), dt),
                wv = rounded(uniform_values(numel(ws), -1, 1, ++seed), dt),
                gv = rounded(uniform_values(numel(ys), -1, 1, ++seed), dt);
      Vec y(static_cast<size_t>(numel(ys))), dx(xv.size()), dw(wv.size());
      for (int64_t n = 0; n < q.N; ++n)
        for (int64_t o = 0; o < q.O; ++o)
          for (int64_t h = 0; h < Ho; ++h)
            for (int64_t w = 0; w < Wo; ++w)
              for (int64_t c = 0; c < q.C; ++c)
                for (int64_t i = 0; i < q.kh; ++i)
                  for (int64_t j = 0; j < q.kw; ++j) {
                    const int64_t hh = h * q.s + i - q.p, ww = w * q.s + j - q.p;
                    if (hh < 0 || hh >= q.H || ww < 0 || ww >= q.W) continue;
                    const auto yi = static_cast<size_t>(((n * q.O + o) * Ho + h) * Wo + w),
                               xi = static_cast<size_t>(((n * q.C + c) * q.H + hh) * q.W + ww),
                               wi = static_cast<size_t>(((o * q.C + c) * q.kh + i) * q.kw + j);
                    y[yi] += wv[wi] * xv[xi];
                    dx[xi] += gv[yi] * wv[wi];
                    dw[wi] += gv[yi] * xv[xi];
                  }
      const Tensor x = from_vector(xv, shp(xs), dt), w = from_vector(wv, shp(ws), dt),
                   g = from_vector(gv, shp(ys), dt);
      // A channel-last copy viewed as NCHW: the ops must accept non-contiguous operands.
      const Tensor x_strided = permute(contiguous(permute(x, {0, 2, 3, 1})), {0, 3, 1, 2});
      if (q.C > 1) REQUIRE_FALSE(x_strided.is_contiguous());
      const double tol = dt == DType::f32 ? 2e-5 : 1e-12;
      auto close = [&](const Tensor& got, const Vec& want) {
        const Vec v = got.to_vector();
        REQUIRE(v.size() == want.size());
        double worst = 0, scale = 1;
        for (size_t i = 0; i < v.size(); ++i) {
          worst = std::max(worst, std::abs(v[i] - want[i]));
          scale = std::max(scale, std::abs(want[i]));
        }
        return worst / scale;
      };
      INFO(dtype_name(dt) << " x " << shp(xs).str() << " w " << shp(ws).str() << " stride " << q.s
                          << " padding " << q.p);
      CHECK(close(conv2d(x, w, q.s, q.p), y) < tol);
      CHECK(close(conv2d(x_strided, w, q.s, q.p), y) < tol);
      CHECK(close(conv_transpose2d(g, w, q.s, q.p, q.H, q.W), dx) < tol);
      CHECK(close(conv2d_weight_grad(x, g, q.kh, q.kw, q.s, q.p), dw) < tol);
      CHECK(close(conv2d_weight_grad(x_strided, g, q.kh, q.kw, q.s, q.p), dw) < tol);
    }
  }
}

TEST_CASE("convolution ops reject bad shapes with the op and shapes named", "[values][conv]") {
  const Tensor x = zeros({2, 3, 5, 5}), w = zeros({4, 3, 3, 3});
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const ShapeError& e) {
      return std::string(e.what());
    }
    return std::string("no ShapeError");
  };
  CHECK_THAT(
      message([&] {
        conv2d(x, zeros({4, 2, 3, 3}));
      }),
      Catch::Contains("conv2d") && Catch::Contains("[2,3,5,5]") && Catch::Contains("channels"));
  CHECK_THAT(message([&] {
               conv2d(x, zeros({4, 3, 7, 7}));
             }),
             Catch::Contains("conv2d") && Catch::Contains("does not fit"));
  CHECK_THAT(message([&] {
               conv2d(zeros({3, 5, 5}), w);
             }),
             Catch::Contains("conv2d") && Catch::Contains("rank 4"));
  CHECK_THAT(message([&] {
               conv_transpose2d(zeros({2, 4, 3, 3}), w, 1, 1, 5, 5);
             }),
             Catch::Contains("conv_transpose2d") && Catch::Contains("does not match"));
  CHECK_THAT(message([&] {
               conv2d_weight_grad(x, zeros({3, 4, 5, 5}), 3, 3, 1, 1);
             }),
             Catch::Contains("conv2d_weight_grad") && Catch::Contains("batch"));
  CHECK_THROWS_AS(conv2d(x, w, 0, 1), ValueError);
  CHECK_THROWS_AS(conv2d(x, zeros({4, 3, 3, 3}, DType::f64)), DTypeError);
}

TEST_CASE("reshape, permute, transpose, expand, squeeze, unsqueeze, flatten", "[values][shape]") {
  const Vec v = uniform_values(24, -1, 1, 11);
  const Tensor x = from_vector(v, {2, 3, 4}, DType::f64);

  const Tensor r = reshape(x, {4, 6});
  CHECK(r.shape() == Shape{4, 6});
  CHECK(r.to_vector() == v);
  CHECK(reshape(x, {-1, 3}).shape() == Shape{8, 3});
  CHECK(reshape(x, {2, -1}).shape() == Shape{2, 12});
  CHECK(x.reshape({24}).to_vector() == v);
  CHECK(reshape(x, {4, 6}).storage().get() == x.storage().get());  // a view

  const Tensor p = permute(x, {2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(p.to_vector() == permuted(v, {2, 3, 4}, {2, 0, 1}));
  CHECK(permute(x, {-1, 0, 1}).to_vector() == permuted(v, {2, 3, 4}, {2, 0, 1}));
  // reshape of a non-contiguous view copies in logical order.
  CHECK(reshape(p, {24}).to_vector() == permuted(v, {2, 3, 4}, {2, 0, 1}));
  CHECK(reshape(p, {8, 3}).to_vector() == permuted(v, {2, 3, 4}, {2, 0, 1}));

  CHECK(transpose(x, 0, 2).shape() == Shape{4, 3, 2});
  CHECK(transpose(x, 0, 2).to_vector() == permuted(v, {2, 3, 4}, {2, 1, 0}));
  CHECK(transpose(x).to_vector() == permuted(v, {2, 3, 4}, {0, 2, 1}));
  CHECK(x.mT().to_vector() == permuted(v, {2, 3, 4}, {0, 2, 1}));

  const Tensor col = from_vector({1, 2, 3}, {3, 1}, DType::f64);
  const Tensor e = expand(col, {2, 3, 4});
  CHECK(e.shape() == Shape{2, 3, 4});
  Vec ew;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) ew.push_back(j + 1.0);
  CHECK(e.to_vector() == ew);
  CHECK(e.strides()[0] == 0);
  CHECK(expand(col, {3, 1}).to_vector() == Vec{1, 2, 3});

  const Tensor s1 = from_vector({1, 2, 3}, {1, 3, 1}, DType::f64);
  CHECK(squeeze(s1, 0).shape() == Shape{3, 1});
  CHECK(squeeze(s1, -1).shape() == Shape{1, 3});
  CHECK(squeeze(s1, 2).to_vector() == Vec{1, 2, 3});
  CHECK(unsqueeze(x, 0).shape() == Shape{1, 2, 3, 4});
  CHECK(unsqueeze(x, 3).shape() == Shape{2, 3, 4, 1});
  CHECK(unsqueeze(x, -1).shape() == Shape{2, 3, 4, 1});
  CHECK(unsqueeze(x, 1).shape() == Shape{2, 1, 3, 4});
  CHECK(unsqueeze(x, 1).to_vector() == v);

  CHECK(flatten(x).shape() == Shape{24});
  CHECK(flatten(x, 1).shape() == Shape{2, 12});
  CHECK(flatten(x, -1).shape() == Shape{2, 3, 4});
  CHECK(flatten(p, 1).to_vector() == permuted(v, {2, 3, 4}, {2, 0, 1}));
}

TEST_CASE("slice, select, concat, stack, pad values", "[values][shape]") {
  const Vec v = uniform_values(30, -1, 1, 12);
  const Dims s = {5, 6};
  const Tensor x = from_vector(v, {5, 6}, DType::f64);
  auto at = [&](int64_t i, int64_t j) { return v[i * 6 + j]; };

  // slice with step 2 on each axis, negative start, stop clamped past the end.
  const Tensor a = slice(x, 1, 1, 6, 2);
  CHECK(a.shape() == Shape{5, 3});
  Vec wa;
  for (int i = 0; i < 5; ++i)
    for (int j = 1; j < 6; j += 2) wa.push_back(at(i, j));
  CHECK(a.to_vector() == wa);
  const Tensor b = slice(x, 0, 0, 5, 2);
  Vec wb;
  for (int i = 0; i < 5; i += 2)
    for (int j = 0; j < 6; ++j) wb.push_back(at(i, j));
  CHECK(b.shape() == Shape{3, 6});
  CHECK(b.to_vector() == wb);
  const Tensor c = slice(x, -1, -4, 100);
  Vec wc;
  for (int i = 0; i < 5; ++i)
    for (int j = 2; j < 6; ++j) wc.push_back(at(i, j));
  CHECK(c.shape() == Shape{5, 4});
  CHECK(c.to_vector() == wc);
  CHECK(slice(x, 0, 3, 2).shape() == Shape{0, 6});
  // Slice of a slice.
  const Tensor d = slice(slice(x, 1, 1, 6, 2), 0, 1, 5, 3);
  Vec wd;
  for (int i = 1; i < 5; i += 3)
    for (int j = 1; j < 6; j += 2) wd.push_back(at(i, j));
  CHECK(d.to_vector() == wd);

  CHECK(select(x, 0, 2).shape() == Shape{6});
  CHECK(select(x, 0, 2).to_vector() == Vec(v.begin() + 12, v.begin() + 18));
  Vec col3;
  for (int i = 0; i < 5; ++i) col3.push_back(at(i, 3));
  CHECK(select(x, 1, 3).to_vector() == col3);
  CHECK(select(x, 1, -3).to_vector() == col3);
  CHECK(x[4].to_vector() == Vec(v.begin() + 24, v.end()));

  const Tensor y = from_vector({100, 101, 102, 103, 104, 105}, {1, 6}, DType::f64);
  const Tensor cat0 = concat({x, y}, 0);
  CHECK(cat0.shape() == Shape{6, 6});
  Vec w0 = v;
  for (double t : {100, 101, 102, 103, 104, 105}) w0.push_back(t);
  CHECK(cat0.to_vector() == w0);
  const Tensor z = from_vector({-1, -2, -3, -4, -5}, {5, 1}, DType::f64);
  const Tensor cat1 = concat({z, x, z}, -1);
  CHECK(cat1.shape() == Shape{5, 8});
  Vec w1;
  for (int i = 0; i < 5; ++i) {
    w1.push_back(-1.0 - i);
    for (int j = 0; j < 6; ++j) w1.push_back(at(i, j));
    w1.push_back(-1.0 - i);
  }
  CHECK(cat1.to_vector() == w1);
  // Concat of non-contiguous views.
  const Tensor xt = transpose(x, 0, 1);
  CHECK(concat({xt, xt}, 0).to_vector() == [&] {
    Vec r = permuted(v, s, {1, 0}), r2 = r;
    r.insert(r.end(), r2.begin(), r2.end());
    return r;
  }());

  const Tensor p = from_vector({1, 2, 3}, {3}, DType::f64),
               q = from_vector({4, 5, 6}, {3}, DType::f64);
  CHECK(stack({p, q}).shape() == Shape{2, 3});
  CHECK(stack({p, q}).to_vector() == Vec{1, 2, 3, 4, 5, 6});
  CHECK(stack({p, q}, 1).shape() == Shape{3, 2});
  CHECK(stack({p, q}, -1).to_vector() == Vec{1, 4, 2, 5, 3, 6});

  const Tensor sm = from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, DType::f64);
  const Tensor pd = pad(sm, {1, 0}, {0, 2}, -9);
  CHECK(pd.shape() == Shape{3, 5});
  CHECK(pd.to_vector() == Vec{-9, -9, -9, -9, -9, 1, 2, 3, -9, -9, 4, 5, 6, -9, -9});
  CHECK(pad(sm, {0, 1}, {1, 0}).to_vector() == Vec{0, 1, 2, 3, 0, 4, 5, 6, 0, 0, 0, 0});
  CHECK(pad(transpose(sm, 0, 1), {0, 0}, {0, 1}, 7).to_vector() == Vec{1, 4, 7, 2, 5, 7, 3, 6, 7});
}

TEST_CASE("index_select, gather, scatter_add, one_hot values", "[values][index]") {
  const Tensor x = from_vector({0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23}, {3, 4}, DType::f64);
  CHECK(index_select(x, 0, from_indices({2, 0, 2}, {3})).to_vector() ==
        Vec{20, 21, 22, 23, 0, 1, 2, 3, 20, 21, 22, 23});
  const Tensor is1 = index_select(x, 1, from_indices({3, 3, 1}, {3}));
  CHECK(is1.shape() == Shape{3, 3});
  CHECK(is1.to_vector() == Vec{3, 3, 1, 13, 13, 11, 23, 23, 21});
  CHECK(index_select(x, -1, from_indices({0}, {1})).to_vector() == Vec{0, 10, 20});
  CHECK(index_select(transpose(x, 0, 1), 1, from_indices({1}, {1})).to_vector() ==
        Vec{10, 11, 12, 13});

  // gather: out[i][j] = x[i][idx[i][j]] (axis 1), out[i][j] = x[idx[i][j]][j] (axis 0).
  const Tensor g1 = gather(x, 1, from_indices({3, 0, 1, 1, 2, 3}, {3, 2}));
  CHECK(g1.shape() == Shape{3, 2});
  CHECK(g1.to_vector() == Vec{3, 0, 11, 11, 22, 23});
  const Tensor g0 = gather(x, 0, from_indices({2, 0, 1, 2, 1, 1, 0, 0}, {2, 4}));
  CHECK(g0.to_vector() == Vec{20, 1, 12, 23, 10, 11, 2, 3});
  // gather with a smaller index off the axis.
  CHECK(gather(x, 1, from_indices({1, 2}, {2, 1})).to_vector() == Vec{1, 12});

  // scatter_add with repeated indices accumulates.
  const Tensor base = from_vector({1, 1, 1, 1, 2, 2, 2, 2}, {2, 4}, DType::f64);
  const Tensor src = from_vector({10, 20, 30, 40, 50, 60}, {2, 3}, DType::f64);
  const Tensor sa = scatter_add(base, 1, from_indices({0, 3, 0, 2, 2, 2}, {2, 3}), src);
  CHECK(sa.to_vector() == Vec{41, 1, 1, 21, 2, 2, 152, 2});
  CHECK(base.to_vector() == Vec{1, 1, 1, 1, 2, 2, 2, 2});  // out of place
  const Tensor sa0 = scatter_add(zeros({3, 2}, DType::f64), 0, from_indices({2, 0, 2, 2}, {2, 2}),
                                 from_vector({1, 2, 3, 4}, {2, 2}, DType::f64));
  CHECK(sa0.to_vector() == Vec{0, 2, 0, 0, 4, 4});

  const Tensor oh = one_hot(from_indices({2, 0, 1, 2}, {2, 2}), 3);
  CHECK(oh.shape() == Shape{2, 2, 3});
  CHECK(oh.dtype() == DType::f32);
  CHECK(oh.to_vector() == Vec{0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1});
  CHECK(one_hot(from_indices({1}, {1}), 4, DType::f64).dtype() == DType::f64);
  CHECK(one_hot(from_indices({3}, {1}), 4, DType::f64).to_vector() == Vec{0, 0, 0, 1});
}

TEST_CASE("cast, contiguous and clone values", "[values][shape]") {
  const Vec v = {-2.7, -1.5, -0.5, 0.0, 0.3, 1.5, 2.999, 1e10};
  const Tensor x = from_vector(v, {8}, DType::f64);
  CHECK(cast(x, DType::f32).dtype() == DType::f32);
  CHECK(exact_report(cast(x, DType::f32).to_vector(), rounded(v, DType::f32)) == "");
  CHECK(x.to(DType::i64).values<int64_t>() ==
        std::vector<int64_t>{-2, -1, 0, 0, 0, 1, 2, 10000000000LL});
  CHECK(cast(x, DType::b8).values<bool>() ==
        std::vector<bool>{true, true, true, false, true, true, true, true});
  CHECK(cast(from_indices({-3, 0, 7}, {3}), DType::f64).to_vector() == Vec{-3, 0, 7});
  CHECK(cast(cast(x, DType::f32), DType::f64).to_vector() == rounded(v, DType::f32));
  CHECK(cast(x > 0.0, DType::f64).to_vector() == Vec{0, 0, 0, 0, 1, 1, 1, 1});
  // Cast of a strided view.
  CHECK(cast(slice(x, 0, 1, 8, 3), DType::i64).values<int64_t>() ==
        std::vector<int64_t>{-1, 0, 10000000000LL});

  const Vec w = uniform_values(12, -1, 1, 13);
  const Tensor t = transpose(from_vector(w, {3, 4}, DType::f32), 0, 1);
  CHECK_FALSE(t.is_contiguous());
  const Tensor c = contiguous(t);
  CHECK(c.is_contiguous());
  CHECK(c.strides() == Shape{3, 1});
  CHECK(c.to_vector() == t.to_vector());
  CHECK(c.to_vector() == permuted(rounded(w, DType::f32), {3, 4}, {1, 0}));
  const Tensor same = contiguous(c);
  CHECK(same.storage().get() == c.storage().get());
  CHECK(t.contiguous().to_vector() == c.to_vector());

  const Tensor k = t.clone();
  CHECK(k.storage().get() != t.storage().get());
  CHECK(k.to_vector() == t.to_vector());
  CHECK(k.is_contiguous());
  // Writing into the clone leaves the source alone.
  k.data<float>()[0] = 123.0f;
  CHECK(t.to_vector()[0] == Approx(rounded(w, DType::f32)[0]));
  CHECK(k.to_vector()[0] == 123.0);
}

// ============================================================================================
// Creation
// ============================================================================================

TEST_CASE("creation functions", "[values][creation]") {
  CHECK(zeros({2, 3}).dtype() == DType::f32);
  CHECK(zeros({2, 3}).to_vector() == Vec(6, 0.0));
  CHECK(ones({4}, DType::f64).to_vector() == Vec(4, 1.0));
  CHECK(ones({4}, DType::i64).values<int64_t>() == std::vector<int64_t>(4, 1));
  CHECK(full({2, 2}, -3.25, DType::f64).to_vector() == Vec(4, -3.25));
  CHECK(full({3}, 0.1).to_vector() == Vec(3, static_cast<double>(0.1f)));
  CHECK(full({}, 5.0).rank() == 0);
  CHECK(scalar(7.5, DType::f64).item() == 7.5);
  CHECK(zeros({0, 3}).numel() == 0);
  const Tensor like = full_like(from_vector({1, 2}, {2}, DType::f64), 9.0);
  CHECK(like.dtype() == DType::f64);
  CHECK(like.to_vector() == Vec{9, 9});
  CHECK(zeros_like(like).to_vector() == Vec{0, 0});
  CHECK(ones_like(like).to_vector() == Vec{1, 1});

  const Tensor a = arange(5);
  CHECK(a.dtype() == DType::i64);
  CHECK(a.values<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});
  CHECK(arange(0).numel() == 0);
  const Tensor af = arange(1.0, 2.0, 0.25, DType::f64);
  CHECK(af.to_vector() == Vec{1.0, 1.25, 1.5, 1.75});
  CHECK(arange(3.0, 0.0, -1.0, DType::f64).to_vector() == Vec{3, 2, 1});
  CHECK(arange(0.0, 1.0, 0.3).shape() == Shape{4});  // 0, 0.3, 0.6, 0.9
  CHECK(arange(0.0, 1.0, 0.3).dtype() == DType::f32);
  CHECK(arange(0.0, -1.0, 0.5).numel() == 0);

  const Tensor l = linspace(-1, 1, 5, DType::f64);
  CHECK(l.to_vector() == Vec{-1, -0.5, 0, 0.5, 1});
  CHECK(linspace(2, 3, 1, DType::f64).to_vector() == Vec{2});
  CHECK(linspace(0, 1, 0).numel() == 0);
  const Vec l7 = linspace(0.1, 0.7, 7, DType::f64).to_vector();
  CHECK(l7.front() == 0.1);
  CHECK(l7.back() == 0.7);
  for (int i = 0; i < 7; ++i) CHECK(l7[i] == Approx(0.1 + 0.1 * i).epsilon(1e-15));

  const Tensor e = eye(3, DType::f64);
  CHECK(e.shape() == Shape{3, 3});
  CHECK(e.to_vector() == Vec{1, 0, 0, 0, 1, 0, 0, 0, 1});
  CHECK(eye(0).numel() == 0);

  const Tensor fv = from_vector({1.5, -2, 3.25, 4, 5, 6}, {3, 2}, DType::f64);
  CHECK(fv.shape() == Shape{3, 2});
  CHECK(fv.is_contiguous());
  CHECK(fv.to_vector() == Vec{1.5, -2, 3.25, 4, 5, 6});
  CHECK(fv.values<double>() == std::vector<double>{1.5, -2, 3.25, 4, 5, 6});
  CHECK(from_vector({0.1}, {1}).values<float>() == std::vector<float>{0.1f});
  CHECK(from_vector({2.9, -2.9}, {2}, DType::i64).values<int64_t>() == std::vector<int64_t>{2, -2});
  CHECK(from_vector({}, {0}, DType::f64).numel() == 0);
  CHECK(from_vector({3.0}, {}).rank() == 0);
  const Tensor fi = from_indices({5, -1, 1LL << 40}, {3});
  CHECK(fi.dtype() == DType::i64);
  CHECK(fi.values<int64_t>() == std::vector<int64_t>{5, -1, 1LL << 40});
  CHECK(fi.to_vector() == Vec{5, -1, static_cast<double>(1LL << 40)});
}

// ============================================================================================
// Shared functors at the edges, and SIMD versus scalar paths
// ============================================================================================

TEST_CASE("functors are finite and accurate at extreme arguments", "[values][functors]") {
  // sigmoid saturates without NaN; its tail is e^x for x -> -inf.
  CHECK(fn::Sigmoid{}(1000.0f) == 1.0f);
  CHECK(fn::Sigmoid{}(-1000.0f) == 0.0f);
  CHECK(fn::Sigmoid{}(1000.0) == 1.0);
  CHECK(fn::Sigmoid{}(-1000.0) == 0.0);
  CHECK(fn::Sigmoid{}(0.0) == 0.5);
  CHECK(fn::Sigmoid{}(1e-10) == Approx(0.5 + 0.25e-10).epsilon(1e-15));
  CHECK(fn::Sigmoid{}(-1e-10f) == Approx(0.5).epsilon(1e-7));
  CHECK(fn::Sigmoid{}(-30.0) == Approx(std::exp(-30.0) / (1 + std::exp(-30.0))).epsilon(1e-14));
  CHECK(fn::Sigmoid{}(-80.0f) == Approx(std::exp(-80.0)).epsilon(1e-5));
  CHECK(fn::Sigmoid{}(-700.0) == Approx(std::exp(-700.0)).epsilon(1e-13));
  CHECK(std::isfinite(fn::Sigmoid{}(-88.0f)));

  // log1p is accurate for tiny x and finite for huge x.
  CHECK(fn::Log1p{}(1e-10) == Approx(1e-10 - 0.5e-20).epsilon(1e-15));
  CHECK(fn::Log1p{}(1e-10f) == Approx(1e-10).epsilon(1e-7));
  CHECK(fn::Log1p{}(-1e-10) == Approx(-1e-10 - 0.5e-20).epsilon(1e-15));
  CHECK(fn::Log1p{}(1000.0) == Approx(std::log(1001.0)).epsilon(1e-15));
  CHECK(fn::Log1p{}(1000.0f) == Approx(std::log(1001.0)).epsilon(1e-7));
  CHECK(fn::Log1p{}(1e300) == Approx(std::log(1e300)).epsilon(1e-15));
  CHECK(fn::Log1p{}(-1.0) == -INFINITY);

  // expm1 is accurate for tiny x, saturates at -1, is finite where e^x is.
  CHECK(fn::Expm1{}(1e-10) == Approx(1e-10 + 0.5e-20).epsilon(1e-15));
  CHECK(fn::Expm1{}(1e-10f) == Approx(1e-10).epsilon(1e-7));
  CHECK(fn::Expm1{}(-1e-10) == Approx(-1e-10 + 0.5e-20).epsilon(1e-15));
  CHECK(fn::Expm1{}(-1000.0) == -1.0);
  CHECK(fn::Expm1{}(-1000.0f) == -1.0f);
  CHECK(fn::Expm1{}(700.0) == Approx(std::exp(700.0)).epsilon(1e-14));
  CHECK(std::isfinite(fn::Expm1{}(88.0f)));

  // exp / log / sqrt / tanh / erf at the edges.
  CHECK(fn::Exp{}(-1000.0) == 0.0);
  CHECK(fn::Exp{}(-1000.0f) == 0.0f);
  CHECK(fn::Tanh{}(1000.0f) == 1.0f);
  CHECK(fn::Tanh{}(-1000.0) == -1.0);
  CHECK(fn::Tanh{}(1e-10) == Approx(1e-10).epsilon(1e-15));
  CHECK(fn::Erf{}(-1000.0) == -1.0);
  CHECK(fn::Erf{}(1e-10) == Approx(2 / std::sqrt(M_PI) * 1e-10).epsilon(1e-14));
  CHECK(fn::Rsqrt{}(4.0) == 0.5);
  CHECK(fn::Rsqrt{}(0.0f) == INFINITY);
  CHECK(fn::Sign{}(-0.0) == 0.0);
  CHECK(std::isnan(fn::Sign{}(static_cast<double>(NAN))));
  CHECK(fn::Abs{}(int64_t{-5}) == 5);
  CHECK(fn::PowScalar{0.0}(0.0) == 1.0);
  CHECK(fn::PowScalar{0.5}(16.0f) == 4.0f);
  CHECK(fn::Maximum{}(1.0, static_cast<double>(NAN)) !=
        fn::Maximum{}(1.0, static_cast<double>(NAN)));  // NaN
  CHECK(std::isnan(fn::Minimum{}(static_cast<double>(NAN), 1.0)));
}

TEST_CASE("softplus, sigmoid, log_sigmoid, log1p, expm1 ops at extreme arguments",
          "[values][functors]") {
  // 16 values: the SIMD body covers them contiguously; the step-2 view runs them scalar.
  const Vec in = {1000, -1000, 1e-10, -1e-10, 80, -80, 700, -700, 30, -30, 0, 1, -1, 50, -50, 5};
  for (DType dt : {DType::f32, DType::f64}) {
    Vec padded(2 * in.size(), 0.5);
    for (size_t i = 0; i < in.size(); ++i) padded[2 * i] = in[i];
    const int64_t n = static_cast<int64_t>(in.size());
    const Tensor c = from_vector(in, {n}, dt);
    const Tensor s = slice(from_vector(padded, {2 * n}, dt), 0, 0, 2 * n, 2);
    const Vec xs = rounded(in, dt);
    const bool f32 = dt == DType::f32;
    // The reference for each op: its exact value (rounded to dtype range: far tails are 0).
    struct Op {
      const char* name;
      std::function<Tensor(const Tensor&)> f;
      std::function<double(double)> ref;
      bool expm1_like;  // overflows legitimately for large x
    };
    const std::vector<Op> ops = {
        {"softplus", [](const Tensor& x) { return softplus(x); }, softplus_ref, false},
        {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, sigmoid_ref, false},
        {"log_sigmoid", [](const Tensor& x) { return log_sigmoid(x); },
         [](double x) { return -softplus_ref(-x); }, false},
        {"silu", [](const Tensor& x) { return silu(x); },
         [](double x) { return x * sigmoid_ref(x); }, false},
        {"log1p(|x|)", [](const Tensor& x) { return log1p(abs(x)); },
         [](double x) { return std::log1p(std::fabs(x)); }, false},
        {"expm1", [](const Tensor& x) { return expm1(x); }, [](double x) { return std::expm1(x); },
         true},
        {"tanh", [](const Tensor& x) { return tanh(x); }, [](double x) { return std::tanh(x); },
         false},
    };
    for (const Op& op : ops) {
      for (int path = 0; path < 2; ++path) {
        INFO(op.name << " " << dtype_name(dt)
                     << (path == 0 ? " contiguous (SIMD)" : " strided (scalar)"));
        const Vec got = op.f(path == 0 ? c : s).to_vector();
        for (size_t i = 0; i < xs.size(); ++i) {
          const double w = op.ref(xs[i]);
          INFO("x = " << xs[i] << " got " << fmt(got[i]) << " want " << fmt(w));
          const double limit =
              f32 ? std::numeric_limits<float>::max() : std::numeric_limits<double>::max();
          if (op.expm1_like && std::fabs(w) > limit) {
            CHECK(got[i] == INFINITY);
            continue;
          }
          CHECK(std::isfinite(got[i]));
          // Relative accuracy; results in the subnormal range need only be that small.
          const double tiny =
              f32 ? std::numeric_limits<float>::min() : std::numeric_limits<double>::min();
          CHECK(std::fabs(got[i] - w) <= (f32 ? 4e-6 : 1e-13) * std::fabs(w) + tiny);
        }
      }
    }
  }
}

TEMPLATE_TEST_CASE("SIMD packet path agrees with the scalar functor path",
                   "[values][functors][simd]", float, double) {
  using T = TestType;
  const DType dt = dtype_v<T>;
  // Eigen's packet math is a few ulps from libm (measured: tanh float 5, sigmoid 4, others <= 3).
  const int64_t max_ulps = sizeof(T) == 4 ? 6 : 4;
  struct Op {
    const char* name;
    Tensor (*f)(const Tensor&);
    std::function<T(T)> functor;
    double lo, hi;
  };
  const std::vector<Op> ops = {
      {"neg", sg::neg, fn::Neg{}, -50, 50},
      {"exp", sg::exp, fn::Exp{}, -80, 80},
      {"log", sg::log, fn::Log{}, 1e-6, 1e6},
      {"log1p", sg::log1p, fn::Log1p{}, -0.999, 1e4},
      {"expm1", sg::expm1, fn::Expm1{}, -60, 60},
      {"sqrt", sg::sqrt, fn::Sqrt{}, 0, 1e6},
      {"rsqrt", sg::rsqrt, fn::Rsqrt{}, 1e-6, 1e6},
      {"abs", sg::abs, fn::Abs{}, -50, 50},
      {"sin", sg::sin, fn::Sin{}, -100, 100},
      {"cos", sg::cos, fn::Cos{}, -100, 100},
      {"tanh", sg::tanh, fn::Tanh{}, -12, 12},
      {"sigmoid", sg::sigmoid, fn::Sigmoid{}, -90, 90},
      {"silu", sg::silu, fn::Silu{}, -80, 80},
      {"erf", sg::erf, fn::Erf{}, -5, 5},
      {"sign", sg::sign, fn::Sign{}, -5, 5},
      {"tanh(small)", sg::tanh, fn::Tanh{}, -1, 1},
      {"sigmoid(small)", sg::sigmoid, fn::Sigmoid{}, -1, 1},
      {"exp(small)", sg::exp, fn::Exp{}, -1, 1},
      {"expm1(small)", sg::expm1, fn::Expm1{}, -1, 1},
      {"log(near 1)", sg::log, fn::Log{}, 0.5, 2},
  };
  const int64_t n = 4099;  // not a multiple of any lane count: the scalar tail runs too
  uint64_t seed = 3000;
  for (const Op& op : ops) {
    Vec v = rounded(uniform_values(n, op.lo, op.hi, ++seed), dt);
    // Edge values at the front (inside the SIMD body).
    const Vec edges = {0.0, -0.0, 1e-10, -1e-10, op.lo, op.hi, 1.0, -1.0};
    for (size_t i = 0; i < edges.size(); ++i)
      if (edges[i] >= op.lo && edges[i] <= op.hi) v[i] = rounded({edges[i]}, dt)[0];
    Vec padded(2 * n, 1.0);
    for (int64_t i = 0; i < n; ++i) padded[2 * i + 1] = v[i];
    const Tensor contiguous_in = from_vector(v, {n}, dt);
    const Tensor strided_in = slice(from_vector(padded, {2 * n}, dt), 0, 1, 2 * n, 2);
    REQUIRE(strided_in.strides()[0] == 2);
    const std::vector<T> simd = op.f(contiguous_in).template values<T>();
    const std::vector<T> scalar = op.f(strided_in).template values<T>();
    REQUIRE(simd.size() == static_cast<size_t>(n));
    REQUIRE(scalar.size() == static_cast<size_t>(n));
    int64_t worst = 0, worst_i = 0, functor_bad = 0, functor_first = -1;
    for (int64_t i = 0; i < n; ++i) {
      // Results below the smallest normal number may flush to zero on one path (Eigen's
      // AVX-512 float exp does; its AVX2 one does not): an absolute error under FLT_MIN.
      const bool both_subnormal_or_zero = std::abs(simd[i]) < std::numeric_limits<T>::min() &&
                                          std::abs(scalar[i]) < std::numeric_limits<T>::min();
      const int64_t u = both_subnormal_or_zero ? 0 : ulp_distance(simd[i], scalar[i]);
      if (u > worst) worst = u, worst_i = i;
      // The strided path is the scalar functor itself.
      const T f = op.functor(static_cast<T>(v[i]));
      if (!(f == scalar[i] || (std::isnan(f) && std::isnan(scalar[i])))) {
        if (functor_bad++ == 0) functor_first = i;
      }
    }
    INFO(op.name << " " << dtype_name(dt) << ": worst " << worst
                 << " ulps at x = " << fmt(v[worst_i]) << " (simd " << fmt(simd[worst_i])
                 << ", scalar " << fmt(scalar[worst_i]) << ")");
    CHECK(worst <= max_ulps);
    INFO("functor mismatches: " << functor_bad << " first at " << functor_first);
    CHECK(functor_bad == 0);
  }
  // Underflow: e^x for very negative x (and -inf) is exactly 0 on both paths, as in libm.
  {
    const Vec v = {-1000, -INFINITY, -200,  -800,  -1e30, -750,  -120,  -104,
                   -1000, -1000,     -1000, -1000, -1000, -1000, -1000, -1000};
    Vec padded(2 * v.size(), 1.0);
    for (size_t i = 0; i < v.size(); ++i) padded[2 * i] = v[i];
    const int64_t n = static_cast<int64_t>(v.size());
    const std::vector<T> simd = exp(from_vector(v, {n}, dt)).template values<T>();
    const std::vector<T> scalar =
        exp(slice(from_vector(padded, {2 * n}, dt), 0, 0, 2 * n, 2)).template values<T>();
    int64_t bad_scalar = 0, bad_simd = 0;
    std::string first;
    for (int64_t i = 0; i < n; ++i) {
      const T want = fn::Exp{}(static_cast<T>(v[i]));
      bad_scalar += scalar[i] != want;
      if (ulp_distance(simd[i], want) > max_ulps && bad_simd++ == 0)
        first = "exp(" + fmt(v[i]) + "): simd " + fmt(simd[i]) + ", scalar " + fmt(scalar[i]) +
                ", functor " + fmt(want);
    }
    INFO(dtype_name(dt) << " underflow: " << bad_simd << " of " << n
                        << " SIMD results differ; first " << first);
    CHECK(bad_scalar == 0);
    CHECK(bad_simd == 0);
  }
  // A large contiguous input runs the SIMD path on every thread; it must match a
  // single-threaded run bit for bit (the unary loop is split by rows, not by values).
  {
    const Vec v = rounded(uniform_values(800 * 100, -5, 5, 77), dt);
    const Tensor big = slice(from_vector(v, {800, 100}, dt), 0, 0, 800, 2);  // 400 rows of 100
    REQUIRE(big.numel() > (1 << 15));
    const int prev = omp_get_max_threads();
    omp_set_num_threads(1);
    const std::vector<T> one = tanh(big).template values<T>();
    omp_set_num_threads(2);
    const std::vector<T> two = tanh(big).template values<T>();
    omp_set_num_threads(prev);
    CHECK(one == two);
  }
}

TEMPLATE_TEST_CASE("SIMD and scalar paths agree with <cmath> at every special value",
                   "[values][functors][simd][special]", float, double) {
  using T = TestType;
  // Each op with its <cmath> reference; `exact` ops (IEEE-exact) must match to 0 ulps, the
  // transcendental ones within the packet tolerance of the test above.
  struct Checked {
    const char* name;
    Tensor (*f)(const Tensor&);
    T (*ref)(T);
    bool exact;
  };
  const int64_t max_ulps = sizeof(T) == 4 ? 6 : 4;
  const DType dt = dtype_v<T>;
  const std::vector<Checked> ops = {
      {"neg", sg::neg, [](T x) { return -x; }, true},
      {"abs", sg::abs, [](T x) { return std::fabs(x); }, true},
      {"sqrt", sg::sqrt, [](T x) { return std::sqrt(x); }, true},
      {"rsqrt", sg::rsqrt, [](T x) { return T(1) / std::sqrt(x); }, false},
      {"exp", sg::exp, [](T x) { return std::exp(x); }, false},
      {"log", sg::log, [](T x) { return std::log(x); }, false},
      {"log1p", sg::log1p, [](T x) { return std::log1p(x); }, false},
      {"expm1", sg::expm1, [](T x) { return std::expm1(x); }, false},
      {"tanh", sg::tanh, [](T x) { return std::tanh(x); }, false},
      {"sigmoid", sg::sigmoid, [](T x) { return T(1) / (T(1) + std::exp(-x)); }, false},
      {"silu", sg::silu, [](T x) { return x / (T(1) + std::exp(-x)); }, false},
      {"erf", sg::erf, [](T x) { return std::erf(x); }, false},
      {"sin", sg::sin, [](T x) { return std::sin(x); }, false},
      {"cos", sg::cos, [](T x) { return std::cos(x); }, false},
      {"silu_grad", sg::silu_grad,
       [](T x) {
         const T s = T(1) / (T(1) + std::exp(-x));
         return s + x * s * (T(1) - s);
       },
       false},
      {"sign", sg::sign, [](T x) { return x > 0   ? T(1)
                                          : x < 0 ? T(-1)
                                                  : x; }, true},
  };
  const std::vector<T> sv = special_values<T>();
  const int64_t k = static_cast<int64_t>(sv.size()), n = 2 * k + 19;  // packets and a tail
  for (const Checked& op : ops) {
    int64_t bad = 0;
    std::string first;
    for (int shift = 0; shift < 16; ++shift) {  // every value at every lane
      std::vector<double> v(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = sv[(i + shift) % k];
      const std::vector<T> got = op.f(from_vector(v, {n}, dt)).template values<T>();
      for (int64_t i = 0; i < n; ++i) {
        const T x = static_cast<T>(v[static_cast<size_t>(i)]), w = op.ref(x), g = got[i];
        // Results below the smallest normal number: an absolute error under it is fine for the
        // transcendental ones (flush to zero), never for the exact ones.
        const bool tiny = !op.exact && std::fabs(w) < std::numeric_limits<T>::min() &&
                          std::fabs(g) < std::numeric_limits<T>::min();
        const int64_t u = tiny ? 0 : ulp_distance(g, w);
        const bool zero_sign = op.exact && !std::isnan(w) && std::signbit(g) != std::signbit(w);
        if ((zero_sign || u > (op.exact ? 0 : max_ulps)) && bad++ == 0)
          first =
              "x = " + fmt(x) + " at " + std::to_string(i) + ": got " + fmt(g) + " want " + fmt(w);
      }
    }
    INFO(op.name << " " << dtype_name(dt) << ": " << bad << " mismatches, first " << first);
    CHECK(bad == 0);
  }
}

TEMPLATE_TEST_CASE(
    "binary SIMD paths agree with the scalar functors at every pair of special values",
    "[values][functors][simd][special]", float, double) {
  using T = TestType;
  const DType dt = dtype_v<T>;
  const std::vector<T> sv = special_values<T>();
  const int64_t k = static_cast<int64_t>(sv.size());
  std::vector<double> a(sv.begin(), sv.end());
  struct Checked {
    const char* name;
    Tensor (*f)(const Tensor&, const Tensor&);
    T (*ref)(T, T);
  };
  const std::vector<Checked> ops = {
      {"add", sg::add, [](T x, T y) { return fn::Add{}(x, y); }},
      {"sub", sg::sub, [](T x, T y) { return fn::Sub{}(x, y); }},
      {"mul", sg::mul, [](T x, T y) { return fn::Mul{}(x, y); }},
      {"div", sg::div, [](T x, T y) { return fn::Div{}(x, y); }},
      {"maximum", sg::maximum, [](T x, T y) { return fn::Maximum{}(x, y); }},
      {"minimum", sg::minimum, [](T x, T y) { return fn::Minimum{}(x, y); }},
  };
  for (const Checked& op : ops) {
    int64_t bad = 0;
    std::string first;
    for (int64_t shift = 0; shift < k; ++shift) {  // every pair (a_i, a_{i + shift})
      std::vector<double> b(a.size());
      for (int64_t i = 0; i < k; ++i) b[i] = a[(i + shift) % k];
      const std::vector<T> got =
          op.f(from_vector(a, {k}, dt), from_vector(b, {k}, dt)).template values<T>();
      for (int64_t i = 0; i < k; ++i) {
        const T x = static_cast<T>(a[i]), y = static_cast<T>(b[i]), w = op.ref(x, y);
        const bool same = (std::isnan(w) && std::isnan(got[i])) ||
                          (w == got[i] && std::signbit(w) == std::signbit(got[i]));
        if (!same && bad++ == 0)
          first = fmt(x) + " " + op.name + " " + fmt(y) + ": simd " + fmt(got[i]) + ", scalar " +
                  fmt(w);
      }
    }
    INFO(op.name << " " << dtype_name(dt) << ": " << bad << " mismatches, first " << first);
    CHECK(bad == 0);
  }
}
