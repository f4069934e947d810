// bfloat16 and float16 storage (mixed precision, docs/design.md): the conversions over every bit
// pattern and against an independent round-to-nearest-even reference, casts, elementwise ops
// computed in float32 and rounded once, reductions, GEMM and convolution with float32
// accumulation (bfloat16 through oneDNN), random draws, and first-order gradients of a small MLP
// against float32 within stated tolerances.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "autodiff/backend/functors.hpp"
#include "autodiff/sg.hpp"
#include "tests/autodiff/half_test_util.hpp"

using namespace sg;
using sg::half_test::rel_error;

namespace {

template <class H>
constexpr int kMant = std::is_same_v<H, bfloat16> ? 7 : 10;
template <class H>
constexpr int kBias = std::is_same_v<H, bfloat16> ? 127 : 15;
template <class H>
constexpr int kExpMax = std::is_same_v<H, bfloat16> ? 255 : 31;

// The value of a bit pattern, decoded independently of half.hpp (ldexp in double).
template <class H>
double decode(uint16_t bits) {
  const int M = kMant<H>;
  const int e = (bits >> M) & kExpMax<H>;
  const int m = bits & ((1 << M) - 1);
  const double s = (bits & 0x8000) ? -1.0 : 1.0;
  if (e == kExpMax<H>) return m ? std::numeric_limits<double>::quiet_NaN() : s * INFINITY;
  if (e == 0) return s * std::ldexp(m, 1 - kBias<H> - M);
  return s * std::ldexp(m + (1 << M), e - kBias<H> - M);
}

// The non-negative finite values of H in bit-pattern order (pattern k has value v[k]).
template <class H>
std::vector<double> finite_values() {
  std::vector<double> v;
  for (uint32_t k = 0; k < (uint32_t(kExpMax<H>) << kMant<H>); ++k)
    v.push_back(decode<H>(static_cast<uint16_t>(k)));
  return v;
}

// Round-to-nearest-even of a double to H by search over the value table: the nearer neighbour,
// the even pattern on a tie; past the largest finite value by half an ulp or more, infinity.
template <class H>
uint16_t reference_round(double x, const std::vector<double>& v) {
  const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  const double a = std::fabs(x);
  const uint16_t inf = static_cast<uint16_t>(kExpMax<H> << kMant<H>);
  if (std::isnan(x)) return 0xffff;  // compared as "some NaN"
  const double top = v.back(), half_ulp = (top - v[v.size() - 2]) / 2;
  if (a >= top + half_ulp) return sign | inf;
  const auto it = std::upper_bound(v.begin(), v.end(), a);  // first > a
  const std::size_t hi = static_cast<std::size_t>(it - v.begin()), lo = hi - 1;
  if (hi == v.size() || v[lo] == a) return sign | static_cast<uint16_t>(lo);
  const double dl = a - v[lo], dh = v[hi] - a;
  const std::size_t k = dl < dh ? lo : dh < dl ? hi : (lo % 2 == 0 ? lo : hi);
  return sign | static_cast<uint16_t>(k);
}

template <class H>
bool is_nan_bits(uint16_t b) {
  return ((b >> kMant<H>)&kExpMax<H>) == kExpMax<H> && (b & ((1 << kMant<H>)-1));
}

template <class H>
void check_conversions() {
  const std::vector<double> v = finite_values<H>();
  // Every pattern: decode, widen, narrow back.
  for (uint32_t b = 0; b < 65536; ++b) {
    const H h{static_cast<uint16_t>(b)};
    const float f = to_float(h);
    const double ref = decode<H>(h.bits);
    if (std::isnan(ref)) {
      REQUIRE(std::isnan(f));
      REQUIRE(is_nan_bits<H>(to_half<H>(f).bits));  // NaN stays NaN (and quiet)
      REQUIRE(is_nan_bits<H>(to_half<H>(static_cast<double>(f)).bits));
      continue;
    }
    REQUIRE(static_cast<double>(f) == ref);
    REQUIRE(std::signbit(f) == ((b & 0x8000) != 0));  // -0 kept
    REQUIRE(to_half<H>(f).bits == b);
    REQUIRE(to_half<H>(static_cast<double>(f)).bits == b);
  }
  auto check_float = [&](float x) {
    const uint16_t want = reference_round<H>(x, v), got = to_half<H>(x).bits;
    if (std::isnan(x)) {
      REQUIRE(is_nan_bits<H>(got));
    } else if (got != want) {
      FAIL("float " << x << ": got 0x" << std::hex << got << " want 0x" << want);
    }
  };
  auto check_double = [&](double x) {
    const uint16_t want = reference_round<H>(x, v), got = to_half<H>(x).bits;
    if (got != want) FAIL("double " << x << ": got 0x" << std::hex << got << " want 0x" << want);
  };
  // Dense float32 patterns (every 4099th: ~1M values of every exponent, both signs).
  for (uint64_t u = 0; u < (uint64_t(1) << 32); u += 4099) {
    float x;
    const uint32_t w = static_cast<uint32_t>(u);
    std::memcpy(&x, &w, 4);
    check_float(x);
  }
  // Every midpoint between neighbours (ties), and the floats and doubles right beside it: a
  // double just off a tie must not be rounded through float (that would make it a tie).
  for (std::size_t k = 0; k + 1 < v.size(); ++k) {
    const double mid = (v[k] + v[k + 1]) / 2;
    for (double s : {1.0, -1.0}) {
      const float fm = static_cast<float>(s * mid);
      REQUIRE(static_cast<double>(fm) == s * mid);  // exact in float
      check_float(fm);
      check_float(std::nextafter(fm, INFINITY));
      check_float(std::nextafter(fm, -INFINITY));
      check_double(s * mid);
      check_double(std::nextafter(s * mid, INFINITY));
      check_double(std::nextafter(s * mid, -INFINITY));
    }
  }
  // Overflow: the largest finite value rounds to itself up to half an ulp below the next
  // power; at and beyond that, infinity.
  const double top = v.back(), half_ulp = (top - v[v.size() - 2]) / 2;
  check_double(top + half_ulp);
  check_double(std::nextafter(top + half_ulp, 0.0));
  check_double(1e300);
  check_double(-1e300);
  check_double(std::numeric_limits<double>::denorm_min());
  check_double(-0.0);
  REQUIRE(to_half<H>(-0.0f).bits == 0x8000);
  REQUIRE(to_half<H>(INFINITY).bits == (kExpMax<H> << kMant<H>));
  REQUIRE(to_half<H>(-INFINITY).bits == (0x8000 | (kExpMax<H> << kMant<H>)));
  REQUIRE(is_nan_bits<H>(to_half<H>(std::numeric_limits<double>::quiet_NaN()).bits));
}

// One ulp of H at |x| (the spacing of H's values around x).
double half_ulp_at(double x, DType t) {
  const int M = t == DType::bf16 ? 7 : 10;
  const double min_normal = t == DType::bf16 ? std::ldexp(1.0, -126) : std::ldexp(1.0, -14);
  const double a = std::max(std::fabs(x), min_normal);
  int e;
  std::frexp(a, &e);  // a in [2^(e-1), 2^e)
  return std::ldexp(1.0, e - 1 - M);
}

// Every element of got within `ulps` ulps of H (at want) of want.
void require_within_ulps(const Tensor& got, const Tensor& want, DType t, double ulps) {
  const std::vector<double> g = got.to_vector(), w = want.to_vector();
  REQUIRE(g.size() == w.size());
  double worst = 0;
  for (std::size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(w[i])) {
      REQUIRE(std::isnan(g[i]));
      continue;
    }
    if (std::isinf(w[i])) {
      REQUIRE(g[i] == w[i]);
      continue;
    }
    worst = std::max(worst, std::fabs(g[i] - w[i]) / half_ulp_at(w[i], t));
  }
  INFO("worst error " << worst << " ulps of " << dtype_name(t));
  REQUIRE(worst <= ulps);
}

