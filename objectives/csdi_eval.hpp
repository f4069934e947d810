// CSDI's evaluation (issue 17 item 6; spec/math.md section 5): imputers that return samples
// [S, B, K, L] (CSDI's layout: B series, K features, L time points), the simple baselines of
// the comparison (per-feature mean, linear interpolation in time, last observation carried
// forward, a per-feature Gaussian), an evaluation that un-standardises and scores the held-out
// targets (CRPS by 19 quantiles, CRPS-sum, MAE and RMSE of the median), and a training loop for
// nn::CsdiNet with CSDI's learning-rate drops and validation over every diffusion step.
//
//   auto split = sg::nn::split_by_time(air, 0.6, 0.1);
//   auto scaler = sg::nn::Standardizer::fit(split.train);
//   sg::nn::Windows test = sg::nn::make_windows(scaler.apply(split.test), 15, 15);  // [W, L, K]
//   sg::Tensor target = sg::nn::holdout_mask(test.observed, 0.5, gen);
//   auto s = sg::obj::evaluate_imputer(sg::obj::linear_imputer(), test, target, scaler, gen);
//   // s.crps, s.crps_sum, s.mae, s.rmse in the data's units
//
// Baselines use only the conditioning entries (cond = observed and not target) of each series:
// a feature with no conditioning entry in a series falls back to that feature's mean over the
// conditioning entries of the whole batch, and to 0 (the standardised mean) when the batch has
// none either. They are computed on the host in float64 and returned on x0's device and dtype.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "autodiff/sg.hpp"
#include "nn/csdi.hpp"
#include "nn/tables.hpp"
#include "objectives/csdi.hpp"

namespace sg::obj {

// (x0 [B, K, L], cond_mask [B, K, L] bool, gen) -> samples [S, B, K, L]. x0 holds the
// conditioning values on cond_mask and 0 elsewhere (the evaluation zeroes the targets, so an
// imputer cannot see them). Samples must equal x0 on cond_mask.
using CsdiImputer = std::function<Tensor(const Tensor& x0, const Tensor& cond_mask, Generator&)>;

// ---- baselines (deterministic ones return S = 1; `repeat` copies for S > 1)
// Every entry off cond: the mean of the series' conditioning entries of its feature.
Tensor impute_mean(const Tensor& x0, const Tensor& cond_mask);
// Linear interpolation along L between the nearest conditioning entries of the same feature,
// constant extrapolation (the first / last conditioning value) before the first and after the
// last; a feature with no conditioning entry in the series gets the fallback mean.
Tensor impute_linear(const Tensor& x0, const Tensor& cond_mask);
// Last observation carried forward; entries before the first conditioning entry take that first
// one (carried backward); no conditioning entry: the fallback mean.
Tensor impute_locf(const Tensor& x0, const Tensor& cond_mask);

// A per-series, per-feature Gaussian N(mean, std^2) of the conditioning entries (population
// std). Fewer than two conditioning entries, or zero spread, fall back to the feature's std over
// the batch's conditioning entries, then to 1 (the standardised unit). mean, std: [B, K, 1].
struct CsdiGaussianFit {
  Tensor mean, std;
};
CsdiGaussianFit fit_gaussian_baseline(const Tensor& x0, const Tensor& cond_mask);
// n_samples draws of the fit off cond_mask (x0 on it): [S, B, K, L].
Tensor impute_gaussian(const Tensor& x0, const Tensor& cond_mask, int64_t n_samples,
                       Generator& gen);
// The exact CRPS of that Gaussian in the data's units, normalised as CSDI's:
//   sum_target crps_gaussian(mu_k, sd_k, y) / sum_target |y|,  mu_k = mean * std_k + mean_k,
//   sd_k = std * std_k (the scaler's statistics), y the un-standardised truth.
// windows/target as evaluate_imputer's.
double gaussian_baseline_crps(const nn::Windows& windows, const Tensor& target,
                              const nn::Standardizer& scaler);

// The baselines as imputers; deterministic ones repeated `samples` times (1: a point forecast).
CsdiImputer mean_imputer(int64_t samples = 1);
CsdiImputer linear_imputer(int64_t samples = 1);
CsdiImputer locf_imputer(int64_t samples = 1);
CsdiImputer gaussian_imputer(int64_t samples = 100);
// CSDI itself: csdi_impute with the net's dtype (x0 cast in, samples cast back to x0's dtype),
// the net in eval mode while sampling. The net must outlive the imputer.
CsdiImputer csdi_imputer(nn::CsdiNet& net, const DdpmSchedule& s, int64_t samples = 100,
                         int64_t chunk = 0);

// ---- evaluation
struct ImputationScores {
  double crps = 0;           // metrics::crps_quantile, 19 levels, over the target entries
  double crps_sum = 0;       // metrics::crps_sum (features summed at each time)
  double mae = 0, rmse = 0;  // of the samples' median
  int64_t count = 0;         // target entries scored
};
// windows: standardised values and observed masks [W, L, K] (nn::make_windows); target: bool
// [W, L, K] inside observed (nn::holdout_mask). Conditioning = observed and not target; the
// imputer sees [W, K, L] tables with the targets zeroed; samples and truth are un-standardised
// with `scaler` before scoring. ShapeError on mismatched shapes or imputer output; ValueError
// when target is not inside observed, selects nothing, or a window has no observed entry.
ImputationScores evaluate_imputer(const CsdiImputer& imputer, const nn::Windows& windows,
                                  const Tensor& target, const nn::Standardizer& scaler,
                                  Generator& gen);
// The same scores for given samples [S, W, K, L] (standardised) against the windows' values.
ImputationScores score_imputation(const Tensor& samples, const nn::Windows& windows,
                                  const Tensor& target, const nn::Standardizer& scaler);

// ---- training
struct CsdiTrainOptions {
  int64_t steps = 1000;        // optimiser steps
  int64_t batch = 16;          // windows per step (drawn without replacement, epoch by epoch)
  double lr = 1e-3;            // Adam; x0.1 at 75% and again at 90% of the steps (as CSDI)
  double weight_decay = 1e-6;  // Adam's L2 (CSDI's)
  CsdiMask mask = CsdiMask::random;
  int64_t validate_every = 0;  // steps between validation losses (0: only at the end)
};
struct CsdiTrainLog {
  std::vector<double> loss;                            // training loss per step
  std::vector<std::pair<int64_t, double>> validation;  // (step, validation loss)
};
// The validation loss as CSDI's: csdi_loss_with averaged over every diffusion step n = 0..N-1
// (all series at the same n), fresh noise per n from gen, the given conditioning mask.
double csdi_validation_loss(const CsdiDenoiser& eps, const Tensor& x0, const Tensor& observed,
                            const Tensor& cond_mask, const DdpmSchedule& s, Generator& gen);
// Trains net on x0/observed [B, K, L] (standardised; cast to the net's dtype). With
// validation tables given (val_cond: their conditioning masks), logs csdi_validation_loss every
// validate_every steps and at the end.
CsdiTrainLog train_csdi(nn::CsdiNet& net, const Tensor& x0, const Tensor& observed,
                        const DdpmSchedule& s, const CsdiTrainOptions& o, Generator& gen,
                        const Tensor& val_x0 = {}, const Tensor& val_observed = {},
                        const Tensor& val_cond = {});

}  // namespace sg::obj
