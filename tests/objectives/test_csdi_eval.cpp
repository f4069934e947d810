// CSDI's evaluation (objectives/csdi_eval.hpp): the baselines against hand-computed values on
// tiny series (mean, linear interpolation exact on a linear series, LOCF with the first value
// carried backward, the fallbacks), conditioning entries kept exactly, the evaluation's figures
// against metrics computed directly, the Gaussian baseline's sample CRPS against its exact CRPS,
// the training loop's log, and typed errors.
#include <catch2/catch.hpp>
#include <cmath>

#include "nn/tables.hpp"
#include "objectives/csdi_eval.hpp"
#include "objectives/metrics.hpp"

using namespace sg;
using namespace sg::obj;

namespace {
const DType f64 = DType::f64;

double count(const Tensor& m) { return sum(cast(m, f64)).item(); }

// Phi^{-1}(p) by Newton's method from 0 (converges for the levels 0.05..0.95 used here).
double eval_probit(double p) {
  double z = 0;
  for (int i = 0; i < 50; ++i)
    z -=
        (0.5 * std::erfc(-z / std::sqrt(2.0)) - p) / (std::exp(-0.5 * z * z) / std::sqrt(2 * M_PI));
  return z;
}

// airquality: the standardiser from the first 60% of days, the last 30% as windows of 15 days.
struct EvalData {
  nn::Standardizer scaler;
  nn::Windows test;
};
EvalData eval_data() {
  const nn::MaskedTable air = nn::load_airquality();
  const nn::TimeSplit sp = nn::split_by_time(air, 0.6, 0.1);
  EvalData d{nn::Standardizer::fit(sp.train), {}};
  d.test = nn::make_windows(d.scaler.apply(sp.test), 15, 15);
  return d;
}

nn::CsdiOptions eval_tiny_net() {
  nn::CsdiOptions o;
  o.layers = 1, o.channels = 8, o.heads = 2, o.ff_dim = 8;
  o.step_embed_dim = 16, o.time_embed_dim = 8, o.feature_embed_dim = 4;
  return o;
}
}  // namespace

