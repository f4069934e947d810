// Sorting and order statistics as composites over gather. argsort reads the values on the host
// (a synchronisation on a GPU) and returns int64 indices on x's device; sort and quantile gather
// through them, so their derivatives of every order are gather's: the permutation is piecewise
// constant in x. Conventions: stable (ties keep the earlier index first, so the derivative at a
// tie follows that order), NaNs sort last in both directions.
//
//   sg::Tensor s = sg::sort(x, 0);                           // ascending along axis 0
//   sg::Tensor q = sg::quantile(samples, {0.05, 0.5, 0.95}, 0);  // [3, ...]
#pragma once
#include <vector>

#include "autodiff/core/tensor.hpp"

namespace sg {

Tensor argsort(const Tensor& x, int64_t axis = -1, bool descending = false);
Tensor sort(const Tensor& x, int64_t axis = -1, bool descending = false);
// Quantiles along `axis` by linear interpolation between order statistics (NumPy's and
// torch.quantile's default): q_j in [0, 1] at position q_j (n - 1). Shape: [len(qs)] followed by
// x's shape without `axis`. ValueError for q outside [0, 1], no q, or an empty axis.
Tensor quantile(const Tensor& x, const std::vector<double>& qs, int64_t axis);
// quantile 0.5: the mean of the two middle values for an even count (NumPy's median;
// torch.median returns the lower one).
Tensor median(const Tensor& x, int64_t axis);

}  // namespace sg
