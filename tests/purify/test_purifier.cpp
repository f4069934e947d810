// The ADP purifier (purify/purifier.hpp): for a quadratic energy the adaptive step is lambda
// times the exact line minimiser (closed form, float64) and clamps outside [min_step, max_step];
// the per-sample stopping rule, the data-range clipping and max_iter on a contraction with a
// known trajectory; both noise kinds; the ensemble's three aggregations; options refused with
// errors naming the field; the score network and its NCSN DSM training.
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <numbers>

#include "autodiff/sg.hpp"
#include "purify/purifier.hpp"

using namespace sg;
using namespace sg::purify;

namespace {
// A symmetric positive definite A = Q diag(ev) Q^T (Q from a QR-free Gram-Schmidt of fixed
// vectors) and the linear score s(x) = -(x - b) A on [B, D].
Tensor spd(const std::vector<double>& ev) {
  const int64_t D = int64_t(ev.size());
  Generator g(7);
  std::vector<std::vector<double>> q;
  const std::vector<double> r = randn({D, D}, g, DType::f64).to_vector();
  for (int64_t i = 0; i < D; ++i) {
    std::vector<double> v(r.begin() + i * D, r.begin() + (i + 1) * D);
    for (const auto& u : q) {
      double d = 0;
      for (int64_t k = 0; k < D; ++k) d += v[k] * u[k];
      for (int64_t k = 0; k < D; ++k) v[k] -= d * u[k];
    }
    double n = 0;
    for (double e : v) n += e * e;
    for (double& e : v) e /= std::sqrt(n);
    q.push_back(v);
  }
  std::vector<double> a(D * D, 0.0);
  for (int64_t i = 0; i < D; ++i)
    for (int64_t j = 0; j < D; ++j)
      for (int64_t k = 0; k < D; ++k) a[i * D + j] += q[k][i] * ev[k] * q[k][j];
  return from_vector(a, {D, D}, DType::f64);
}
}  // namespace

TEST_CASE("adaptive step: lambda times the exact line minimiser for a quadratic energy",
          "[purify][purifier]") {
  const Tensor A = spd({0.5, 1.0, 2.0, 4.0, 8.0});
  Generator gen(1);
  const Tensor b = rand({5}, gen, DType::f64);
  const Tensor x = rand({6, 5}, gen, DType::f64);
  const ScoreFn s = [&](const Tensor& v) { return -matmul(v - b, A); };  // -A(x - b)
  for (double lambda : {0.05, 0.2}) {
    const Purifier pur(s, {5}, {.lambda = lambda});
    const Tensor g = s(x);
    const std::vector<double> step = pur.adaptive_step(x, g).to_vector();
    // lambda |g|^2 / g^T A g per sample
    const std::vector<double> gg = sum(g * g, {1}).to_vector();
    const std::vector<double> gag = sum(matmul(g, A) * g, {1}).to_vector();
    for (size_t i = 0; i < step.size(); ++i) {
      const double exact = lambda * gg[i] / gag[i];
      INFO("sample " << i << " lambda " << lambda);
      REQUIRE(exact > 1e-5);
      REQUIRE(exact < 1e-1);
      CHECK(step[i] == Approx(exact).epsilon(1e-10));
    }
  }
  // flat curvature: lambda / 0.01 = 5 clamps to max_step; negative curvature (1 - z < 0) to
  // min_step; a zero score gives z = 0 and step lambda eta
  const Tensor flat = eye(5, DType::f64) * 0.01, neg = -eye(5, DType::f64);
  const Purifier pf([&](const Tensor& v) { return -matmul(v - b, flat); }, {5});
  CHECK(pf.adaptive_step(x, -matmul(x - b, flat)).to_vector() == std::vector<double>(6, 0.1));
  const Purifier pn([&](const Tensor& v) { return -matmul(v - b, neg); }, {5});
  CHECK(pn.adaptive_step(x, -matmul(x - b, neg)).to_vector() == std::vector<double>(6, 1e-5));
  const Purifier pz([](const Tensor& v) { return zeros_like(v); }, {5});
  for (double v : pz.adaptive_step(x, zeros_like(x)).to_vector())
    CHECK(v == Approx(0.05 * 1e-3).epsilon(1e-12));
}

