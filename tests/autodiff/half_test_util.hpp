// Shared by the mixed-precision tests (test_half*.cpp).
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "autodiff/core/tensor.hpp"

namespace sg::half_test {

// ||a - b|| / ||b|| over all elements (2-norm).
inline double rel_error(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  double num = 0, den = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    num += (x[i] - y[i]) * (x[i] - y[i]);
    den += y[i] * y[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

}  // namespace sg::half_test