const DType kHalves[] = {DType::bf16, DType::f16};

}  // namespace

TEST_CASE("half: bfloat16 conversions, every pattern and every tie") {
  check_conversions<bfloat16>();
}
TEST_CASE("half: float16 conversions, every pattern and every tie") {
  check_conversions<float16>();
}

TEST_CASE("half: tensor casts agree with the scalar conversions on every pattern") {
  // The backend's copy loops (strided and threaded) against half.hpp, both directions.
  for (DType t : kHalves) {
    Tensor bits = empty({65536}, t);
    auto* p = static_cast<uint16_t*>(bits.raw_data());
    for (uint32_t b = 0; b < 65536; ++b) p[b] = static_cast<uint16_t>(b);
    const Tensor f = cast(bits, DType::f32);
    const Tensor back = cast(f, t), back_strided = cast(f.reshape({256, 256}).mT(), t);
    const auto* q = static_cast<const uint16_t*>(back.raw_data());
    const Tensor back_t = contiguous(back_strided.mT());
    const auto* r = static_cast<const uint16_t*>(back_t.raw_data());
    const float* fv = f.data<float>();
    // The elementwise tiles (widen, float32 kernel, narrow) on every pattern: -(-x) is x.
    const Tensor nn = neg(neg(bits));
    const auto* nb = static_cast<const uint16_t*>(nn.raw_data());
    for (uint32_t b = 0; b < 65536; ++b) {
      const float want =
          t == DType::bf16 ? to_float(bfloat16{uint16_t(b)}) : to_float(float16{uint16_t(b)});
      if (std::isnan(want)) {
        REQUIRE(std::isnan(fv[b]));
        continue;
      }
      REQUIRE(std::memcmp(&fv[b], &want, 4) == 0);
      REQUIRE(q[b] == b);
      REQUIRE(r[b] == b);
      REQUIRE(nb[b] == b);
    }
    // float64 -> half over a dense sweep of doubles, rounded once.
    std::vector<double> d;
    for (int i = 0; i < 100000; ++i)
      d.push_back(std::ldexp(1.0 + i * 1e-5, i % 60 - 40) * (i % 2 ? -1 : 1));
    const Tensor h = cast(from_vector(d, {int64_t(d.size())}, DType::f64), t);
    const auto* hb = static_cast<const uint16_t*>(h.raw_data());
    for (std::size_t i = 0; i < d.size(); ++i)
      REQUIRE(hb[i] ==
              (t == DType::bf16 ? to_half<bfloat16>(d[i]).bits : to_half<float16>(d[i]).bits));
  }
}

