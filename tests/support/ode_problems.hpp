// ODE test problems with known solutions, shared by the solver tests:
//   rotation: y' = y A^T, A = [[-0.5, 2], [-2, -0.5]], y(t) = y0 R(t)^T, R = e^{-t/2} rot(2t);
//   arenstorf: the restricted three-body orbit, periodic with period kArenstorfPeriod.
#pragma once
#include <cmath>

#include "autodiff/sg.hpp"
#include "sde/ode.hpp"

namespace sg::test {
inline ode::Dynamics rotation() {
  return [](double, const ode::State& y) {
    static const Tensor a = from_vector({-0.5, 2.0, -2.0, -0.5}, {2, 2}, DType::f64);
    return ode::State{matmul(y[0], a.mT())};
  };
}
inline Tensor rotation_exact(const Tensor& y0, double t) {
  const double c = std::cos(2 * t), s = std::sin(2 * t), e = std::exp(-0.5 * t);
  return matmul(y0, from_vector({e * c, e * s, -e * s, e * c}, {2, 2}, DType::f64).mT());
}
inline const Tensor& rotation_start() {
  static const Tensor y = from_vector({0.7, -0.4}, {1, 2}, DType::f64);
  return y;
}

inline constexpr double kArenstorfMu = 0.012277471;
inline constexpr double kArenstorfPeriod = 17.0652165601579625588917206249;
// state [y1, y2, y1', y2'] as a [1, 4] row
inline ode::Dynamics arenstorf() {
  return [](double, const ode::State& s) {
    constexpr double mu = kArenstorfMu, mu1 = 1 - kArenstorfMu;
    const Tensor& z = s[0];
    const Tensor y1 = slice(z, 1, 0, 1), y2 = slice(z, 1, 1, 2), v1 = slice(z, 1, 2, 3),
                 v2 = slice(z, 1, 3, 4);
    const Tensor d1 = pow(square(y1 + mu) + square(y2), 1.5);
    const Tensor d2 = pow(square(y1 - mu1) + square(y2), 1.5);
    return ode::State{concat({v1, v2, y1 + v2 * 2.0 - (y1 + mu) * mu1 / d1 - (y1 - mu1) * mu / d2,
                              y2 - v1 * 2.0 - y2 * mu1 / d1 - y2 * mu / d2},
                             1)};
  };
}
inline Tensor arenstorf_start() {
  return from_vector({0.994, 0.0, 0.0, -2.00158510637908252240537862224}, {1, 4}, DType::f64);
}
}  // namespace sg::test
