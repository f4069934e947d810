// Shared by the CSDI examples (csdi_airquality.cpp, csdi_co2.cpp; issue 17 item 6): train CSDI
// on one of nn/tables.hpp's series, evaluate it on held-out test entries against four baselines
// (per-feature mean, linear interpolation, LOCF, a per-feature Gaussian) over several seeds, and
// print a markdown table of mean +- standard error over the seeds.
//
// Data: the first `train_fraction` of the rows train (windows of `window` rows, stride
// `train_stride`), the next `validation_fraction` validate and the rest test (windows of
// `window` rows, stride `window`). Standardised with the training rows' statistics. For each
// seed s: a fresh net (seed s), trained `steps` Adam steps; then for each held-out ratio r in
// {10%, 50%, 90%} a seeded mask over the test windows' observed entries (nn::holdout_mask), the
// same for every method; CSDI and the Gaussian draw `samples` imputations per window. Metrics in
// the data's units over the held-out entries: CRPS (19 quantiles, normalised by sum |y|),
// CRPS-sum, MAE and RMSE of the median.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "nn/optim.hpp"
#include "nn/tables.hpp"
#include "objectives/csdi_eval.hpp"

namespace sg::examples {

struct CsdiTableSetup {
  std::string name;       // for the first line of the output
  std::string unit;       // what a row is ("days", "weeks")
  nn::MaskedTable table;  // [T, K]
  double train_fraction = 0.5, validation_fraction = 0.1;
  int64_t window = 15;       // rows per window
  int64_t train_stride = 1;  // stride of the training windows (test and validation: `window`)
  nn::CsdiOptions net;       // the default here: 2 residual layers of 32 channels
  int64_t batch = 16;
  double lr = 1e-3;
  // Centre every window (per feature) on the mean of its entries CSDI may see before the net
  // sees it: training and validation windows on their observed entries, test windows on their
  // conditioning entries (the imputer adds the mean back to the samples). For series with a
  // trend, whose test rows lie outside the training rows' range. The baselines are unchanged.
  bool centre_windows = false;
  int crps_digits = 3, error_digits = 2;  // decimals printed for CRPS(-sum) and MAE/RMSE
  CsdiTableSetup() { net.layers = 2, net.channels = 32, net.heads = 4, net.ff_dim = 64; }
};

namespace detail {

struct Stat {
  std::vector<double> v;
  std::string str(int prec = 3) const {
    double m = 0;
    for (double x : v) m += x / double(v.size());
    double s2 = 0;
    for (double x : v) s2 += (x - m) * (x - m);
    const double se = v.size() > 1 ? std::sqrt(s2 / double(v.size() - 1) / double(v.size())) : 0;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f +- %.*f", prec, m, prec, se);
    return buf;
  }
};

struct Row {
  Stat crps, crps_sum, mae, rmse, exact;
};

// Per window and feature, the mean of x over mask's entries (0 with none): [B, K, 1].
inline Tensor masked_window_mean(const Tensor& x, const Tensor& mask) {
  const Tensor n = sum(cast(mask, x.dtype()), {2}, true);
  return sum(where(mask, x, 0.0), {2}, true) / clamp(n, 1.0, 1e300);
}
inline Tensor centre(const Tensor& x, const Tensor& mask) {
  return where(mask, x - masked_window_mean(x, mask), 0.0);
}
// The imputer on windows centred on their conditioning entries' mean, the mean added back.
inline obj::CsdiImputer centred(obj::CsdiImputer imp) {
  return [imp](const Tensor& x0, const Tensor& cond, Generator& gen) {
    const Tensor m = masked_window_mean(x0, cond);              // [B, K, 1]
    const Tensor s = imp(where(cond, x0 - m, 0.0), cond, gen);  // [S, B, K, L]
    return s + cast(m, s.dtype());
  };
}

}  // namespace detail

// Runs the evaluation described above and prints its log and table; returns 0.
inline int run_csdi_table(const CsdiTableSetup& su, int64_t steps, int seeds, int64_t samples) {
  const auto t0 = std::chrono::steady_clock::now();
  const nn::TimeSplit sp = nn::split_by_time(su.table, su.train_fraction, su.validation_fraction);
  const nn::Standardizer scaler = nn::Standardizer::fit(sp.train);
  const int64_t L = su.window;
  const nn::Windows train = nn::make_windows(scaler.apply(sp.train), L, su.train_stride);
  const nn::Windows val = nn::make_windows(scaler.apply(sp.validation), L, L);
  const nn::Windows test = nn::make_windows(scaler.apply(sp.test), L, L);
  auto kl = [](const Tensor& t) { return contiguous(permute(t, {0, 2, 1})); };  // -> [W, K, L]
  const Tensor o_tr = kl(train.observed), o_va = kl(val.observed);
  const Tensor x_tr = su.centre_windows ? detail::centre(kl(train.values), o_tr) : kl(train.values);
  const Tensor x_va = su.centre_windows ? detail::centre(kl(val.values), o_va) : kl(val.values);
  const char* u = su.unit.c_str();
  std::printf(
      "%s: %lld train, %lld validation, %lld test %s; %lld / %lld / %lld windows of %lld %s\n",
      su.name.c_str(), (long long)sp.train.rows(), (long long)sp.validation.rows(),
      (long long)sp.test.rows(), u, (long long)train.values.dim(0), (long long)val.values.dim(0),
      (long long)test.values.dim(0), (long long)L, u);
  if (su.centre_windows) std::printf("CSDI sees every window centred on its own mean\n");

  const obj::DdpmSchedule sched = obj::csdi_quad_schedule();  // N = 50
  obj::CsdiTrainOptions to;
  to.steps = steps, to.batch = su.batch, to.lr = su.lr;
  to.validate_every = std::max<int64_t>(1, steps / 4);

  const std::vector<double> ratios = {0.1, 0.5, 0.9};
  const std::vector<std::string> methods = {"CSDI", "Gaussian", "mean", "linear interp.", "LOCF"};
  std::map<std::pair<int, std::string>, detail::Row> rows;
  for (int seed = 0; seed < seeds; ++seed) {
    Generator g(static_cast<uint64_t>(seed));
    nn::CsdiNet net(su.table.cols(), su.net, g);
    // validation conditioning: half of the validation windows' observed entries held out
    Generator gv(uint64_t(100 + seed));
    const Tensor vt = nn::holdout_mask(val.observed, 0.5, gv);
    const Tensor vcond = kl(where(vt, zeros(vt.shape(), DType::b8), val.observed));
    const auto ts = std::chrono::steady_clock::now();
    const obj::CsdiTrainLog log = obj::train_csdi(net, x_tr, o_tr, sched, to, g, x_va, o_va, vcond);
    const double train_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
    double first = 0, last = 0;
    const std::size_t n10 = std::max<std::size_t>(1, log.loss.size() / 10);
    for (std::size_t i = 0; i < n10; ++i)
      first += log.loss[i] / double(n10), last += log.loss[log.loss.size() - 1 - i] / double(n10);
    std::printf(
        "seed %d: trained %lld steps in %.1f s; training loss %.3f (first 10%%) -> %.3f "
        "(last 10%%); validation",
        seed, (long long)steps, train_s, first, last);
    for (const auto& [st, v] : log.validation) std::printf(" %lld: %.3f", (long long)st, v);
    std::printf("\n");
    std::fflush(stdout);
    for (std::size_t ri = 0; ri < ratios.size(); ++ri) {
      Generator gm(uint64_t(1000 + 10 * seed) + ri);
      const Tensor target = nn::holdout_mask(test.observed, ratios[ri], gm);
      const int key = int(std::lround(ratios[ri] * 100));
      for (const std::string& m : methods) {
        Generator ge(uint64_t(2000 + 10 * seed) + ri);
        obj::CsdiImputer csdi = obj::csdi_imputer(net, sched, samples);
        if (su.centre_windows) csdi = detail::centred(csdi);
        obj::CsdiImputer imp = m == "CSDI"       ? csdi
                               : m == "Gaussian" ? obj::gaussian_imputer(samples)
                               : m == "mean"     ? obj::mean_imputer()
                               : m == "LOCF"     ? obj::locf_imputer()
                                                 : obj::linear_imputer();
        const obj::ImputationScores s = obj::evaluate_imputer(imp, test, target, scaler, ge);
        detail::Row& r = rows[{key, m}];
        r.crps.v.push_back(s.crps), r.crps_sum.v.push_back(s.crps_sum);
        r.mae.v.push_back(s.mae), r.rmse.v.push_back(s.rmse);
        if (m == "Gaussian") r.exact.v.push_back(obj::gaussian_baseline_crps(test, target, scaler));
      }
    }
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "\n| held out | method | CRPS | CRPS-sum | MAE | RMSE |\n|---|---|---|---|---|---|\n");
  for (double r : ratios) {
    const int key = int(std::lround(r * 100));
    for (const std::string& m : methods) {
      const detail::Row& row = rows[{key, m}];
      const int cd = su.crps_digits, ed = su.error_digits;
      std::printf("| %d%% | %s | %s | %s | %s | %s |\n", key, m.c_str(), row.crps.str(cd).c_str(),
                  row.crps_sum.str(cd).c_str(), row.mae.str(ed).c_str(), row.rmse.str(ed).c_str());
    }
  }
  std::printf("\nGaussian baseline's exact CRPS (metrics::crps_gaussian):");
  for (double r : ratios) {
    const int key = int(std::lround(r * 100));
    std::printf(" %d%%: %s;", key, rows[{key, "Gaussian"}].exact.str(su.crps_digits).c_str());
  }
  std::printf(
      "\n%d seeds, %lld training steps, %lld samples; mean +- standard error over seeds; "
      "wall time %.1f s\n",
      seeds, (long long)steps, (long long)samples, wall);
  return 0;
}

}  // namespace sg::examples