TEST_CASE("half: dtype names, sizes, flags") {
  CHECK(itemsize(DType::bf16) == 2);
  CHECK(itemsize(DType::f16) == 2);
  CHECK(is_floating(DType::bf16));
  CHECK(is_half(DType::f16));
  CHECK(!is_half(DType::f32));
  CHECK(std::string(dtype_name(DType::bf16)) == "bfloat16");
  CHECK(std::string(dtype_name(DType::f16)) == "float16");
  const Tensor x = zeros({2, 3}, DType::bf16);
  CHECK(describe(x) == "bfloat16[2,3]");
  CHECK(x.data<bfloat16>() != nullptr);
  CHECK_THROWS_AS(x.data<float>(), DTypeError);
}

TEST_CASE("half: casts between every dtype") {
  for (DType t : kHalves) {
    // float64 values rounded once (not through float32): compare with the scalar conversion.
    const std::vector<double> vals = {0.0,        -0.0,
                                      1.0,        -2.5,
                                      1.0 / 3,    65504.0,
                                      65520.0,    1e-8,
                                      3e-39,      1e30,
                                      -1e40,      INFINITY,
                                      1.00390625, 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -40)};
    const Tensor x = from_vector(vals, {static_cast<int64_t>(vals.size())}, DType::f64);
    const Tensor h = cast(x, t);
    CHECK(h.dtype() == t);
    const std::vector<double> got = h.to_vector();
    for (std::size_t i = 0; i < vals.size(); ++i) {
      const double want = t == DType::bf16 ? to_double(to_half<bfloat16>(vals[i]))
                                           : to_double(to_half<float16>(vals[i]));
      CHECK(got[i] == want);
      CHECK(std::signbit(got[i]) == std::signbit(want));
    }
    // Integers and bools.
    const Tensor i = from_vector({-3, 0, 7, 300, 1 << 20}, {5}, DType::i64);
    CHECK(cast(i, t).to_vector() ==
          std::vector<double>{-3, 0, 7, 300, t == DType::bf16 ? 1048576.0 : INFINITY});
    CHECK(cast(cast(from_vector({-3, 0, 7}, {3}, DType::f32), t), DType::i64).to_vector() ==
          std::vector<double>{-3, 0, 7});
    CHECK(cast(cast(from_vector({0, 1, 0}, {3}, DType::b8), t), DType::f32).to_vector() ==
          std::vector<double>{0, 1, 0});
    CHECK(cast(from_vector({0, 0.5, -2}, {3}, t), DType::b8).to_vector() ==
          std::vector<double>{0, 1, 1});
    CHECK_THROWS_AS(cast(full({2}, INFINITY, t), DType::i64), ValueError);
  }
  // bfloat16 <-> float16 through float (exact widening, one rounding).
  const Tensor b = cast(from_vector({1.0 / 3, 1e-6, 70000}, {3}, DType::f32), DType::bf16);
  const std::vector<double> got = cast(b, DType::f16).to_vector(), bv = b.to_vector();
  for (int k = 0; k < 3; ++k) CHECK(got[k] == to_double(to_half<float16>(bv[k])));
  CHECK(std::isinf(got[2]));
}

