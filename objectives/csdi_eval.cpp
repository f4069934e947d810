// CSDI's baselines, evaluation and training loop (objectives/csdi_eval.hpp). The baselines are
// small host loops over [B, K, L] in float64.
#include "objectives/csdi_eval.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "nn/optim.hpp"
#include "objectives/metrics.hpp"

namespace sg::obj {
namespace {

void csdi_eval_check_pair(const char* who, const Tensor& x0, const Tensor& cond) {
  if (x0.rank() != 3) fail<ShapeError>(who, ": x0 ", describe(x0), " is not [B, K, L]");
  if (!(cond.shape() == x0.shape()))
    fail<ShapeError>(who, ": cond_mask ", describe(cond), " is not shaped like x0 ", describe(x0));
  if (!is_floating(x0.dtype())) fail<DTypeError>(who, ": x0 ", describe(x0), " is not floating");
}

std::vector<double> csdi_eval_host(const Tensor& t) { return cast(t, DType::f64).to_vector(); }

// Per feature: the mean of the batch's conditioning entries (0 when there are none).
std::vector<double> csdi_eval_batch_means(const std::vector<double>& x,
                                          const std::vector<double>& c, int64_t B, int64_t K,
                                          int64_t L) {
  std::vector<double> m(std::size_t(K), 0.0), n(std::size_t(K), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t l = 0; l < L; ++l) {
        const std::size_t i = std::size_t((b * K + k) * L + l);
        if (c[i] != 0) m[std::size_t(k)] += x[i], n[std::size_t(k)] += 1;
      }
  for (int64_t k = 0; k < K; ++k)
    if (n[std::size_t(k)] > 0) m[std::size_t(k)] /= n[std::size_t(k)];
  return m;
}

// Applies fill(row values, row cond, fallback) -> row to every (b, k) row of length L and
// returns [1, B, K, L] on x0's device and dtype, with the conditioning entries of x0 exactly.
template <class Fill>
Tensor csdi_eval_rows(const char* who, const Tensor& x0, const Tensor& cond, Fill fill) {
  csdi_eval_check_pair(who, x0, cond);
  const int64_t B = x0.dim(0), K = x0.dim(1), L = x0.dim(2);
  const std::vector<double> x = csdi_eval_host(x0), c = csdi_eval_host(cond);
  const std::vector<double> fb = csdi_eval_batch_means(x, c, B, K, L);
  std::vector<double> out(x.size());
  std::vector<double> rx(static_cast<std::size_t>(L)), rc(static_cast<std::size_t>(L));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k) {
      const std::size_t o = std::size_t((b * K + k) * L);
      std::copy_n(x.begin() + std::ptrdiff_t(o), L, rx.begin());
      std::copy_n(c.begin() + std::ptrdiff_t(o), L, rc.begin());
      const std::vector<double> r = fill(rx, rc, fb[std::size_t(k)]);
      for (int64_t l = 0; l < L; ++l)
        out[o + std::size_t(l)] = rc[std::size_t(l)] != 0 ? rx[std::size_t(l)] : r[std::size_t(l)];
    }
  return from_vector(out, {1, B, K, L}, x0.dtype(), x0.device());
}

double csdi_eval_row_mean(const std::vector<double>& x, const std::vector<double>& c,
                          double fallback) {
  double s = 0, n = 0;
  for (std::size_t l = 0; l < x.size(); ++l)
    if (c[l] != 0) s += x[l], n += 1;
  return n > 0 ? s / n : fallback;
}

Tensor csdi_eval_repeat(const Tensor& one, int64_t samples) {
  if (samples < 1) fail<ValueError>("baseline imputer: samples must be >= 1, got ", samples);
  if (samples == 1) return one;
  Shape s = one.shape();
  s[0] = samples;
  return contiguous(expand(one, s));
}

Tensor csdi_eval_bool(const Tensor& m) { return m.dtype() == DType::b8 ? m : (m > 0.5); }

struct CsdiEvalTables {
  Tensor x0, cond, truth;  // [W, K, L]: conditioning values (0 elsewhere), cond, values
};

// Checks windows/target and returns the imputer's inputs.
CsdiEvalTables csdi_eval_tables(const char* who, const nn::Windows& w, const Tensor& target) {
  const Tensor& v = w.values;
  if (v.rank() != 3) fail<ShapeError>(who, ": window values ", describe(v), " are not [W, L, K]");
  if (!(w.observed.shape() == v.shape()))
    fail<ShapeError>(who, ": observed ", describe(w.observed), " is not shaped like the values ",
                     describe(v));
  if (!(target.shape() == v.shape()))
    fail<ShapeError>(who, ": target ", describe(target), " is not shaped like the values ",
                     describe(v));
  const std::vector<double> obs = csdi_eval_host(w.observed), tgt = csdi_eval_host(target);
  const int64_t W = v.dim(0), D = v.dim(1) * v.dim(2);
  double n_target = 0;
  for (int64_t i = 0; i < W; ++i) {
    double n_obs = 0;
    for (int64_t j = 0; j < D; ++j) {
      const std::size_t e = std::size_t(i * D + j);
      n_obs += obs[e] != 0;
      n_target += tgt[e] != 0;
      if (tgt[e] != 0 && obs[e] == 0)
        fail<ValueError>(who, ": target entry (window ", i, ", time ", j / v.dim(2), ", feature ",
                         j % v.dim(2), ") is not observed");
    }
    if (n_obs == 0) fail<ValueError>(who, ": window ", i, " has no observed entry");
  }
  if (n_target == 0) fail<ValueError>(who, ": the target mask selects no entry");
  const Tensor obs_b = csdi_eval_bool(w.observed), tgt_b = csdi_eval_bool(target);
  const Tensor cond = where(tgt_b, zeros(v.shape(), DType::b8, v.device()), obs_b);
  CsdiEvalTables t;
  t.cond = contiguous(permute(cond, {0, 2, 1}));
  t.truth = contiguous(permute(v, {0, 2, 1}));
  t.x0 = where(t.cond, t.truth, 0.0);
  return t;
}

}  // namespace

