// Example (issue 17 item 6, until `scoregrad impute` lands): CSDI trained on R's airquality
// (153 days x Ozone, Solar.R, Wind, Temp, 44 natural gaps), evaluated on held-out test entries
// against four baselines (per-feature mean, linear interpolation, LOCF, a per-feature Gaussian),
// over several seeds; prints a markdown table of mean +- standard error over the seeds.
//
//   sg_example_csdi_airquality [steps=1000] [seeds=3] [samples=100]
//
// Data: the first 50% of days train (windows of 15 days, stride 1), the next 10% validate (one
// window), the last 40% test (windows of 15 days, stride 15). Standardised with the training
// days' statistics. For each seed s: a fresh net (seed s), trained `steps` Adam steps; then for
// each held-out ratio r in {10%, 50%, 90%} a seeded mask over the test windows' observed entries
// (nn::holdout_mask), the same for every method; CSDI draws `samples` imputations per window.
// Metrics in the data's units over the held-out entries: CRPS (19 quantiles, normalised by
// sum |y|), CRPS-sum, MAE and RMSE of the median.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "nn/tables.hpp"
#include "objectives/csdi_eval.hpp"

using namespace sg;

namespace {

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

}  // namespace

int main(int argc, char** argv) {
  const int64_t steps = argc > 1 ? std::atoll(argv[1]) : 1000;
  const int seeds = argc > 2 ? std::atoi(argv[2]) : 3;
  const int64_t samples = argc > 3 ? std::atoll(argv[3]) : 100;
  const auto t0 = std::chrono::steady_clock::now();

  const nn::MaskedTable air = nn::load_airquality();
  const nn::TimeSplit sp = nn::split_by_time(air, 0.5, 0.1);
  const nn::Standardizer scaler = nn::Standardizer::fit(sp.train);
  const int64_t L = 15;
  const nn::Windows train = nn::make_windows(scaler.apply(sp.train), L, 1);
  const nn::Windows val = nn::make_windows(scaler.apply(sp.validation), L, L);
  const nn::Windows test = nn::make_windows(scaler.apply(sp.test), L, L);
  auto kl = [](const Tensor& t) { return contiguous(permute(t, {0, 2, 1})); };  // -> [W, K, L]
  const Tensor x_tr = kl(train.values), o_tr = kl(train.observed);
  const Tensor x_va = kl(val.values), o_va = kl(val.observed);
  std::printf(
      "airquality: %lld train, %lld validation, %lld test days; %lld / %lld / %lld "
      "windows of %lld days\n",
      (long long)sp.train.rows(), (long long)sp.validation.rows(), (long long)sp.test.rows(),
      (long long)train.values.dim(0), (long long)val.values.dim(0), (long long)test.values.dim(0),
      (long long)L);

  nn::CsdiOptions net_o;  // a small CSDI: 2 residual layers of 32 channels
  net_o.layers = 2, net_o.channels = 32, net_o.heads = 4, net_o.ff_dim = 64;
  const obj::DdpmSchedule sched = obj::csdi_quad_schedule();  // N = 50
  obj::CsdiTrainOptions to;
  to.steps = steps, to.batch = 16, to.lr = 1e-3, to.validate_every = steps / 4;

  const std::vector<double> ratios = {0.1, 0.5, 0.9};
  const std::vector<std::string> methods = {"CSDI", "Gaussian", "mean", "linear interp.", "LOCF"};
  std::map<std::pair<int, std::string>, Row> rows;
  for (int seed = 0; seed < seeds; ++seed) {
    Generator g(static_cast<uint64_t>(seed));
    nn::CsdiNet net(4, net_o, g);
    // validation conditioning: half of the validation window's observed entries held out
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
    for (std::size_t ri = 0; ri < ratios.size(); ++ri) {
      Generator gm(uint64_t(1000 + 10 * seed) + ri);
      const Tensor target = nn::holdout_mask(test.observed, ratios[ri], gm);
      const int key = int(std::lround(ratios[ri] * 100));
      for (const std::string& m : methods) {
        Generator ge(uint64_t(2000 + 10 * seed) + ri);
        obj::CsdiImputer imp = m == "CSDI"       ? obj::csdi_imputer(net, sched, samples)
                               : m == "Gaussian" ? obj::gaussian_imputer(samples)
                               : m == "mean"     ? obj::mean_imputer()
                               : m == "LOCF"     ? obj::locf_imputer()
                                                 : obj::linear_imputer();
        const obj::ImputationScores s = obj::evaluate_imputer(imp, test, target, scaler, ge);
        Row& r = rows[{key, m}];
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
      const Row& row = rows[{key, m}];
      std::printf("| %d%% | %s | %s | %s | %s | %s |\n", key, m.c_str(), row.crps.str().c_str(),
                  row.crps_sum.str().c_str(), row.mae.str(2).c_str(), row.rmse.str(2).c_str());
    }
  }
  std::printf("\nGaussian baseline's exact CRPS (metrics::crps_gaussian):");
  for (double r : ratios) {
    const int key = int(std::lround(r * 100));
    std::printf(" %d%%: %s;", key, rows[{key, "Gaussian"}].exact.str().c_str());
  }
  std::printf(
      "\n%d seeds, %lld training steps, %lld samples; mean +- standard error over seeds; "
      "wall time %.1f s\n",
      seeds, (long long)steps, (long long)samples, wall);
  return 0;
}
