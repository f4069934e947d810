// argsort on the host, sort / quantile / median as gathers through it (see sort.hpp).
#include "autodiff/ops/sort.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"

namespace sg {

Tensor argsort(const Tensor& x, int64_t axis, bool descending) {
  if (x.rank() == 0) fail<ShapeError>("argsort: ", describe(x), " has no axis to sort along");
  const int ax = static_cast<int>(normalize_axis(axis, x.rank(), "argsort"));
  const int last = x.rank() - 1;
  const Tensor moved = transpose(x.detach(), ax, last);  // the sorted axis last
  const std::vector<double> v = contiguous(moved).to_vector();
  const int64_t n = x.dim(ax), rows = n ? x.numel() / n : 0;
  std::vector<int64_t> idx(static_cast<size_t>(x.numel()));
  // Strict weak order with NaN after every number.
  auto before = [&](double a, double b) {
    if (std::isnan(a)) return false;
    if (std::isnan(b)) return true;
    return descending ? a > b : a < b;
  };
  for (int64_t r = 0; r < rows; ++r) {
    const auto begin = idx.begin() + r * n;
    std::iota(begin, begin + n, int64_t{0});
    const double* row = v.data() + r * n;
    std::stable_sort(begin, begin + n,
                     [&](int64_t i, int64_t j) { return before(row[i], row[j]); });
  }
  const Tensor sorted_moved = from_indices(idx, moved.shape(), x.device());
  return contiguous(transpose(sorted_moved, ax, last));
}

Tensor sort(const Tensor& x, int64_t axis, bool descending) {
  return gather(x, axis, argsort(x, axis, descending));
}

Tensor quantile(const Tensor& x, const std::vector<double>& qs, int64_t axis) {
  if (qs.empty()) fail<ValueError>("quantile: no quantile levels given");
  for (double q : qs)
    if (!(q >= 0 && q <= 1)) fail<ValueError>("quantile: level ", q, " is outside [0, 1]");
  if (x.rank() == 0) fail<ShapeError>("quantile: ", describe(x), " has no axis");
  const int64_t ax = normalize_axis(axis, x.rank(), "quantile");
  const int64_t n = x.dim(ax);
  if (n == 0) fail<ValueError>("quantile: axis ", ax, " of ", describe(x), " is empty");
  const Tensor s = sort(x, ax);
  std::vector<Tensor> out;
  for (double q : qs) {
    // x_(lo) + frac (x_(hi) - x_(lo)) at position q (n - 1) = lo + frac.
    const double pos = q * static_cast<double>(n - 1);
    const auto lo = static_cast<int64_t>(std::floor(pos));
    const int64_t hi = std::min(lo + 1, n - 1);
    const double frac = pos - static_cast<double>(lo);
    const Tensor a = select(s, ax, lo);
    out.push_back(frac == 0 ? a : a + (select(s, ax, hi) - a) * frac);
  }
  return stack(out, 0);
}

Tensor median(const Tensor& x, int64_t axis) { return select(quantile(x, {0.5}, axis), 0, 0); }

}  // namespace sg