TEST_CASE("half: elementwise ops compute in float32 and round once") {
  Generator gen(7);
  for (DType t : kHalves) {
    const Tensor x = cast(randn({1000}, gen) * 2.0, t), y = cast(randn({1000}, gen) * 2.0 + 3.0, t);
    const Tensor xf = cast(x, DType::f32), yf = cast(y, DType::f32);
    // Correctly rounded float32 arithmetic, then one rounding: bit for bit.
    auto same = [&](const Tensor& got, const Tensor& want_f32) {
      REQUIRE(got.dtype() == t);
      const std::vector<double> g = got.to_vector(), w = cast(want_f32, t).to_vector();
      REQUIRE(g.size() == w.size());
      for (std::size_t i = 0; i < g.size(); ++i)
        if (!(g[i] == w[i] || (std::isnan(g[i]) && std::isnan(w[i]))))
          FAIL("element " << i << ": " << g[i] << " != " << w[i]);
    };
    same(x + y, xf + yf);
    same(x - y, xf - yf);
    same(x * y, xf * yf);
    same(x / y, xf / yf);
    same(maximum(x, y), maximum(xf, yf));
    same(neg(x), neg(xf));
    same(abs(x), abs(xf));
    same(sqrt(y), sqrt(yf));
    // Broadcast and strided operands (the tiled loops with stride 0 and strided rows).
    const Tensor m = reshape(x, {20, 50}), r = reshape(slice(y, 0, 0, 50), {1, 50});
    same(m * r, reshape(xf, {20, 50}) * reshape(slice(yf, 0, 0, 50), {1, 50}));
    same(m.mT() + 1.0, reshape(xf, {20, 50}).mT() + 1.0);
    // Transcendentals: the float32 kernels' own rounding can differ by an ulp between packet
    // and scalar lanes, so at most one ulp of the half type.
    for (auto f :
         {+[](const Tensor& a) { return exp(a); }, +[](const Tensor& a) { return tanh(a); },
          +[](const Tensor& a) { return sigmoid(a); }, +[](const Tensor& a) { return silu(a); },
          +[](const Tensor& a) { return sin(a); }, +[](const Tensor& a) { return erf(a); }})
      require_within_ulps(f(x), cast(f(xf), t), t, 1.0);
    const Tensor arg = y * y + 0.5;  // rounded to the half type: the same input for both
    require_within_ulps(log(arg), cast(log(cast(arg, DType::f32)), t), t, 1.0);
    // Comparisons write bool, where selects.
    CHECK((x < y).dtype() == DType::b8);
    CHECK((x < y).to_vector() == (xf < yf).to_vector());
    CHECK(where(x > 0.0, x, y).to_vector() == cast(where(xf > 0.0, xf, yf), t).to_vector());
    // Large tensors take the threaded path.
    const Tensor big = cast(randn({1 << 17}, gen), t);
    same(big * big, cast(big, DType::f32) * cast(big, DType::f32));
  }
}

TEST_CASE("half: type promotion with wider floating types") {
  const Tensor b = ones({3}, DType::bf16), h = ones({3}, DType::f16), f = ones({3}),
               d = ones({3}, DType::f64);
  CHECK((b + f).dtype() == DType::f32);
  CHECK((f * h).dtype() == DType::f32);
  CHECK((b + h).dtype() == DType::f32);
  CHECK((b - d).dtype() == DType::f64);
  CHECK(where(f > 0.0, b, f).dtype() == DType::f32);
  CHECK(concat({b, f}).dtype() == DType::f32);
  CHECK_THROWS_AS(f + d, DTypeError);  // float32 with float64 stays an error
  CHECK_THROWS_AS(b + ones({3}, DType::i64), DTypeError);
}