Tensor impute_mean(const Tensor& x0, const Tensor& cond_mask) {
  return csdi_eval_rows("impute_mean", x0, cond_mask,
                        [](const std::vector<double>& x, const std::vector<double>& c, double fb) {
                          return std::vector<double>(x.size(), csdi_eval_row_mean(x, c, fb));
                        });
}

Tensor impute_linear(const Tensor& x0, const Tensor& cond_mask) {
  return csdi_eval_rows("impute_linear", x0, cond_mask,
                        [](const std::vector<double>& x, const std::vector<double>& c, double fb) {
                          const int64_t L = int64_t(x.size());
                          std::vector<double> r(x.size(), fb);
                          int64_t prev = -1;
                          for (int64_t l = 0; l < L; ++l) {
                            if (c[std::size_t(l)] == 0) continue;
                            if (prev < 0) {
                              for (int64_t j = 0; j < l; ++j) r[std::size_t(j)] = x[std::size_t(l)];
                            } else {
                              const double a = x[std::size_t(prev)], b = x[std::size_t(l)];
                              for (int64_t j = prev + 1; j < l; ++j)
                                r[std::size_t(j)] =
                                    a + (b - a) * double(j - prev) / double(l - prev);
                            }
                            r[std::size_t(l)] = x[std::size_t(l)];
                            prev = l;
                          }
                          if (prev >= 0)
                            for (int64_t j = prev + 1; j < L; ++j)
                              r[std::size_t(j)] = x[std::size_t(prev)];
                          return r;
                        });
}

Tensor impute_locf(const Tensor& x0, const Tensor& cond_mask) {
  return csdi_eval_rows("impute_locf", x0, cond_mask,
                        [](const std::vector<double>& x, const std::vector<double>& c, double fb) {
                          std::vector<double> r(x.size(), fb);
                          const auto first =
                              std::find_if(c.begin(), c.end(), [](double v) { return v != 0; });
                          if (first == c.end()) return r;
                          double last = x[std::size_t(first - c.begin())];
                          for (std::size_t l = 0; l < x.size(); ++l) {
                            if (c[l] != 0) last = x[l];
                            r[l] = last;
                          }
                          return r;
                        });
}