TEST_CASE("purify: per-sample stopping, max_iter and clipping on a known contraction",
          "[purify][purifier]") {
  // s(x) = -a_b (x - c): step = lambda / a_b, so a running sample moves x - c <- (1 - lambda)
  // (x - c); a = 100 gives step 5e-4 <= alpha = 1e-3: that sample stops at once.
  const Tensor a = from_vector({100.0, 1.0, 2.0}, {3, 1}, DType::f64);
  const Tensor c = from_vector({0.3, 0.9, 1.5, 0.2}, {1, 4}, DType::f64);  // 1.5 > hi
  const ScoreFn s = [&](const Tensor& v) { return -a * (v - c); };
  const Tensor x = from_vector({0.5, 0.5, 0.5, 0.5, 0.1, 0.2, 0.3, 0.4, 0.8, 0.7, 0.96, 0.0},
                               {3, 4}, DType::f64);
  const Purifier pur(s, {4}, {.sigma_rand = 0, .max_iter = 7});
  const PurifyTrace t = pur.trace(x, zeros_like(x));
  REQUIRE(t.steps.size() == 7);
  REQUIRE(t.iterates.size() == 8);
  for (const Tensor& st : t.steps) {
    const std::vector<double> v = st.to_vector();
    CHECK(v[0] == 0.0);  // stopped
    CHECK(v[1] == Approx(0.05).epsilon(1e-9));
    CHECK(v[2] == Approx(0.025).epsilon(1e-9));
  }
  const std::vector<double> xs = x.to_vector(), cs = c.to_vector(), out = t.x.to_vector();
  for (int j = 0; j < 4; ++j) CHECK(out[j] == xs[j]);  // sample 0 never moved
  for (int i = 1; i < 3; ++i)
    for (int j = 0; j < 4; ++j) {
      INFO("sample " << i << " pixel " << j);
      // unclipped: c + 0.95^7 (x - c); pixel 2 heads for 1.5 and is held at hi = 1
      const double free = cs[j] + std::pow(0.95, 7) * (xs[i * 4 + j] - cs[j]);
      CHECK(out[i * 4 + j] == Approx(std::min(free, 1.0)).epsilon(1e-9));
    }
  for (const Tensor& it : t.iterates) {
    CHECK(min(it).item() >= 0.0);
    CHECK(max(it).item() <= 1.0);
  }
  CHECK(max(t.x).item() == 1.0);  // clipping was active
  // every sample stopped: the loop ends at its first iteration, having moved nothing
  const Purifier stop([](const Tensor& v) { return -100.0 * v; }, {4}, {.sigma_rand = 0});
  const PurifyTrace none = stop.trace(x, zeros_like(x));
  CHECK(none.steps.empty());
  CHECK(none.x.to_vector() == xs);
  // max_iter = 0: randomisation only
  const Purifier only(s, {4}, {.sigma_rand = 0.1, .max_iter = 0});
  Generator g1(3), g2(3);
  const Tensor u = randn_like(x, g2);
  CHECK(only.purify(x, g1).to_vector() == clamp(x + u * 0.1, 0, 1).to_vector());
}

TEST_CASE("randomisation: gaussian and binary noise with the same mean absolute deviation",
          "[purify][purifier]") {
  const Tensor x = full({4, 1, 8, 8}, 0.5, DType::f64);
  const ScoreFn none = [](const Tensor& v) { return zeros_like(v); };
  const double mad = 0.2 * std::sqrt(2.0 / std::numbers::pi);
  const Purifier bin(none, {1, 8, 8},
                     {.sigma_rand = 0.2, .noise = NoiseKind::binary, .max_iter = 0});
  Generator gen(5);
  const Tensor xb = bin.purify(x, gen);
  // every pixel exactly 0.5 +- sigma sqrt(2/pi)
  CHECK(max(abs(abs(xb - 0.5) - mad)).item() < 1e-15);
  // E|x' - x| = sigma sqrt(2/pi) for gaussian noise (sigma = 0.1 at 0.5: clipping has
  // probability ~ 6e-7 per pixel)
  const Purifier gsmall(none, {1, 8, 8}, {.sigma_rand = 0.1, .max_iter = 0});
  const auto check = mean_equals([&](Generator& g) { return mean(abs(gsmall.purify(x, g) - 0.5)); },
                                 0.1 * std::sqrt(2.0 / std::numbers::pi),
                                 {.samples = 2000, .sigmas = 4, .seed = 2});
  INFO(check);
  CHECK(check.pass);
}

