// Initialisers (see init.hpp for the formulas).
#include "nn/init.hpp"

#include <cmath>

#include "autodiff/ops/ops.hpp"

namespace sg::nn::init {

Fans linear_fans(int64_t in, int64_t out) { return {in, out}; }
Fans conv_fans(int64_t ci, int64_t co, int64_t k) { return {ci * k, co * k}; }

namespace {
Tensor uniform(const Shape& s, double a, Generator& g, DType t) {
  return (rand(s, g, t) * 2.0 - 1.0) * a;
}
}  // namespace

Tensor xavier_uniform(const Shape& s, Fans f, Generator& g, double gain, DType t) {
  return uniform(s, gain * std::sqrt(6.0 / double(f.in + f.out)), g, t);
}
Tensor xavier_normal(const Shape& s, Fans f, Generator& g, double gain, DType t) {
  return randn(s, g, t) * (gain * std::sqrt(2.0 / double(f.in + f.out)));
}
Tensor kaiming_uniform(const Shape& s, Fans f, Generator& g, double gain, DType t) {
  return uniform(s, gain * std::sqrt(3.0 / double(f.in)), g, t);
}
Tensor kaiming_normal(const Shape& s, Fans f, Generator& g, double gain, DType t) {
  return randn(s, g, t) * (gain / std::sqrt(double(f.in)));
}
Tensor fan_in_uniform(const Shape& s, Fans f, Generator& g, DType t) {
  return uniform(s, 1.0 / std::sqrt(double(f.in)), g, t);
}

}  // namespace sg::nn::init