TEST_CASE("CSDI baselines on tiny series", "[objectives][csdi][csdi_eval]") {
  // B = 2 series, K = 2 features, L = 6; 0 marks the entries off the conditioning set.
  const std::vector<double> x = {0, 5, 0, 0, 14, 0,   // b0 k0: 2 + 3l at l = 1, 4
                                 1, 0, 0, 4, 0,  2,   // b0 k1: observed at l = 0, 3, 5
                                 0, 0, 0, 0, 0,  0,   // b1 k0: nothing observed
                                 0, 7, 0, 0, 0,  0};  // b1 k1: one entry at l = 1
  const std::vector<double> c = {0, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 1,
                                 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
  const Tensor x0 = from_vector(x, {2, 2, 6}, f64), cond = from_vector(c, {2, 2, 6}, f64) > 0.5;
  // fallback means over the batch: feature 0 (5 + 14) / 2 = 9.5, feature 1 (1 + 4 + 2 + 7) / 4
  const double fb0 = 9.5;  // feature 1's, 3.5, is not needed: b1 k1 has an entry
  SECTION("mean") {
    const Tensor m = impute_mean(x0, cond);
    REQUIRE(m.shape() == Shape{1, 2, 2, 6});
    const std::vector<double> want = {9.5,     5,   9.5,     9.5, 14,  9.5, 1,   7.0 / 3,
                                      7.0 / 3, 4,   7.0 / 3, 2,   fb0, fb0, fb0, fb0,
                                      fb0,     fb0, 7,       7,   7,   7,   7,   7};
    const std::vector<double> got = m.to_vector();
    for (std::size_t i = 0; i < want.size(); ++i) CHECK(got[i] == Approx(want[i]).epsilon(1e-14));
  }
  SECTION("linear interpolation: exact on a linear series, constant at the ends") {
    const std::vector<double> got = impute_linear(x0, cond).to_vector();
    const std::vector<double> want = {5,   5,   8,   11,  14,  14,  1, 2, 3, 4, 3, 2,
                                      fb0, fb0, fb0, fb0, fb0, fb0, 7, 7, 7, 7, 7, 7};
    for (std::size_t i = 0; i < want.size(); ++i) CHECK(got[i] == Approx(want[i]).epsilon(1e-14));
    // a linear series with gaps is recovered exactly between its first and last kept points
    const Tensor lin = from_vector({0.5, 1.25, 2.0, 2.75, 3.5, 4.25, 5.0}, {1, 1, 7}, f64);
    const Tensor lc = from_vector({1, 0, 0, 1, 0, 1, 1}, {1, 1, 7}, f64) > 0.5;
    CHECK(max(abs(select(impute_linear(where(lc, lin, 0.0), lc), 0, 0) - lin)).item() < 1e-15);
  }
  SECTION("LOCF, the first observation carried backward") {
    const std::vector<double> got = impute_locf(x0, cond).to_vector();
    const std::vector<double> want = {5,   5,   5,   5,   14,  14,  1, 1, 1, 4, 4, 2,
                                      fb0, fb0, fb0, fb0, fb0, fb0, 7, 7, 7, 7, 7, 7};
    CHECK(got == want);
  }
  SECTION("no conditioning entry in the batch: 0") {
    const Tensor none = zeros({1, 2, 3}, DType::b8);
    CHECK(max(abs(impute_linear(zeros({1, 2, 3}, f64), none))).item() == 0);
    CHECK(max(abs(impute_locf(zeros({1, 2, 3}, f64), none))).item() == 0);
  }
  SECTION("Gaussian: per-series moments, fallbacks, draws off the conditioning set") {
    const CsdiGaussianFit f = fit_gaussian_baseline(x0, cond);
    REQUIRE(f.mean.shape() == Shape{2, 2, 1});
    const std::vector<double> mu = f.mean.to_vector(), sd = f.std.to_vector();
    CHECK(mu[0] == Approx(9.5));
    CHECK(sd[0] == Approx(4.5));  // population std of {5, 14}
    CHECK(mu[1] == Approx(7.0 / 3));
    CHECK(sd[1] == Approx(std::sqrt(((1 - 7.0 / 3) * (1 - 7.0 / 3) + (4 - 7.0 / 3) * (4 - 7.0 / 3) +
                                     (2 - 7.0 / 3) * (2 - 7.0 / 3)) /
                                    3)));
    CHECK(mu[2] == Approx(fb0));
    CHECK(sd[2] == Approx(4.5));  // batch std of feature 0's entries {5, 14}
    CHECK(mu[3] == Approx(7));
    const double batch_sd1 = std::sqrt((6.25 + 0.25 + 2.25 + 12.25) / 4);  // {1, 4, 2, 7}
    CHECK(sd[3] == Approx(batch_sd1));  // one entry: the batch std
  }
  SECTION("every baseline keeps the conditioning entries bit for bit") {
    Generator g(1);
    for (const CsdiImputer& imp :
         {mean_imputer(3), linear_imputer(), locf_imputer(2), gaussian_imputer(5)}) {
      const Tensor s = imp(x0, cond, g);
      const Shape sh = s.shape();
      const Tensor cc = expand(unsqueeze(cond, 0), sh);
      CHECK(count(ne(where(cc, s, 0.0), where(cc, expand(unsqueeze(x0, 0), sh), 0.0))) == 0);
      CHECK(std::isfinite(sum(s).item()));
    }
  }
  SECTION("typed errors") {
    CHECK_THROWS_AS(impute_mean(x0, ones({2, 2}, DType::b8)), ShapeError);
    CHECK_THROWS_AS(impute_linear(zeros({2, 6}, f64), zeros({2, 6}, DType::b8)), ShapeError);
    Generator g(1);
    CHECK_THROWS_AS(impute_gaussian(x0, cond, 0, g), ValueError);
  }
}

TEST_CASE("CSDI evaluation: figures against metrics computed directly",
          "[objectives][csdi][csdi_eval]") {
  const EvalData d = eval_data();
  const nn::Windows& w = d.test;  // [3, 15, 4]
  REQUIRE(w.values.rank() == 3);
  const int64_t W = w.values.dim(0), L = w.values.dim(1), K = w.values.dim(2);
  Generator gm(4);
  const Tensor target = nn::holdout_mask(w.observed, 0.5, gm);
  Generator g(0);
  const ImputationScores s = evaluate_imputer(linear_imputer(), w, target, d.scaler, g);
  // directly: the interpolation of the conditioning entries, un-standardised by hand
  const Tensor cond = where(target, zeros(target.shape(), DType::b8), w.observed);
  const Tensor c_kl = contiguous(permute(cond, {0, 2, 1}));
  const Tensor x_kl = where(c_kl, contiguous(permute(w.values, {0, 2, 1})), 0.0);
  const std::vector<double> pred = impute_linear(x_kl, c_kl).to_vector();  // [1, W, K, L]
  const std::vector<double> v = w.values.to_vector(), t = cast(target, f64).to_vector();
  double ae = 0, se = 0, n = 0, absy = 0;
  std::vector<double> pred_lk(v.size()), truth(v.size());
  for (int64_t i = 0; i < W; ++i)
    for (int64_t l = 0; l < L; ++l)
      for (int64_t k = 0; k < K; ++k) {
        const std::size_t e = std::size_t((i * L + l) * K + k);
        const double sk = d.scaler.std[std::size_t(k)], mk = d.scaler.mean[std::size_t(k)];
        const double p = pred[std::size_t((i * K + k) * L + l)] * sk + mk, y = v[e] * sk + mk;
        pred_lk[e] = p, truth[e] = y;
        if (t[e] == 0) continue;
        ae += std::abs(p - y), se += (p - y) * (p - y), n += 1, absy += std::abs(y);
      }
  REQUIRE(n > 0);
  CHECK(s.count == int64_t(n));
  CHECK(s.mae == Approx(ae / n).epsilon(1e-12));
  CHECK(s.rmse == Approx(std::sqrt(se / n)).epsilon(1e-12));
  // one point forecast: CRPS = mean over levels of 2 |p - y| |1{y <= p} - q| = sum |p - y| / sum
  // |y|
  CHECK(s.crps == Approx(ae / absy).epsilon(1e-12));
  const Tensor ps = from_vector(pred_lk, {1, W, L, K}, f64),
               ty = from_vector(truth, {W, L, K}, f64);
  CHECK(s.crps_sum == Approx(metrics::crps_sum(ps, ty, target)).epsilon(1e-12));
  // score_imputation with the same samples gives the same figures
  const ImputationScores s2 = score_imputation(impute_linear(x_kl, c_kl), w, target, d.scaler);
  CHECK(s2.crps == s.crps);
  CHECK(s2.rmse == s.rmse);

  SECTION("probabilistic: the Gaussian baseline's figures match the metrics on its samples") {
    Generator ga(9), gb(9);
    const ImputationScores sg = evaluate_imputer(gaussian_imputer(50), w, target, d.scaler, ga);
    const Tensor smp = impute_gaussian(x_kl, c_kl, 50, gb);  // the same draws
    const Tensor sd = from_vector(d.scaler.std, {K}, f64),
                 mn = from_vector(d.scaler.mean, {K}, f64);
    const Tensor data = permute(smp, {0, 1, 3, 2}) * sd + mn;  // [S, W, L, K] in data units
    CHECK(sg.crps == Approx(metrics::crps_quantile(data, ty, target)).epsilon(1e-12));
    CHECK(sg.crps_sum == Approx(metrics::crps_sum(data, ty, target)).epsilon(1e-12));
    const metrics::PointErrors e = metrics::median_errors(data, ty, target);
    CHECK(sg.mae == Approx(e.mae).epsilon(1e-12));
    CHECK(sg.rmse == Approx(e.rmse).epsilon(1e-12));
  }
}

TEST_CASE("CSDI evaluation: the Gaussian baseline's sample CRPS approaches its exact CRPS",
          "[objectives][csdi][csdi_eval]") {
  const EvalData d = eval_data();
  const nn::Windows& w = d.test;
  Generator gm(2);
  const Tensor target = nn::holdout_mask(w.observed, 0.5, gm);
  const double exact = gaussian_baseline_crps(w, target, d.scaler);
  Generator g(3);
  const int S = 4000;
  const ImputationScores s = evaluate_imputer(gaussian_imputer(S), w, target, d.scaler, g);
  // The same 19-level CRPS on the fit's exact quantiles mu + sd Phi^-1(q), in data units: what
  // the sample estimate converges to as S grows.
  const int64_t K = w.values.dim(2);
  const Tensor cond = where(target, zeros(target.shape(), DType::b8), w.observed);
  const Tensor c_kl = contiguous(permute(cond, {0, 2, 1}));
  const CsdiGaussianFit f =
      fit_gaussian_baseline(where(c_kl, contiguous(permute(w.values, {0, 2, 1})), 0.0), c_kl);
  const Tensor sk = from_vector(d.scaler.std, {K}, f64), mk = from_vector(d.scaler.mean, {K}, f64);
  const Tensor mu = permute(f.mean, {0, 2, 1}) * sk + mk, sd = permute(f.std, {0, 2, 1}) * sk;
  const Tensor y = w.values * sk + mk, m = cast(target, f64);
  double q19 = 0;
  for (int i = 1; i <= 19; ++i) {
    const Tensor fq = expand(mu + sd * eval_probit(i / 20.0), y.shape());
    q19 += metrics::quantile_loss(fq, y, i / 20.0, m).item() / 19;
  }
  q19 /= sum(abs(y) * m).item();
  INFO("sample CRPS (S = " << S << ") " << s.crps << ", 19-level on exact quantiles " << q19
                           << ", exact " << exact);
  // Monte Carlo: sample quantiles of 4000 draws are within about 1% of the exact ones here.
  CHECK(s.crps == Approx(q19).epsilon(0.01));
  // The 19-level approximation of the exact CRPS: within 5% (it leaves out the tails q < 0.05
  // and q > 0.95 and renormalises by 19 levels; here it is 4.4% above, 0.2574 against 0.2465).
  CHECK(s.crps == Approx(exact).epsilon(0.05));
  CHECK(exact > 0);
}

TEST_CASE("CSDI evaluation: typed errors", "[objectives][csdi][csdi_eval]") {
  const EvalData d = eval_data();
  const nn::Windows& w = d.test;
  Generator g(1);
  const Tensor target = nn::holdout_mask(w.observed, 0.5, g);
  SECTION("mismatched shapes") {
    CHECK_THROWS_AS(evaluate_imputer(mean_imputer(), w, slice(target, 0, 0, 1), d.scaler, g),
                    ShapeError);
    nn::Windows bad = w;
    bad.observed = slice(w.observed, 1, 0, 5);
    CHECK_THROWS_AS(evaluate_imputer(mean_imputer(), bad, target, d.scaler, g), ShapeError);
    const CsdiImputer wrong = [](const Tensor& x0, const Tensor&, Generator&) {
      return unsqueeze(slice(x0, 2, 0, 3), 0);
    };
    CHECK_THROWS_AS(evaluate_imputer(wrong, w, target, d.scaler, g), ShapeError);
    nn::Standardizer short_scaler = d.scaler;
    short_scaler.mean.pop_back(), short_scaler.std.pop_back();
    CHECK_THROWS_AS(evaluate_imputer(mean_imputer(), w, target, short_scaler, g), ShapeError);
  }
  SECTION("an all-missing window, a target off the observed entries, an empty target") {
    nn::Windows bad = w;
    bad.observed = concat({zeros({1, 15, 4}, DType::b8), slice(w.observed, 0, 1, 3)}, 0);
    const Tensor t2 = where(bad.observed, target, zeros(target.shape(), DType::b8));
    CHECK_THROWS_AS(evaluate_imputer(mean_imputer(), bad, t2, d.scaler, g), ValueError);
    CHECK_THROWS_AS(
        evaluate_imputer(mean_imputer(), w, ones(target.shape(), DType::b8), d.scaler, g),
        ValueError);
    CHECK_THROWS_AS(
        evaluate_imputer(mean_imputer(), w, zeros(target.shape(), DType::b8), d.scaler, g),
        ValueError);
  }
}

TEST_CASE("CSDI training loop and imputer", "[objectives][csdi][csdi_eval]") {
  const EvalData d = eval_data();
  const nn::Windows& w = d.test;
  const Tensor x0 = contiguous(permute(w.values, {0, 2, 1}));
  const Tensor obs = contiguous(permute(w.observed, {0, 2, 1}));
  Generator g(5);
  nn::CsdiNet net(4, eval_tiny_net(), g);
  const DdpmSchedule s = csdi_quad_schedule(10);
  CsdiTrainOptions o;
  o.steps = 8, o.batch = 2, o.lr = 3e-3, o.validate_every = 4;
  Generator gv(6);
  const Tensor vcond = csdi_random_mask(obs, gv);
  const CsdiTrainLog log = train_csdi(net, x0, obs, s, o, g, x0, obs, vcond);
  CHECK(log.loss.size() == 8);
  REQUIRE(log.validation.size() == 2);
  CHECK(log.validation[0].first == 4);
  CHECK(log.validation[1].first == 8);
  for (const auto& [step, v] : log.validation) CHECK(std::isfinite(v));
  // the validation loss is the mean of csdi_loss_with over n = 0..N-1 with these draws
  Generator ga(7), gb(7);
  const Tensor xf = cast(x0, DType::f32);
  const double vl = csdi_validation_loss(csdi_denoiser(net), xf, obs, vcond, s, ga);
  double want = 0;
  for (int64_t n = 0; n < s.steps(); ++n) {
    const Tensor noise = randn(xf.shape(), gb, DType::f32);
    want += csdi_loss_with(csdi_denoiser(net), xf, obs, vcond, s,
                           from_indices(std::vector<int64_t>(3, n), {3}), noise)
                .item() /
            double(s.steps());
  }
  CHECK(vl == Approx(want).epsilon(1e-6));
  // the imputer: [S, B, K, L] in x0's dtype, conditioning entries exact
  const Tensor cond = obs;
  const Tensor smp = csdi_imputer(net, s, 3)(where(cond, x0, 0.0), cond, g);
  REQUIRE(smp.shape() == Shape{3, 3, 4, 15});
  CHECK(smp.dtype() == f64);
  const Tensor cc = expand(unsqueeze(cond, 0), smp.shape());
  CHECK(count(ne(where(cc, smp, 0.0), where(cc, expand(unsqueeze(x0, 0), smp.shape()), 0.0))) == 0);
  CHECK_THROWS_AS(train_csdi(net, x0, slice(obs, 0, 0, 1), s, o, g), ShapeError);
  // One feature (K = 1): the net skips its feature transformers, whose parameters get no
  // gradient; training runs (it used to stop with a GradError).
  nn::CsdiNet uni(1, eval_tiny_net(), g);
  const Tensor x1 = contiguous(slice(x0, 1, 0, 1)), o1 = contiguous(slice(obs, 1, 0, 1));
  CsdiTrainOptions o1opt = o;
  o1opt.validate_every = 0;
  const CsdiTrainLog ulog = train_csdi(uni, x1, o1, s, o1opt, g);
  CHECK(ulog.loss.size() == 8);
  for (double l : ulog.loss) CHECK(std::isfinite(l));
  o.steps = 0;
  CHECK_THROWS_AS(train_csdi(net, x0, obs, s, o, g), ValueError);
}