namespace {
// A fixed linear classifier on [B, 1, 2, 2]: logits = flatten(x) W.
struct LinearClf : Classifier {
  Tensor W;
  explicit LinearClf(Tensor w) : W(std::move(w)) {}
  Tensor operator()(const Tensor& x) const override {
    return matmul(reshape(x, {x.dim(0), -1}), W);
  }
  Shape input_shape() const override { return {1, 2, 2}; }
  int64_t classes() const override { return 3; }
};
}  // namespace

TEST_CASE("ensemble: logit, softmax and vote aggregation of the same purifications",
          "[purify][purifier]") {
  Generator g0(11);
  const LinearClf clf(randn({4, 3}, g0, DType::f64) * 3.0);
  const Tensor x = rand({5, 1, 2, 2}, g0, DType::f64);
  const ScoreFn s = [](const Tensor& v) { return 0.5 - v; };
  const Purifier pur(s, {1, 2, 2}, {.sigma_rand = 0.3, .max_iter = 3});
  Generator g1(4), g2(4);
  const int64_t R = 6;
  const EnsembleScores e = ensemble_scores(clf, pur, x, g1, {.copies = R});
  // the same by hand: copy r of sample b at r*B + b of one batch of purifications
  Tensor xr = concat(std::vector<Tensor>(R, x), 0);
  const Tensor f = reshape(clf(pur.purify(xr, g2)), {R, 5, 3});
  CHECK(max(abs(e.logits - mean(f, {0}))).item() < 1e-14);
  CHECK(max(abs(e.softmax - mean(softmax(f, 2), {0}))).item() < 1e-14);
  CHECK(max(abs(sum(e.softmax, {1}) - 1.0)).item() < 1e-14);
  // votes: multiples of 1/R summing to one, and the majority is each copy's argmax count
  const std::vector<double> v = e.vote.to_vector();
  for (double p : v) CHECK(std::abs(p * R - std::round(p * R)) < 1e-12);
  CHECK(max(abs(sum(e.vote, {1}) - 1.0)).item() < 1e-14);
  const std::vector<int64_t> am = argmax(reshape(f, {R * 5, 3})).values<int64_t>();
  for (int b = 0; b < 5; ++b)
    for (int k = 0; k < 3; ++k) {
      int n = 0;
      for (int r = 0; r < R; ++r) n += am[r * 5 + b] == k;
      CHECK(v[b * 3 + k] == Approx(double(n) / R));
    }
  CHECK(&e.get(Aggregation::vote) == &e.vote);
  // without noise every copy is the same: the aggregates are the single prediction's
  const Purifier det(s, {1, 2, 2}, {.sigma_rand = 0, .max_iter = 3});
  Generator g3(1), g4(1);
  const EnsembleScores d = ensemble_scores(clf, det, x, g3, {.copies = 3});
  const Tensor one = clf(det.purify(x, g4));
  CHECK(max(abs(d.logits - one)).item() < 1e-14);
  CHECK(argmax(d.vote).values<int64_t>() == argmax(one).values<int64_t>());
}