CsdiGaussianFit fit_gaussian_baseline(const Tensor& x0, const Tensor& cond_mask) {
  csdi_eval_check_pair("fit_gaussian_baseline", x0, cond_mask);
  const int64_t B = x0.dim(0), K = x0.dim(1), L = x0.dim(2);
  const std::vector<double> x = csdi_eval_host(x0), c = csdi_eval_host(cond_mask);
  const std::vector<double> fb = csdi_eval_batch_means(x, c, B, K, L);
  // batch std per feature (population), 1 when undefined or 0
  std::vector<double> fsd(std::size_t(K), 0.0), fn(std::size_t(K), 0.0);
  for (int64_t i = 0; i < B * K * L; ++i) {
    const std::size_t k = std::size_t((i / L) % K);
    if (c[std::size_t(i)] != 0)
      fsd[k] += (x[std::size_t(i)] - fb[k]) * (x[std::size_t(i)] - fb[k]), fn[k] += 1;
  }
  for (std::size_t k = 0; k < std::size_t(K); ++k) {
    fsd[k] = fn[k] > 1 ? std::sqrt(fsd[k] / fn[k]) : 0.0;
    if (!(fsd[k] > 0)) fsd[k] = 1.0;
  }
  std::vector<double> mu(std::size_t(B * K)), sd(std::size_t(B * K));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k) {
      const std::size_t o = std::size_t((b * K + k) * L), r = std::size_t(b * K + k);
      double s = 0, n = 0;
      for (int64_t l = 0; l < L; ++l)
        if (c[o + std::size_t(l)] != 0) s += x[o + std::size_t(l)], n += 1;
      mu[r] = n > 0 ? s / n : fb[std::size_t(k)];
      double v = 0;
      for (int64_t l = 0; l < L; ++l)
        if (c[o + std::size_t(l)] != 0)
          v += (x[o + std::size_t(l)] - mu[r]) * (x[o + std::size_t(l)] - mu[r]);
      sd[r] = n > 1 ? std::sqrt(v / n) : 0.0;
      if (!(sd[r] > 0)) sd[r] = fsd[std::size_t(k)];
    }
  return {from_vector(mu, {B, K, 1}, x0.dtype(), x0.device()),
          from_vector(sd, {B, K, 1}, x0.dtype(), x0.device())};
}

Tensor impute_gaussian(const Tensor& x0, const Tensor& cond_mask, int64_t n_samples,
                       Generator& gen) {
  if (n_samples < 1) fail<ValueError>("impute_gaussian: n_samples must be >= 1, got ", n_samples);
  const CsdiGaussianFit f = fit_gaussian_baseline(x0, cond_mask);
  const int64_t B = x0.dim(0), K = x0.dim(1), L = x0.dim(2);
  const Tensor z = randn({n_samples, B, K, L}, gen, x0.dtype(), x0.device());
  const Tensor draw = unsqueeze(f.mean, 0) + unsqueeze(f.std, 0) * z;
  const Tensor c = expand(unsqueeze(csdi_eval_bool(cond_mask), 0), {n_samples, B, K, L});
  return where(c, expand(unsqueeze(x0, 0), {n_samples, B, K, L}), draw);
}

double gaussian_baseline_crps(const nn::Windows& windows, const Tensor& target,
                              const nn::Standardizer& scaler) {
  NoGradGuard off;
  const CsdiEvalTables t = csdi_eval_tables("gaussian_baseline_crps", windows, target);
  const CsdiGaussianFit f = fit_gaussian_baseline(t.x0, t.cond);
  const int64_t K = t.x0.dim(1);
  if (int64_t(scaler.mean.size()) != K || int64_t(scaler.std.size()) != K)
    fail<ShapeError>("gaussian_baseline_crps: the scaler has ", scaler.mean.size(),
                     " features, the windows ", K);
  const DType dt = t.x0.dtype();
  const Tensor m_k = reshape(from_vector(scaler.mean, {K}, dt, t.x0.device()), {1, K, 1});
  const Tensor s_k = reshape(from_vector(scaler.std, {K}, dt, t.x0.device()), {1, K, 1});
  const Tensor y = t.truth * s_k + m_k;
  const Tensor crps = metrics::crps_gaussian(f.mean * s_k + m_k, f.std * s_k, y);
  const Tensor tm = cast(permute(csdi_eval_bool(target), {0, 2, 1}), dt);
  return sum(crps * tm).item() / sum(abs(y) * tm).item();
}

