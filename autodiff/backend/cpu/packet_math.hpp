// The Eigen packet (SIMD) form of each elementwise functor the CPU backend can vectorise.
// Only the CPU includes this; the scalar functors in functors.hpp stay the definition, and
// tests check packet against scalar results. Capability flags come from Eigen's packet_traits.
#pragma once
#include <Eigen/Core>
#include <limits>
#include <type_traits>

#include "autodiff/backend/functors.hpp"

namespace sg::cpu {

namespace ei = Eigen::internal;
template <class T>
using Packet = typename ei::packet_traits<T>::type;
template <class T>
inline constexpr int kLanes = ei::unpacket_traits<Packet<T>>::size;

// Eigen's vectorised exp clamps its argument and so never underflows (exp(-1000) comes out
// as the smallest normal number instead of 0). Lanes below the clamp are exactly 0 where
// e^x < half the smallest subnormal (x < -104 in float32, -746 in float64), selected in the
// packet; only packets with a lane in the subnormal band between take the scalar path, which
// is exact there. (Scalar for every low lane made softmax over widely spread logits 20x
// slower.)
template <class T>
Packet<T> exp_packet(const Packet<T>& x) {
  const T lowest = sizeof(T) == 4 ? T(-87.0) : T(-708.0);
  const T zero_below = sizeof(T) == 4 ? T(-104.0) : T(-746.0);
  const Packet<T> low = ei::pcmp_lt(x, ei::pset1<Packet<T>>(lowest));
  if (!ei::predux_any(low)) return ei::pexp(x);
  const Packet<T> zero = ei::pcmp_lt(x, ei::pset1<Packet<T>>(zero_below));
  if (!ei::predux_any(ei::pandnot(low, zero))) return ei::pselect(zero, ei::pzero(x), ei::pexp(x));
  alignas(64) T lanes[kLanes<T>];
  ei::pstore(lanes, x);
  for (T& v : lanes) v = fn::Exp{}(v);
  return ei::pload<Packet<T>>(lanes);
}

// Whether Packet<T> is the ISA vector of `Elem` with `Bytes` bytes (compared by element type
// and size: is_same on __m512 & co. drops their alignment attributes and warns).
template <class T, class Elem, std::size_t Bytes>
inline constexpr bool is_packet = std::is_same_v<T, Elem> && sizeof(Packet<T>) == Bytes;

// Square root, correctly rounded as std::sqrt at every input. Eigen's psqrt under
// EIGEN_FAST_MATH (its default) is an rsqrt estimate plus Newton steps: NaN at +inf, 0 for
// subnormals, 1-2 bits off elsewhere. The ISA's own instruction is exact and as fast.
template <class T>
Packet<T> sqrt_packet(const Packet<T>& x) {
  using P = Packet<T>;
#if defined(EIGEN_VECTORIZE_AVX512)
  if constexpr (is_packet<T, float, 64>) return _mm512_sqrt_ps(x);
  if constexpr (is_packet<T, double, 64>) return _mm512_sqrt_pd(x);
#endif
#if defined(EIGEN_VECTORIZE_AVX)
  if constexpr (is_packet<T, float, 32>) return _mm256_sqrt_ps(x);
  if constexpr (is_packet<T, double, 32>) return _mm256_sqrt_pd(x);
#endif
#if defined(EIGEN_VECTORIZE_SSE2)
  if constexpr (is_packet<T, float, 16>) return _mm_sqrt_ps(x);
  if constexpr (is_packet<T, double, 16>) return _mm_sqrt_pd(x);
#endif
  alignas(64) T lanes[kLanes<T>];
  ei::pstore(lanes, x);
  for (T& v : lanes) v = fn::Sqrt{}(v);
  return ei::pload<P>(lanes);
}

// Eigen's plog clamps its argument to the smallest normal number, so log of a subnormal comes
// out as log(FLT_MIN) / log(DBL_MIN). Packets with a subnormal lane take the scalar path.
template <class T>
Packet<T> log_packet(const Packet<T>& x) {
  using P = Packet<T>;
  const P sub = ei::pand(ei::pcmp_lt(x, ei::pset1<P>(std::numeric_limits<T>::min())),
                         ei::pcmp_lt(ei::pzero(x), x));
  if (!ei::predux_any(sub)) return ei::plog(x);
  alignas(64) T lanes[kLanes<T>];
  ei::pstore(lanes, x);
  for (T& v : lanes) v = fn::Log{}(v);
  return ei::pload<P>(lanes);
}

// PacketForm<F, T>::ok says whether F has a SIMD form for T; run(f, p) applies it.
template <class F, class T>
struct PacketForm {
  static constexpr bool ok = false;
};

// s + x s (1 - s) with s = sigma(x), as fn::SiluGrad.
template <class T>
Packet<T> silu_grad_packet(const Packet<T>& x) {
  const Packet<T> one = ei::pset1<Packet<T>>(T(1));
  const Packet<T> s = ei::pdiv(one, ei::padd(one, exp_packet<T>(ei::pnegate(x))));
  return ei::padd(s, ei::pmul(ei::pmul(x, s), ei::psub(one, s)));
}

// s (1 - s) (2 + x (1 - 2 s)) with s = sigma(x), as fn::SiluGrad2.
template <class T>
Packet<T> silu_grad2_packet(const Packet<T>& x) {
  const Packet<T> one = ei::pset1<Packet<T>>(T(1)), two = ei::pset1<Packet<T>>(T(2));
  const Packet<T> s = ei::pdiv(one, ei::padd(one, exp_packet<T>(ei::pnegate(x))));
  const Packet<T> u = ei::pmul(s, ei::psub(one, s));
  return ei::pmul(u, ei::padd(two, ei::pmul(x, ei::psub(one, ei::pmul(two, s)))));
}

#define SG_PACKET1(Functor, flag, expr)                                                     \
  template <class T>                                                                        \
  struct PacketForm<fn::Functor, T> {                                                       \
    using Tr = ei::packet_traits<T>;                                                        \
    static constexpr bool ok = std::is_floating_point_v<T> && (Tr::Vectorizable) && (flag); \
    static Packet<T> run(const fn::Functor&, const Packet<T>& x) { return expr; }           \
  };
// The sign bit flipped: Eigen's AVX-512 pnegate is 0 - x, which gives +0 for +0.
SG_PACKET1(Neg, true, ei::pxor(x, ei::pset1<Packet<T>>(T(-0.0))))
SG_PACKET1(Exp, Tr::HasExp, exp_packet<T>(x))
SG_PACKET1(Log, Tr::HasLog, log_packet<T>(x))
SG_PACKET1(Log1p, Tr::HasLog1p, ei::plog1p(x))
SG_PACKET1(Expm1, Tr::HasExpm1, ei::pexpm1(x))
SG_PACKET1(Sqrt, true, sqrt_packet<T>(x))
SG_PACKET1(Abs, Tr::HasAbs, ei::pabs(x))
SG_PACKET1(Sin, Tr::HasSin, ei::psin(x))
SG_PACKET1(Cos, Tr::HasCos, ei::pcos(x))
SG_PACKET1(Tanh, Tr::HasTanh, ei::ptanh(x))
SG_PACKET1(Sigmoid, Tr::HasExp&& Tr::HasDiv,
           ei::pdiv(ei::pset1<Packet<T>>(T(1)),
                    ei::padd(ei::pset1<Packet<T>>(T(1)), exp_packet<T>(ei::pnegate(x)))))
SG_PACKET1(Rsqrt, Tr::HasDiv, ei::pdiv(ei::pset1<Packet<T>>(T(1)), sqrt_packet<T>(x)))
SG_PACKET1(Silu, Tr::HasExp&& Tr::HasDiv,
           ei::pdiv(x, ei::padd(ei::pset1<Packet<T>>(T(1)), exp_packet<T>(ei::pnegate(x)))))
SG_PACKET1(SiluGrad, Tr::HasExp&& Tr::HasDiv, silu_grad_packet<T>(x))
SG_PACKET1(SiluGrad2, Tr::HasExp&& Tr::HasDiv, silu_grad2_packet<T>(x))
#undef SG_PACKET1

#define SG_PACKET2(Functor, expr)                                                                 \
  template <class T>                                                                              \
  struct PacketForm<fn::Functor, T> {                                                             \
    static constexpr bool ok = std::is_floating_point_v<T> && ei::packet_traits<T>::Vectorizable; \
    static Packet<T> run(const fn::Functor&, const Packet<T>& a, const Packet<T>& b) {            \
      return expr;                                                                                \
    }                                                                                             \
  };
SG_PACKET2(Add, ei::padd(a, b))
SG_PACKET2(Sub, ei::psub(a, b))
SG_PACKET2(Mul, ei::pmul(a, b))
SG_PACKET2(Div, ei::pdiv(a, b))
SG_PACKET2(Maximum, ei::pmax<Eigen::PropagateNaN>(a, b))
SG_PACKET2(Minimum, ei::pmin<Eigen::PropagateNaN>(a, b))
#undef SG_PACKET2

}  // namespace sg::cpu