TEST_CASE("purifier options and shapes refused with errors naming them", "[purify][purifier]") {
  const ScoreFn s = [](const Tensor& v) { return -v; };
  auto msg = [&](PurifierOptions o) {
    try {
      Purifier p(s, {4}, o);
    } catch (const ValueError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(msg({.sigma_rand = -1}), Catch::Contains("sigma_rand"));
  CHECK_THAT(msg({.lambda = 0}), Catch::Contains("lambda"));
  CHECK_THAT(msg({.eta = std::nan("")}), Catch::Contains("eta"));
  CHECK_THAT(msg({.min_step = 0.2, .max_step = 0.1}), Catch::Contains("max_step"));
  CHECK_THAT(msg({.max_iter = -1}), Catch::Contains("max_iter"));
  CHECK_THAT(msg({.lo = 1, .hi = 0}), Catch::Contains("data range"));
  const Purifier p(s, {4});
  Generator g;
  CHECK_THROWS_AS(p.purify(zeros({2, 5}, DType::f64), g), ShapeError);
  CHECK_THROWS_AS(p.trace(zeros({2, 4}, DType::f64), zeros({2, 3}, DType::f64)), ShapeError);
  Generator gc(0);
  const LinearClf clf(randn({4, 3}, gc, DType::f64));
  try {
    ensemble_scores(clf, p, zeros({2, 1, 2, 2}, DType::f64), g);
    FAIL("no error");
  } catch (const ShapeError& e) {
    CHECK_THAT(e.what(), Catch::Contains("[1,2,2]") && Catch::Contains("[4]"));
  }
}

TEST_CASE("ScoreNet: h(x) or -grad E(x); NCSN DSM training lowers the loss", "[purify][purifier]") {
  Generator gen(0);
  const Tensor x = rand({16, 1, 2, 2}, gen, DType::f64);
  ScoreNet e(
      {1, 2, 2},
      {.hidden = 8, .layers = 1, .act = nn::Activation::silu, .energy = true, .dtype = DType::f64},
      gen);
  // h = -dE/dx
  const Tensor h = e(x);
  const Tensor ref = -grad([&](const Tensor& v) { return sum(e.energy(v)); }, x);
  CHECK(max(abs(h - ref)).item() == 0.0);
  ScoreNet d({1, 2, 2}, {.hidden = 8, .layers = 1}, gen);
  CHECK_THROWS_AS(d.energy(x.to(DType::f32)), ValueError);
  CHECK_THROWS_AS(d(zeros({2, 4})), ShapeError);
  CHECK(max(abs(d(x.to(DType::f32)))).item() == 0.0);  // zero-initialised output layer
  // DSM on a tight cluster: the loss falls
  const Tensor data = (0.5 + 0.05 * randn({256, 1, 2, 2}, gen)).to(DType::f32);
  const DsmTrainReport r = train_score(
      d, data, {.sigma_begin = 1, .sigma_end = 0.05, .levels = 10, .steps = 150, .batch = 64});
  double first = 0, last = 0;
  for (int i = 0; i < 20; ++i) first += r.loss[i] / 20, last += r.loss[130 + i] / 20;
  INFO("DSM loss " << first << " -> " << last);
  CHECK(last < 0.9 * first);  // measured 2.01 -> 1.63 (a sigma-free h cannot reach 0)
  CHECK_THROWS_AS(train_score(d, data, {.sigma_begin = 0.01, .sigma_end = 0.1}), ValueError);
  // An energy net trains too: its output bias never reaches -dE/dx, so it gets no gradient
  // (it used to stop training with a GradError) and stays where it was; the loss falls.
  ScoreNet en({1, 2, 2}, {.hidden = 8, .layers = 1, .act = nn::Activation::silu, .energy = true},
              gen);
  std::vector<std::pair<std::string, Tensor>> before;
  for (auto& [n, p] : en.named_parameters()) before.emplace_back(n, p->clone());
  const DsmTrainReport re = train_score(
      en, data, {.sigma_begin = 1, .sigma_end = 0.05, .levels = 10, .steps = 150, .batch = 64});
  double efirst = 0, elast = 0;
  for (int i = 0; i < 20; ++i) efirst += re.loss[i] / 20, elast += re.loss[130 + i] / 20;
  INFO("energy DSM loss " << efirst << " -> " << elast);
  CHECK(std::isfinite(elast));
  CHECK(elast < efirst);
  int moved = 0;
  const auto after = en.named_parameters();
  for (size_t k = 0; k < after.size(); ++k)
    moved += max(abs(*after[k].second - before[k].second)).item() > 0;
  CHECK(moved == static_cast<int>(after.size()) - 1);  // all but the output bias
}

TEST_CASE("straight-through clips: the same values, the identity's derivative (analytic case)",
          "[purify][purifier]") {
  // s(x) = x: z = <x, x + eta x> / <x, x> = 1 + eta, so lambda eta / (1 - z) = -lambda clamps to
  // min_step = m (held: no derivative) and the one step is x1 = clip((1 + m) x0), x0 =
  // clip(x + sigma u). Straight-through: d sum(w x1) / dx = (1 + m) w everywhere; exact: the same
  // times 1[0 < x + sigma u < 1] 1[(1 + m) x0 < 1].
  const double m = 1e-5, sigma = 0.5;
  const Purifier pur([](const Tensor& v) { return v * 1.0; }, {4},
                     {.sigma_rand = sigma, .min_step = m, .stopping_alpha = 0, .max_iter = 1});
  const std::vector<double> xv{0.2, 0.9, 0.5, 0.1, 0.999995, 0.4, 0.0, 0.7};
  const std::vector<double> uv{-1.0, 0.6, 0.2, 0.0, 0.0, 1.6, -0.4, -0.2};
  const Tensor x = from_vector(xv, {2, 4}, DType::f64), u = from_vector(uv, {2, 4}, DType::f64);
  const Tensor w = from_vector({1.0, -2.0, 0.5, 3.0, 1.5, -1.0, 2.0, 0.25}, {2, 4}, DType::f64);
  const PurifyTrace tr = pur.trace(x, u);
  REQUIRE(tr.steps.size() == 1);
  CHECK(tr.steps[0].to_vector() == std::vector<double>{m, m});
  const std::vector<double> plain = tr.x.to_vector();
  std::map<ClipGradient, std::vector<double>> grads;
  for (ClipGradient mode : {ClipGradient::exact, ClipGradient::straight_through}) {
    const Tensor xt = x.detach().requires_grad_();
    const Tensor p = pur.purify_with_noise(xt, u, true, mode);
    CHECK(p.to_vector() == plain);  // bitwise: the option changes no value
    grads[mode] = grad(sum(p * w), {xt})[0].to_vector();
  }
  const std::vector<double> wv = w.to_vector();
  int clipped = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    const double x0 = xv[i] + sigma * uv[i];
    const bool inside = x0 > 0 && x0 < 1 && (1 + m) * x0 < 1;
    clipped += !inside;
    INFO("pixel " << i);
    CHECK(grads[ClipGradient::straight_through][i] == Approx((1 + m) * wv[i]).epsilon(1e-14));
    CHECK(grads[ClipGradient::exact][i] == Approx(inside ? (1 + m) * wv[i] : 0.0).epsilon(1e-14));
  }
  CHECK(clipped == 5);  // below 0 or above 1 at the noise, and one above 1 after the step only
}

TEST_CASE("straight-through clips on the digits: bitwise the same purification",
          "[purify][purifier]") {
  const DigitsSplit s = digits_split({.seed = 2});
  const Tensor x = slice(s.test_x, 0, 0, 16);
  Generator gen(4);
  ScoreNet h({1, 8, 8}, {.hidden = 32, .layers = 1}, gen);
  train_score(h, s.train_x, {.steps = 30, .batch = 64});
  const Purifier pur(h, {.max_iter = 4});
  const Tensor u = pur.draw_noise(x, gen);
  const PurifyTrace plain = pur.trace(x, u);
  for (ClipGradient mode : {ClipGradient::exact, ClipGradient::straight_through}) {
    const Tensor xt = x.detach().requires_grad_();
    const PurifyTrace rec = pur.trace(xt, u, true, mode);
    REQUIRE(rec.iterates.size() == plain.iterates.size());
    for (size_t i = 0; i < rec.iterates.size(); ++i)
      CHECK(rec.iterates[i].to_vector() == plain.iterates[i].to_vector());
  }
}