TEST_CASE("half: reductions accumulate wide and round once") {
  Generator gen(11);
  for (DType t : kHalves) {
    const Tensor x = cast(rand({64, 300}, gen) + 0.5, t);
    const Tensor xd = cast(x, DType::f64);
    // sum of 19200 values near 1: a half accumulator would stall at 256 (bf16) / 2048 (f16).
    // Against the exact (float64) values: one rounding is half an ulp, plus float32's error.
    const double u = 0.51;
    require_within_ulps(sum(x), sum(xd), t, u);
    require_within_ulps(sum(x, {0}), sum(xd, {0}), t, u);
    require_within_ulps(sum(x, {1}), sum(xd, {1}), t, u);
    CHECK(sum(x).dtype() == t);
    CHECK(max(x, {1}).to_vector() == max(xd, {1}).to_vector());
    CHECK(min(x).item() == min(xd).item());
    // Composites run in float32 and round once.
    require_within_ulps(mean(x, {1}), mean(xd, {1}), t, u);
    require_within_ulps(softmax(x, 1), softmax(xd, 1), t, u);
    require_within_ulps(log_softmax(x, 1), log_softmax(xd, 1), t, u);
    require_within_ulps(var(x, {1}), var(xd, {1}), t, u);
    require_within_ulps(logsumexp(x, {0}), logsumexp(xd, {0}), t, u);
  }
}

TEST_CASE("half: matmul accumulates in float32 (bfloat16 through oneDNN)") {
  Generator gen(3);
  for (DType t : kHalves) {
    for (auto [m, k, n] : {std::array<int64_t, 3>{64, 96, 48}, {1, 2, 128}, {300, 17, 5}}) {
      const Tensor a = cast(randn({m, k}, gen), t), b = cast(randn({k, n}, gen), t);
      const Tensor ad = cast(a, DType::f64), bd = cast(b, DType::f64);
      const Tensor want = matmul(ad, bd);  // exact products of the half inputs
      // One rounding of a float32 accumulation: within half an ulp plus the float32 sum's error.
      const Tensor bound = matmul(abs(ad), abs(bd)) * (double(k) * 6e-8);
      auto check = [&](const Tensor& got) {
        REQUIRE(got.dtype() == t);
        const std::vector<double> g = got.to_vector(), w = want.to_vector(), e = bound.to_vector();
        for (std::size_t i = 0; i < g.size(); ++i)
          REQUIRE(std::fabs(g[i] - w[i]) <= 0.5 * half_ulp_at(w[i], t) + e[i]);
      };
      check(matmul(a, b));
      check(matmul(contiguous(a.mT()).mT(), b));  // column-major lhs
      check(matmul(a, contiguous(b.mT()).mT()));  // column-major rhs
    }
    // Batched, with a broadcast batch axis.
    const Tensor a = cast(randn({3, 4, 8, 16}, gen), t), b = cast(randn({4, 16, 8}, gen), t);
    const Tensor got = matmul(a, b), want = matmul(cast(a, DType::f64), cast(b, DType::f64));
    CHECK(got.shape() == Shape{3, 4, 8, 8});
    require_within_ulps(got, cast(want, t), t, 1.0);
  }
}

TEST_CASE("half: conv2d, its adjoints and gradients within the half's rounding") {
  Generator gen(5);
  for (DType t : kHalves) {
    const Tensor x = cast(randn({2, 3, 9, 9}, gen), t), w = cast(randn({4, 3, 3, 3}, gen), t);
    const Tensor xd = cast(x, DType::f64), wd = cast(w, DType::f64);
    for (auto [s, p] : {std::array<int64_t, 2>{1, 1}, {2, 0}}) {
      const Tensor y = conv2d(x, w, s, p), yd = conv2d(xd, wd, s, p);
      REQUIRE(y.dtype() == t);
      require_within_ulps(y, cast(yd, t), t, 1.0);
      const Tensor g = cast(randn(y.shape(), gen), t), gd = cast(g, DType::f64);
      require_within_ulps(conv_transpose2d(g, w, s, p, 9, 9),
                          cast(conv_transpose2d(gd, wd, s, p, 9, 9), t), t, 1.0);
      require_within_ulps(conv2d_weight_grad(x, g, 3, 3, s, p),
                          cast(conv2d_weight_grad(xd, gd, 3, 3, s, p), t), t, 1.0);
    }
  }
}

