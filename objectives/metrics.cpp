// CRPS (quantile and Gaussian), CRPS-sum and median errors (see metrics.hpp).
#include "objectives/metrics.hpp"

#include <cmath>
#include <numbers>

namespace sg::metrics {
namespace {

void require_floating(const char* who, const Tensor& t) {
  if (!is_floating(t.dtype()))
    fail<DTypeError>(who, ": expected floating values, got ", describe(t));
}

// The mask as 0/1 in the target's dtype, after checking shapes and devices against the target.
Tensor weights(const char* who, const Tensor& samples, const Tensor& target, const Tensor& mask) {
  if (samples.rank() != target.rank() + 1 || samples.rank() < 1)
    fail<ShapeError>(who, ": samples ", describe(samples), " must be [S] + target's shape ",
                     describe(target));
  for (int d = 0; d < target.rank(); ++d)
    if (samples.dim(d + 1) != target.dim(d))
      fail<ShapeError>(who, ": samples ", describe(samples), " do not match target ",
                       describe(target));
  if (samples.dim(0) < 1) fail<ValueError>(who, ": no samples");
  if (!(mask.shape() == target.shape()))
    fail<ShapeError>(who, ": mask ", describe(mask), " does not match target ", describe(target));
  require_floating(who, target);
  require_floating(who, samples);
  // A NaN or infinity would make the metric NaN: refused instead of reported as a result.
  const Tensor m = mask.to(target.dtype());
  if (!std::isfinite(sum(abs(samples)).item()))
    fail<ValueError>(who, ": the samples hold a non-finite value");
  if (!std::isfinite(sum(where(m > 0.0, abs(target), zeros_like(target))).item()))
    fail<ValueError>(who, ": a selected target is non-finite");
  return m;
}

// The target with unselected entries set to 0 (a NaN there must not reach the sums).
Tensor selected(const Tensor& target, const Tensor& m) {
  return where(m > 0.0, target, zeros_like(target));
}

std::vector<double> levels_of(int levels) {
  if (levels < 1) fail<ValueError>("crps: levels must be >= 1, got ", levels);
  std::vector<double> qs;
  for (int i = 1; i <= levels; ++i) qs.push_back(static_cast<double>(i) / (levels + 1));
  return qs;
}

double crps_of(const char* who, const Tensor& samples, const Tensor& target, const Tensor& m,
               int levels) {
  const double denom = sum(abs(target) * m).item();
  if (sum(m).item() == 0) fail<ValueError>(who, ": the mask selects no entry");
  if (!(denom > 0))
    fail<ValueError>(who, ": every selected target is 0, so the normaliser sum |y| vanishes");
  const std::vector<double> qs = levels_of(levels);
  const Tensor fq = quantile(samples, qs, 0);  // [Q, ...]
  double total = 0;
  for (size_t i = 0; i < qs.size(); ++i)
    total += quantile_loss(select(fq, 0, static_cast<int64_t>(i)), target, qs[i], m).item();
  return total / denom / static_cast<double>(qs.size());
}

}  // namespace

Tensor quantile_loss(const Tensor& forecast_q, const Tensor& target, double q, const Tensor& mask) {
  const Tensor below = (target <= forecast_q).to(target.dtype());
  return 2.0 * sum(abs((forecast_q - target) * (below - q)) * mask.to(target.dtype()));
}

double crps_quantile(const Tensor& samples, const Tensor& target, const Tensor& mask, int levels) {
  NoGradGuard off;
  const Tensor m = weights("crps_quantile", samples, target, mask);
  return crps_of("crps_quantile", samples, selected(target, m), m, levels);
}

double crps_sum(const Tensor& samples, const Tensor& target, const Tensor& mask, int levels) {
  NoGradGuard off;
  const Tensor m = weights("crps_sum", samples, target, mask);
  if (target.rank() < 1)
    fail<ShapeError>("crps_sum: target ", describe(target), " has no feature axis");
  return crps_of("crps_sum", sum(samples, {-1}), sum(selected(target, m), {-1}), mean(m, {-1}),
                 levels);
}

Tensor crps_gaussian(const Tensor& mu, const Tensor& sd, const Tensor& y) {
  // s [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)], Phi(z) = (1 + erf(z/sqrt 2))/2.
  const Tensor z = (y - mu) / sd;
  const double inv_sqrt2pi = 1 / std::sqrt(2 * std::numbers::pi);
  const Tensor pdf = exp(-0.5 * square(z)) * inv_sqrt2pi;
  return sd * (z * erf(z * std::numbers::sqrt2 / 2) + 2.0 * pdf - 1 / std::sqrt(std::numbers::pi));
}

PointErrors median_errors(const Tensor& samples, const Tensor& target, const Tensor& mask) {
  NoGradGuard off;
  const Tensor m = weights("median_errors", samples, target, mask);
  const double n = sum(m).item();
  if (n == 0) fail<ValueError>("median_errors: the mask selects no entry");
  const Tensor err = (median(samples, 0) - selected(target, m)) * m;
  return {sum(abs(err)).item() / n, std::sqrt(sum(square(err)).item() / n),
          static_cast<int64_t>(n)};
}

}  // namespace sg::metrics
