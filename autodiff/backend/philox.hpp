// Philox-4x32-10 (Salmon et al., SC'11), the counter-based generator behind every random op.
// Element i of a draw uses counter (offset + i) under key (seed), so a value depends only on
// (seed, offset, i): identical on CPU and CUDA and for any thread count.
#pragma once
#include <cstdint>

#include "autodiff/backend/functors.hpp"

namespace sg::philox {

struct Block {
  uint32_t v[4];
};

SG_HD inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// Ten rounds of Philox over the 128-bit counter (ctr, 0) with the 64-bit key `seed`.
SG_HD inline Block generate(uint64_t seed, uint64_t ctr) {
  uint32_t c0 = static_cast<uint32_t>(ctr), c1 = static_cast<uint32_t>(ctr >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(0xD2511F53u, c0, hi0, lo0);
    mulhilo(0xCD9E8D57u, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// Uniform in [0, 1) from the block's leading words: 24 bits for float, 53 for double.
SG_HD inline float uniform_f32(const Block& b, int word = 0) {
  return static_cast<float>(b.v[word] >> 8) * (1.0f / 16777216.0f);
}
SG_HD inline double uniform_f64(const Block& b, int word = 0) {
  const uint64_t bits = ((static_cast<uint64_t>(b.v[word]) << 32) | b.v[word + 1]) >> 11;
  return static_cast<double>(bits) * (1.0 / 9007199254740992.0);
}

// The value of element `i` of a draw of `kind` with parameter p (Bernoulli probability).
template <class T>
SG_HD inline T sample(RandomKind kind, uint64_t seed, uint64_t ctr, double p) {
  const Block b = generate(seed, ctr);
  constexpr bool dbl = sizeof(T) == 8;
  switch (kind) {
    case RandomKind::uniform:
      return dbl ? T(uniform_f64(b)) : T(uniform_f32(b));
    case RandomKind::rademacher:
      return (b.v[0] & 1u) ? T(1) : T(-1);
    case RandomKind::bernoulli:
      return (dbl ? uniform_f64(b) < p : uniform_f32(b) < p) ? T(1) : T(0);
    case RandomKind::normal:
      break;
  }
  // Box-Muller on two uniforms; u1 in (0, 1] so the log is finite.
  if constexpr (dbl) {
    const double u1 = 1.0 - uniform_f64(b, 0), u2 = uniform_f64(b, 2);
    return T(::sqrt(-2.0 * ::log(u1)) * ::cos(6.283185307179586 * u2));
  } else {
    const float u1 = 1.0f - uniform_f32(b, 0), u2 = uniform_f32(b, 1);
    return T(::sqrtf(-2.0f * ::logf(u1)) * ::cosf(6.2831853f * u2));
  }
}

}  // namespace sg::philox