TEST_CASE("half: index ops and scatter_add") {
  for (DType t : kHalves) {
    const Tensor x = cast(arange(12, DType::f32), t).reshape({4, 3});
    const Tensor idx = from_vector({3, 0, 3}, {3}, DType::i64);
    CHECK(index_select(x, 0, idx).to_vector() ==
          std::vector<double>{9, 10, 11, 0, 1, 2, 9, 10, 11});
    // Many small adds into one slot: added in float32, rounded once (a half accumulator would
    // stop growing at 256 in bfloat16).
    const Tensor ones_src = ones({1000, 1}, t);
    const Tensor to0 = zeros({1000, 1}, DType::i64);
    const Tensor s = scatter_add(zeros({1, 1}, t), 0, to0, ones_src);
    CHECK(s.item() == (t == DType::bf16 ? 1000.0 : 1000.0));
  }
}

TEST_CASE("half: random draws") {
  for (DType t : kHalves) {
    Generator gen(21);
    const int64_t n = 200000;
    const Tensor u = rand({n}, gen, t), z = randn({n}, gen, t);
    CHECK(u.dtype() == t);
    CHECK(z.dtype() == t);
    CHECK(max(u).item() < 1.0);  // uniforms on the half's grid: never rounded up to 1
    CHECK(min(u).item() >= 0.0);
    const double se = 1.0 / std::sqrt(double(n));
    CHECK(std::fabs(mean(cast(u, DType::f64)).item() - 0.5) < 5 * 0.29 * se);
    CHECK(std::fabs(mean(cast(z, DType::f64)).item()) < 5 * se);
    CHECK(std::fabs(var(cast(z, DType::f64)).item() - 1.0) < 5 * 1.42 * se + 0.01);
    const Tensor r = rademacher({1000}, gen, t);
    CHECK(sum(eq(abs(r), ones_like(r))).item() == 1000);
    const Tensor bern = bernoulli({n}, 0.25, gen, t);
    CHECK(std::fabs(mean(cast(bern, DType::f64)).item() - 0.25) < 5 * 0.433 * se);
  }
}

TEST_CASE("half: first-order gradients of a small MLP match float32") {
  // The measured relative errors (2-norm over each gradient, seed 1): bfloat16 3e-3..5.7e-3,
  // float16 2.7e-4..7.0e-4 (five parameters); the bounds are the stated 1e-2 and 2e-3.
  for (DType t : kHalves) {
    const double tol = t == DType::bf16 ? 1e-2 : 2e-3;
    Generator gen(1);
    const Tensor x32 = randn({64, 8}, gen);
    const Tensor w1 = randn({8, 32}, gen) * 0.35, b1 = randn({32}, gen) * 0.1;
    const Tensor w2 = randn({32, 32}, gen) * 0.18, b2 = randn({32}, gen) * 0.1;
    const Tensor w3 = randn({32, 4}, gen) * 0.18;
    auto grads = [&](DType dt) {
      std::vector<Tensor> p;
      for (const Tensor& q : {w1, b1, w2, b2, w3})
        p.push_back(cast(q, dt).detach().requires_grad_());
      const Tensor x = cast(x32, dt);
      const Tensor h1 = silu(matmul(x, p[0]) + p[1]);
      const Tensor h2 = tanh(matmul(h1, p[2]) + p[3]);
      const Tensor y = matmul(h2, p[4]);
      const Tensor loss = mean(square(y - 0.5));
      REQUIRE(loss.dtype() == dt);
      std::vector<Tensor> g = grad(loss, p);
      for (const Tensor& gi : g) REQUIRE(gi.dtype() == dt);
      return g;
    };
    const std::vector<Tensor> gh = grads(t), gf = grads(DType::f32);
    for (std::size_t i = 0; i < gh.size(); ++i) {
      const double e = rel_error(gh[i], gf[i]);
      INFO(dtype_name(t) << " parameter " << i << " relative error " << e);
      CHECK(e < tol);
    }
  }
}

TEST_CASE("half: item, to_vector, clone, contiguous and device copies") {
  for (DType t : kHalves) {
    const Tensor x = cast(from_vector({1.5, -2.25, 3}, {3}, DType::f64), t);
    CHECK(x.to_vector() == std::vector<double>{1.5, -2.25, 3});
    CHECK(x[1].item() == -2.25);
    CHECK(x.clone().to_vector() == x.to_vector());
    const Tensor m = cast(arange(6, DType::f32), t).reshape({2, 3});
    CHECK(contiguous(m.mT()).to_vector() == std::vector<double>{0, 3, 1, 4, 2, 5});
    const Tensor s = m.to(Device::standin());
    CHECK(s.dtype() == t);
    CHECK((s * s).to(Device::cpu()).to_vector() == (m * m).to_vector());
  }
}