CsdiImputer mean_imputer(int64_t samples) {
  return [samples](const Tensor& x0, const Tensor& c, Generator&) {
    return csdi_eval_repeat(impute_mean(x0, c), samples);
  };
}
CsdiImputer linear_imputer(int64_t samples) {
  return [samples](const Tensor& x0, const Tensor& c, Generator&) {
    return csdi_eval_repeat(impute_linear(x0, c), samples);
  };
}
CsdiImputer locf_imputer(int64_t samples) {
  return [samples](const Tensor& x0, const Tensor& c, Generator&) {
    return csdi_eval_repeat(impute_locf(x0, c), samples);
  };
}
CsdiImputer gaussian_imputer(int64_t samples) {
  return [samples](const Tensor& x0, const Tensor& c, Generator& gen) {
    return impute_gaussian(x0, c, samples, gen);
  };
}

CsdiImputer csdi_imputer(nn::CsdiNet& net, const DdpmSchedule& s, int64_t samples, int64_t chunk) {
  nn::CsdiNet* p = &net;
  return [p, s, samples, chunk](const Tensor& x0, const Tensor& c, Generator& gen) {
    nn::CsdiNet& n = *p;
    const bool was = n.training();
    n.eval();
    const DType dt = n.options().dtype;
    Tensor out;
    try {
      out = csdi_impute(csdi_denoiser(n), cast(x0, dt), c, s, samples, gen, chunk);
    } catch (...) {
      n.train(was);
      throw;
    }
    n.train(was);
    // exactly x0 on the conditioning entries (the cast to the net's dtype may round them)
    const Tensor cc = expand(unsqueeze(csdi_eval_bool(c), 0), out.shape());
    return where(cc, expand(unsqueeze(x0, 0), out.shape()), cast(out, x0.dtype()));
  };
}

ImputationScores score_imputation(const Tensor& samples, const nn::Windows& windows,
                                  const Tensor& target, const nn::Standardizer& scaler) {
  NoGradGuard off;
  const char* who = "score_imputation";
  const CsdiEvalTables t = csdi_eval_tables(who, windows, target);
  const int64_t W = t.x0.dim(0), K = t.x0.dim(1), L = t.x0.dim(2);
  if (samples.rank() != 4 || samples.dim(1) != W || samples.dim(2) != K || samples.dim(3) != L ||
      samples.dim(0) < 1)
    fail<ShapeError>(who, ": samples ", describe(samples), " are not [S, ", W, ", ", K, ", ", L,
                     "]");
  if (int64_t(scaler.mean.size()) != K || int64_t(scaler.std.size()) != K)
    fail<ShapeError>(who, ": the scaler has ", scaler.mean.size(), " features, the windows ", K);
  // back to [S, W, L, K] in data units
  const Tensor smp = scaler.invert(permute(cast(samples, windows.values.dtype()), {0, 1, 3, 2}));
  const Tensor truth = scaler.invert(windows.values);
  const Tensor m = cast(csdi_eval_bool(target), truth.dtype());
  ImputationScores r;
  r.crps = metrics::crps_quantile(smp, truth, m);
  r.crps_sum = metrics::crps_sum(smp, truth, m);
  const metrics::PointErrors e = metrics::median_errors(smp, truth, m);
  r.mae = e.mae, r.rmse = e.rmse, r.count = e.count;
  return r;
}

ImputationScores evaluate_imputer(const CsdiImputer& imputer, const nn::Windows& windows,
                                  const Tensor& target, const nn::Standardizer& scaler,
                                  Generator& gen) {
  const CsdiEvalTables t = csdi_eval_tables("evaluate_imputer", windows, target);
  Tensor samples;
  {
    NoGradGuard off;
    samples = imputer(t.x0, t.cond, gen);
  }
  return score_imputation(samples, windows, target, scaler);
}

