// Parameter initialisation with an explicit generator (so a model is reproducible from a seed):
// Xavier/Glorot and Kaiming/He, uniform and normal, from a weight's fan-in and fan-out.
#pragma once
#include "autodiff/core/rng.hpp"
#include "autodiff/core/tensor.hpp"

namespace sg::nn::init {

// fan_in, fan_out of a weight [out, in, k...] (conv) or [in, out] (our Linear stores [in, out]).
struct Fans {
  int64_t in, out;
};
Fans linear_fans(int64_t in, int64_t out);
Fans conv_fans(int64_t in_channels, int64_t out_channels, int64_t kernel_area);

// U(-a, a) with a = gain sqrt(6 / (fan_in + fan_out))
Tensor xavier_uniform(const Shape& shape, Fans f, Generator& g, double gain = 1.0,
                      DType t = DType::f32);
// N(0, gain^2 2 / (fan_in + fan_out))
Tensor xavier_normal(const Shape& shape, Fans f, Generator& g, double gain = 1.0,
                     DType t = DType::f32);
// U(-b, b) with b = gain sqrt(3 / fan_in); gain sqrt(2) for ReLU
Tensor kaiming_uniform(const Shape& shape, Fans f, Generator& g, double gain = 1.4142135623730951,
                       DType t = DType::f32);
// N(0, gain^2 / fan_in)
Tensor kaiming_normal(const Shape& shape, Fans f, Generator& g, double gain = 1.4142135623730951,
                      DType t = DType::f32);
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Linear/Conv weights and biases
Tensor fan_in_uniform(const Shape& shape, Fans f, Generator& g, DType t = DType::f32);

}  // namespace sg::nn::init
