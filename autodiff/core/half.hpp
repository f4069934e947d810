// The two 2-byte storage types, bfloat16 and float16 (IEEE 754 binary16), and their conversions.
// They are storage only: no arithmetic is defined on them. Kernels widen to float32, compute,
// and round once on store (see docs/design.md, "Mixed precision").
//
// Every conversion is __host__ __device__ (the CUDA backend uses the same code) and exact in
// its rules: narrowing rounds to nearest, ties to even, from the source's exact value (a double
// is rounded once, never through float); values beyond the largest finite half round to
// infinity; -0 keeps its sign; subnormals are produced and read; NaN stays NaN (quiet, sign and
// the leading payload bits kept).
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__CUDACC__)
#define SG_HD __host__ __device__
#else
#define SG_HD
#endif

namespace sg {

struct bfloat16 {
  uint16_t bits = 0;
};
struct float16 {
  uint16_t bits = 0;
};
template <class T>
inline constexpr bool is_half_v = std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>;

namespace half_detail {

// The bits of a value as another type of the same size (memcpy is a device function too).
template <class To, class From>
SG_HD inline To bit_cast(From f) {
  static_assert(sizeof(To) == sizeof(From));
  To t;
  memcpy(&t, &f, sizeof t);
  return t;
}
SG_HD inline uint32_t bits_of(float f) { return bit_cast<uint32_t>(f); }
SG_HD inline uint64_t bits_of(double d) { return bit_cast<uint64_t>(d); }
SG_HD inline float float_of(uint32_t u) { return bit_cast<float>(u); }

// The layout of a 2-byte format: M stored mantissa bits, E exponent bits.
template <class H>
struct Format;
template <>
struct Format<bfloat16> {
  static constexpr int M = 7, E = 8;
};
template <>
struct Format<float16> {
  static constexpr int M = 10, E = 5;
};

// Rounds the float or double x to the 2-byte format H (round to nearest, ties to even), working
// on the bit pattern so that the source value is used exactly.
template <class H, class F>
SG_HD inline uint16_t round_bits(F x) {
  using U = std::conditional_t<sizeof(F) == 4, uint32_t, uint64_t>;
  constexpr int SM = sizeof(F) == 4 ? 23 : 52;  // source mantissa bits
  constexpr int SE = sizeof(F) == 4 ? 8 : 11;   // source exponent bits
  constexpr int SBIAS = (1 << (SE - 1)) - 1;
  constexpr int M = Format<H>::M, E = Format<H>::E;
  constexpr int BIAS = (1 << (E - 1)) - 1, EMAX = (1 << E) - 1;
  constexpr uint32_t kInf = static_cast<uint32_t>(EMAX) << M;
  const U u = bits_of(x);
  const uint32_t sign = static_cast<uint32_t>(u >> (8 * sizeof(F) - 1)) << 15;
  const int e = static_cast<int>((u >> SM) & ((U(1) << SE) - 1));
  const U mant = u & ((U(1) << SM) - 1);
  if (e == (1 << SE) - 1) {  // infinity, or NaN (made quiet, leading payload bits kept)
    if (mant == 0) return static_cast<uint16_t>(sign | kInf);
    const uint32_t payload = static_cast<uint32_t>(mant >> (SM - M));
    return static_cast<uint16_t>(sign | kInf | (1u << (M - 1)) | payload);
  }
  if (e == 0 && mant == 0) return static_cast<uint16_t>(sign);  // +-0
  // x = full * 2^(e' - SBIAS - SM), with full the mantissa and its implicit bit.
  const U full = e == 0 ? mant : (mant | (U(1) << SM));
  const int eu = (e == 0 ? 1 : e) - SBIAS;  // unbiased exponent of full's leading position
  const int t = eu + BIAS;                  // the target's biased exponent
  // Keep M + 1 bits (normal) or fewer (subnormal target): drop `shift` low bits of full.
  int shift = SM - M;
  if (t < 1) shift += 1 - t;
  if (shift > static_cast<int>(8 * sizeof(U)) - 1) return static_cast<uint16_t>(sign);
  U q = full >> shift;
  const U rem = full & ((U(1) << shift) - 1), halfway = U(1) << (shift - 1);
  if (rem > halfway || (rem == halfway && (q & 1))) ++q;
  // q holds the implicit bit for a normal target: adding (t - 1) << M sets the exponent, and a
  // carry out of the mantissa moves it up by one, to infinity past the largest finite value.
  uint64_t r = t < 1 ? static_cast<uint64_t>(q)
                     : static_cast<uint64_t>(q) + (static_cast<uint64_t>(t - 1) << M);
  if (t >= EMAX || r >= kInf) r = kInf;
  return static_cast<uint16_t>(sign | static_cast<uint32_t>(r));
}

}  // namespace half_detail

SG_HD inline float to_float(bfloat16 h) {
  return half_detail::float_of(static_cast<uint32_t>(h.bits) << 16);
}
SG_HD inline float to_float(float16 h) {
  const uint32_t sign = static_cast<uint32_t>(h.bits & 0x8000u) << 16;
  const uint32_t e = (h.bits >> 10) & 0x1fu, m = h.bits & 0x3ffu;
  if (e == 0x1f) return half_detail::float_of(sign | 0x7f800000u | (m << 13));  // inf, NaN
  if (e == 0) {  // zero or subnormal: m 2^-24, exact in float
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return half_detail::float_of(sign | ((e + 112u) << 23) | (m << 13));
}
SG_HD inline double to_double(bfloat16 h) { return static_cast<double>(to_float(h)); }
SG_HD inline double to_double(float16 h) { return static_cast<double>(to_float(h)); }

// float or double -> H, correctly rounded.
template <class H, class F>
SG_HD inline H to_half(F x) {
  static_assert(std::is_same_v<F, float> || std::is_same_v<F, double>);
  return H{half_detail::round_bits<H>(x)};
}

}  // namespace sg