double csdi_validation_loss(const CsdiDenoiser& eps, const Tensor& x0, const Tensor& observed,
                            const Tensor& cond_mask, const DdpmSchedule& s, Generator& gen) {
  NoGradGuard off;
  if (x0.rank() != 3)
    fail<ShapeError>("csdi_validation_loss: x0 ", describe(x0), " is not [B, K, L]");
  const int64_t B = x0.dim(0), N = s.steps();
  double total = 0;
  for (int64_t n = 0; n < N; ++n) {
    const Tensor step = from_indices(std::vector<int64_t>(std::size_t(B), n), {B}, x0.device());
    const Tensor noise = randn(x0.shape(), gen, x0.dtype(), x0.device());
    total += csdi_loss_with(eps, x0, observed, cond_mask, s, step, noise).item();
  }
  return total / double(N);
}

CsdiTrainLog train_csdi(nn::CsdiNet& net, const Tensor& x0, const Tensor& observed,
                        const DdpmSchedule& s, const CsdiTrainOptions& o, Generator& gen,
                        const Tensor& val_x0, const Tensor& val_observed, const Tensor& val_cond) {
  const char* who = "train_csdi";
  if (x0.rank() != 3) fail<ShapeError>(who, ": x0 ", describe(x0), " is not [B, K, L]");
  if (!(observed.shape() == x0.shape()))
    fail<ShapeError>(who, ": observed ", describe(observed), " is not shaped like x0 ",
                     describe(x0));
  if (o.steps < 1 || o.batch < 1 || !(o.lr > 0) || o.validate_every < 0)
    fail<ValueError>(who, ": need steps >= 1, batch >= 1, lr > 0 and validate_every >= 0");
  const bool validate = val_x0.defined();
  if (validate && (!val_observed.defined() || !val_cond.defined() ||
                   !(val_observed.shape() == val_x0.shape()) ||
                   !(val_cond.shape() == val_x0.shape()) || val_x0.rank() != 3))
    fail<ShapeError>(who, ": validation x0, observed and cond must be given together, [B, K, L]");
  const DType dt = net.options().dtype;
  const Tensor x = cast(x0, dt);
  const Tensor vx = validate ? cast(val_x0, dt) : Tensor();
  const int64_t B = x.dim(0), batch = std::min(o.batch, B);
  const CsdiDenoiser eps = csdi_denoiser(net);
  nn::Adam opt(net.named_parameters(), {.lr = o.lr, .weight_decay = o.weight_decay});
  const auto drop1 = int64_t(0.75 * double(o.steps)), drop2 = int64_t(0.9 * double(o.steps));
  CsdiTrainLog log;
  auto run_validation = [&](int64_t step) {
    net.eval();
    log.validation.emplace_back(step,
                                csdi_validation_loss(eps, vx, val_observed, val_cond, s, gen));
    net.train();
  };
  std::vector<int64_t> order;
  std::size_t pos = 0;
  net.train();
  for (int64_t it = 0; it < o.steps; ++it) {
    if (it == drop1 || it == drop2) opt.set_lr(opt.lr() * 0.1);
    if (pos + std::size_t(batch) > order.size()) {  // a new epoch: a fresh permutation
      const std::vector<double> u = rand({B}, gen, DType::f64).to_vector();
      order.resize(std::size_t(B));
      std::iota(order.begin(), order.end(), int64_t(0));
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t c) { return u[std::size_t(a)] < u[std::size_t(c)]; });
      pos = 0;
    }
    const Tensor idx = from_indices(
        std::vector<int64_t>(order.begin() + std::ptrdiff_t(pos),
                             order.begin() + std::ptrdiff_t(pos) + std::ptrdiff_t(batch)),
        {batch}, x.device());
    pos += std::size_t(batch);
    const Tensor xb = index_select(x, 0, idx), ob = index_select(observed, 0, idx);
    const Tensor cond = csdi_training_mask(ob, o.mask, gen);
    const Tensor loss = csdi_loss(eps, xb, ob, cond, s, gen);
    log.loss.push_back(loss.item());
    // With one feature (K = 1) the net skips its feature transformers: their parameters are
    // off the loss's path and get no gradient.
    opt.step(grad(loss, net.parameters(), {.allow_unused = true}));
    if (validate && o.validate_every > 0 && (it + 1) % o.validate_every == 0 && it + 1 < o.steps)
      run_validation(it + 1);
  }
  if (validate) run_validation(o.steps);
  return log;
}

}  // namespace sg::obj
