// Probabilistic forecast and imputation metrics (CSDI's evaluation): CRPS by the 19-quantile
// approximation normalised by the targets' magnitude, CRPS-sum over features, the exact CRPS of
// a Gaussian forecast, and MAE / RMSE of the samples' median. Samples are [S, ...] (S draws of
// a tensor shaped like the target); `mask` (bool or 0/1 float, shaped like the target) selects
// the entries evaluated. Values are in the units given (un-standardise first, as CSDI does).
//
//   double crps = sg::metrics::crps_quantile(samples, truth, heldout);   // CSDI's CRPS
//   auto e = sg::metrics::median_errors(samples, truth, heldout);        // e.mae, e.rmse
#pragma once
#include "autodiff/sg.hpp"

namespace sg::metrics {

// 2 sum |(F_q - y)(1{y <= F_q} - q)| m: the quantile (pinball) loss of forecast quantile F_q.
// Differentiable in F_q (and y).
Tensor quantile_loss(const Tensor& forecast_q, const Tensor& target, double q, const Tensor& mask);

// (1/Q) sum_q quantile_loss(F_q, y, q, m) / sum |y| m over q = 1/(Q+1), ..., Q/(Q+1) (Q = 19:
// 0.05, ..., 0.95), F_q the samples' quantile by linear interpolation. ValueError when the mask
// selects nothing or every selected target is 0 (the normaliser vanishes).
double crps_quantile(const Tensor& samples, const Tensor& target, const Tensor& mask,
                     int levels = 19);
// The same for the sum over the last axis (features): targets and samples summed over it, the
// mask averaged over it (CSDI's CRPS-sum).
double crps_sum(const Tensor& samples, const Tensor& target, const Tensor& mask, int levels = 19);

// Exact CRPS of N(mean, std^2) at y, elementwise: s [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)],
// z = (y - mean) / s. Differentiable.
Tensor crps_gaussian(const Tensor& mean, const Tensor& std, const Tensor& y);

struct PointErrors {
  double mae = 0, rmse = 0;
  int64_t count = 0;  // entries evaluated
};
// The per-entry median over the samples (NumPy's: the mean of the middle two for even S)
// against the target, over the masked entries.
PointErrors median_errors(const Tensor& samples, const Tensor& target, const Tensor& mask);

}  // namespace sg::metrics
