// Attacks (purify/attacks.hpp): PGD's iterates stay in the epsilon-ball and the data range
// (l_inf and l_2, with and without the purifier); the full-gradient attack's gradient is the
// true gradient of the attacked objective through a short purifier (gradcheck and central
// differences in float64, a linear score and an energy network); BPDA's surrogate is the
// classifier's input gradient at the purified point; EOT's estimate is unbiased for the
// gradient of the expected loss (exact expectation over binary noise); FGSM; bad options.
#include <catch2/catch.hpp>
#include <cmath>
#include <iostream>

#include "autodiff/sg.hpp"
#include "purify/attacks.hpp"

using namespace sg;
using namespace sg::purify;

namespace {

// A float64 world on [B, 1, 2, 2] with 3 classes: a tanh MLP classifier and a score
// s(x) = -(x - c) A + 0.3 tanh(x W) whose curvature (eigenvalues of A in [1, 4]) keeps the
// adaptive steps strictly inside the clamp and above the stopping threshold.
struct Tiny {
  Generator gen{21};
  MlpClassifier clf{{.input_shape = {1, 2, 2},
                     .classes = 3,
                     .hidden = {8},
                     .act = nn::Activation::tanh,
                     .dtype = DType::f64},
                    gen};
  Tensor A = from_vector({2.5, 0.5, 0, 0.2, 0.5, 1.5, 0.3, 0, 0, 0.3, 3.0, -0.4, 0.2, 0, -0.4, 2.0},
                         {4, 4}, DType::f64);
  Tensor c = from_vector({0.4, 0.6, 0.5, 0.3}, {4}, DType::f64);
  Tensor W = randn({4, 4}, gen, DType::f64);
  Tensor x = 0.2 + 0.6 * rand({3, 1, 2, 2}, gen, DType::f64);
  Tensor y = from_indices({0, 2, 1}, {3});
  ScoreFn score() const {
    return [this](const Tensor& v) {
      const Tensor f = reshape(v, {v.dim(0), 4});
      return reshape(-matmul(f - c, A) + 0.3 * tanh(matmul(f, W)), v.shape());
    };
  }
};

double dot(const Tensor& a, const Tensor& b) { return sum(a * b).item(); }

}  // namespace

TEST_CASE("PGD: every iterate in the epsilon-ball and the data range", "[purify][attacks]") {
  const DigitsSplit s = digits_split({.seed = 2});
  const Tensor x = slice(s.test_x, 0, 0, 32), y = slice(s.test_y, 0, 0, 32);
  Generator gen(0);
  MlpClassifier clf({}, gen);
  ScoreNet h({1, 8, 8}, {.hidden = 32, .layers = 1, .energy = true}, gen);
  const Purifier pur(h, {.max_iter = 3});
  for (const AttackModel& m :
       {AttackModel{.classifier = &clf},
        AttackModel{.classifier = &clf, .purifier = &pur, .gradient = GradientMode::bpda}}) {
    for (Norm norm : {Norm::linf, Norm::l2}) {
      const double eps = norm == Norm::linf ? 0.1 : 1.0;
      std::vector<Tensor> its;
      const Tensor xa =
          pgd(m, x, y, gen, {.norm = norm, .epsilon = eps, .step_size = eps / 2, .steps = 6}, &its);
      REQUIRE(its.size() == 7);
      CHECK(max(abs(its.back() - xa)).item() == 0.0);
      double moved = 0;
      for (const Tensor& it : its) {
        const Tensor d = it - x;
        const double r =
            norm == Norm::linf ? max(abs(d)).item() : max(sqrt(sum(d * d, {1, 2, 3}))).item();
        INFO("norm " << (norm == Norm::linf ? "linf" : "l2") << " radius " << r);
        CHECK(r <= eps * (1 + 1e-6));
        CHECK(min(it).item() >= 0.0);
        CHECK(max(it).item() <= 1.0);
        moved = std::max(moved, r);
      }
      CHECK(moved > 0.5 * eps);  // the attack did move
    }
  }
}

TEST_CASE("project: l_inf exact onto the box intersection, l_2 inside both sets",
          "[purify][attacks]") {
  const Tensor x0 = from_vector({0.0, 0.5, 1.0, 0.95}, {1, 4}, DType::f64);
  const Tensor x = from_vector({-0.3, 0.9, 0.8, 1.4}, {1, 4}, DType::f64);
  CHECK(project(x, x0, Norm::linf, 0.2, 0, 1).to_vector() ==
        std::vector<double>{0.0, 0.7, 0.8, 1.0});
  const Tensor p = project(x, x0, Norm::l2, 0.2, 0, 1);
  CHECK(std::sqrt(dot(p - x0, p - x0)) <= 0.2 + 1e-15);
  CHECK(min(p).item() >= 0.0);
  CHECK(max(p).item() <= 1.0);
  // inside the ball and the range: unchanged
  const Tensor q = x0 + 0.01;
  CHECK(max(abs(project(clamp(q, 0, 1), x0, Norm::l2, 0.2, 0, 1) - clamp(q, 0, 1))).item() == 0);
}

TEST_CASE("full-gradient attack: the true gradient of the loss through the purifier",
          "[purify][attacks]") {
  const Tiny t;
  const Purifier pur(t.score(), {1, 2, 2}, {.sigma_rand = 0.1, .max_iter = 4});
  const AttackModel m{.classifier = &t.clf, .purifier = &pur, .gradient = GradientMode::full};
  Generator g0(5);
  const Tensor u = pur.draw_noise(t.x, g0);
  // the purification took max_iter unclamped steps (so every branch is the interior one)
  const PurifyTrace tr = pur.trace(t.x, u);
  REQUIRE(tr.steps.size() == 4);
  for (const Tensor& st : tr.steps) {
    CHECK(min(st).item() > 1e-3);
    CHECK(max(st).item() < 1e-1);
  }
  const MultiFn L = [&](const std::vector<Tensor>& v) { return attack_loss(m, v[0], t.y, u); };
  const GradcheckReport rep = gradcheck(L, {t.x}, {.eps = 1e-6, .atol = 1e-8, .rtol = 1e-6});
  INFO(rep);
  CHECK(rep.ok());
  // loss_gradient with the same draw is that gradient; central differences along 5 directions
  Generator g1(5);
  const Tensor g = loss_gradient(m, t.x, t.y, g1);
  Generator gd(9);
  double worst = 0;
  for (int k = 0; k < 5; ++k) {
    const Tensor v = randn_like(t.x, gd);
    const double e = 1e-6;
    const double fd =
        (attack_loss(m, t.x + v * e, t.y, u).item() - attack_loss(m, t.x - v * e, t.y, u).item()) /
        (2 * e);
    worst = std::max(worst, std::abs(fd - dot(g, v)) / std::abs(fd));
  }
  std::cout << "full gradient vs central differences: worst relative error " << worst << "\n";
  CHECK(worst < 1e-6);
  // and it is not BPDA's identity surrogate
  Generator g2(5);
  const Tensor gb = loss_gradient(
      {.classifier = &t.clf, .purifier = &pur, .gradient = GradientMode::bpda}, t.x, t.y, g2);
  CHECK(max(abs(g - gb)).item() > 1e-3);
}

TEST_CASE("full-gradient attack through an energy network's purification (second order)",
          "[purify][attacks]") {
  const Tiny t;
  Generator gen(3);
  ScoreNet e(
      {1, 2, 2},
      {.hidden = 8, .layers = 1, .act = nn::Activation::silu, .energy = true, .dtype = DType::f64},
      gen);
  const Purifier pur(e, {.sigma_rand = 0.1, .max_iter = 3});
  const AttackModel m{.classifier = &t.clf, .purifier = &pur, .gradient = GradientMode::full};
  Generator g0(8);
  const Tensor u = pur.draw_noise(t.x, g0);
  const MultiFn L = [&](const std::vector<Tensor>& v) { return attack_loss(m, v[0], t.y, u); };
  const GradcheckReport rep =
      gradcheck(L, {t.x}, {.eps = 1e-6, .atol = 1e-8, .rtol = 1e-6, .check_jvp = false});
  INFO(rep);
  CHECK(rep.ok());
  Generator g1(8);
  const Tensor g = loss_gradient(m, t.x, t.y, g1);
  const Tensor xt = t.x.detach().requires_grad_();
  CHECK(max(abs(g - grad(attack_loss(m, xt, t.y, u), {xt})[0])).item() == 0.0);
}

TEST_CASE("full-gradient attack with straight-through clips", "[purify][attacks]") {
  // Where no clip is active the two modes agree (the exact one is gradchecked above) ...
  const Tiny t;
  const Purifier pur(t.score(), {1, 2, 2}, {.sigma_rand = 0.1, .max_iter = 4});
  Generator g0(5);
  const Tensor u = pur.draw_noise(t.x, g0);
  for (const Tensor& it : pur.trace(t.x, u).iterates) {
    REQUIRE(min(it).item() > 0.0);
    REQUIRE(max(it).item() < 1.0);
  }
  const AttackModel exact{.classifier = &t.clf, .purifier = &pur, .gradient = GradientMode::full};
  AttackModel st = exact;
  st.clip_gradient = ClipGradient::straight_through;
  Generator g1(5), g2(5);
  const Tensor ge = loss_gradient(exact, t.x, t.y, g1), gs = loss_gradient(st, t.x, t.y, g2);
  CHECK(max(abs(ge - gs)).item() < 1e-12);
  CHECK(attack_loss(st, t.x, t.y, u).item() == attack_loss(exact, t.x, t.y, u).item());
  // ... and on the digits, whose background sits at 0 and is clipped there, the exact gradient
  // is zero at most pixels while the straight-through one reaches them; the loss is unchanged.
  const DigitsSplit s = digits_split({.seed = 2});
  const Tensor x = slice(s.test_x, 0, 0, 16), y = slice(s.test_y, 0, 0, 16);
  Generator gen(0);
  MlpClassifier clf({}, gen);
  ScoreNet h({1, 8, 8}, {.hidden = 32, .layers = 1}, gen);
  const Purifier dp(h, {.max_iter = 3});
  const AttackModel de{.classifier = &clf, .purifier = &dp, .gradient = GradientMode::full};
  AttackModel ds = de;
  ds.clip_gradient = ClipGradient::straight_through;
  Generator gu(3);
  const Tensor du = dp.draw_noise(x, gu);
  CHECK(attack_loss(ds, x, y, du).item() == attack_loss(de, x, y, du).item());
  Generator h1(6), h2(6);
  const auto zero_fraction = [](const Tensor& g) {
    return sum(cast(eq(g, zeros_like(g)), g.dtype())).item() / double(g.numel());
  };
  const double ze = zero_fraction(loss_gradient(de, x, y, h1));
  const double zs = zero_fraction(loss_gradient(ds, x, y, h2));
  std::cout << "full gradient on 16 digits: zero at " << ze << " of the pixels (exact clips), "
            << zs << " (straight-through)\n";
  CHECK(ze > 0.2);
  CHECK(zs == 0.0);
}

TEST_CASE("BPDA: the classifier's input gradient at the purified point", "[purify][attacks]") {
  const Tiny t;
  const Purifier pur(t.score(), {1, 2, 2}, {.sigma_rand = 0.2, .max_iter = 5});
  const AttackModel m{.classifier = &t.clf, .purifier = &pur, .gradient = GradientMode::bpda};
  Generator g1(13), g2(13);
  const Tensor g = loss_gradient(m, t.x, t.y, g1);
  const Tensor xp = pur.purify(t.x, g2).detach().requires_grad_();
  const Tensor ref = grad(sum(cross_entropy(t.clf(xp), t.y)), {xp})[0];
  CHECK(max(abs(g - ref)).item() == 0.0);
  // direct: the classifier's gradient at x itself, ignoring the purifier
  const Tensor xd = t.x.detach().requires_grad_();
  const Tensor gd = grad(sum(cross_entropy(t.clf(xd), t.y)), {xd})[0];
  Generator g3(13);
  CHECK(max(abs(loss_gradient(
                    {.classifier = &t.clf, .purifier = &pur, .gradient = GradientMode::direct}, t.x,
                    t.y, g3) -
                gd))
            .item() == 0.0);
  CHECK(max(abs(gd - ref)).item() > 1e-3);
}

TEST_CASE("EOT: unbiased for the gradient of the expected loss", "[purify][attacks]") {
  // Binary noise on 4 pixels has 16 equally likely patterns per sample, so the expected loss
  // E_u L(x; u) and its gradient are exact finite averages. Sample b's loss depends on u_b
  // only, so one pattern broadcast over the batch at a time gives every sample's average.
  const Tiny t;
  const Purifier pur(t.score(), {1, 2, 2},
                     {.sigma_rand = 0.2, .noise = NoiseKind::binary, .max_iter = 3});
  Tensor exact;
  for (int p = 0; p < 16; ++p) {
    std::vector<double> r(4);
    for (int i = 0; i < 4; ++i) r[i] = (p >> i) & 1 ? 1.0 : -1.0;
    const Tensor u = expand(from_vector(r, {1, 1, 2, 2}, DType::f64), t.x.shape());
    const Tensor xt = t.x.detach().requires_grad_();
    const AttackModel full{.classifier = &t.clf, .purifier = &pur, .gradient = GradientMode::full};
    const Tensor g = grad(attack_loss(full, xt, t.y, u), {xt})[0] / 16.0;
    exact = exact.defined() ? exact + g : g;
  }
  std::vector<double> total_var;  // summed over the gradient's elements
  for (int64_t eot : {1, 4}) {
    const AttackModel m{
        .classifier = &t.clf, .purifier = &pur, .gradient = GradientMode::full, .eot = eot};
    const MeanCheck c =
        mean_equals([&](Generator& g) { return loss_gradient(m, t.x, t.y, g); }, exact,
                    {.samples = 400, .sigmas = 4, .seed = 17}, "EOT gradient");
    INFO(c);
    double v = 0;
    for (const ElementCheck& e : c.per_element) v += e.std_error * e.std_error * c.samples;
    total_var.push_back(v);
    std::cout << "EOT(" << eot << ") gradient vs the exact expected-loss gradient: worst z " << c.z
              << ", summed variance per draw " << v << "\n";
    CHECK(c.pass);
    CHECK(c.failed == 0);
  }
  // averaging eot independent draws divides the variance by eot
  CHECK(total_var[0] / total_var[1] == Approx(4.0).epsilon(0.25));
  // the check has power: BPDA's surrogate is biased for this gradient and is caught
  const AttackModel bpda{.classifier = &t.clf, .purifier = &pur, .gradient = GradientMode::bpda};
  const MeanCheck cb = mean_equals([&](Generator& g) { return loss_gradient(bpda, t.x, t.y, g); },
                                   exact, {.samples = 400, .sigmas = 4, .seed = 17});
  std::cout << "BPDA+EOT vs the exact expected-loss gradient: worst z " << cb.z << "\n";
  CHECK_FALSE(cb.pass);
}

TEST_CASE("FGSM: one signed step of size epsilon, clipped", "[purify][attacks]") {
  const Tiny t;
  const AttackModel m{.classifier = &t.clf};
  Generator g(0);
  const Tensor xa = fgsm(m, t.x, t.y, g, {.epsilon = 0.05});
  const Tensor xt = t.x.detach().requires_grad_();
  const Tensor gd = grad(sum(cross_entropy(t.clf(xt), t.y)), {xt})[0];
  CHECK(max(abs(xa - clamp(t.x + 0.05 * sign(gd), 0, 1))).item() == 0.0);
  // the loss went up
  CHECK(attack_loss(m, xa, t.y).item() > attack_loss(m, t.x, t.y).item());
}

TEST_CASE("attack options: errors name the attack and the field", "[purify][attacks]") {
  const Tiny t;
  const Purifier pur(t.score(), {1, 2, 2});
  const AttackModel m{.classifier = &t.clf, .purifier = &pur};
  Generator g(0);
  auto pgd_error = [&](const AttackModel& mm, const Tensor& x, PgdOptions o) -> std::string {
    try {
      pgd(mm, x, t.y, g, o);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  using Catch::Contains;
  CHECK_THAT(pgd_error(m, t.x, {.epsilon = 1.5}), Contains("pgd") && Contains("epsilon"));
  CHECK_THAT(pgd_error(m, t.x, {.epsilon = 0}), Contains("epsilon"));
  CHECK_THAT(pgd_error(m, t.x, {.norm = Norm::l2, .epsilon = 2.5}), Contains("epsilon"));
  CHECK(pgd_error(m, t.x, {.norm = Norm::l2, .epsilon = 1.5}) == "no error");  // < sqrt(4)
  CHECK_THAT(pgd_error(m, t.x, {.steps = 0}), Contains("pgd") && Contains("steps"));
  CHECK_THAT(pgd_error(m, t.x, {.step_size = -1}), Contains("step_size"));
  CHECK_THAT(pgd_error(m, t.x, {.lo = -1, .hi = 1}), Contains("purifier's data range"));
  CHECK_THAT(pgd_error(m, t.x + 1.0, {}), Contains("outside the data range"));
  CHECK_THAT(pgd_error({.classifier = &t.clf, .purifier = &pur, .eot = 0}, t.x, {}),
             Contains("eot"));
  CHECK_THROWS_AS(pgd(m, t.x, t.y, g, {.steps = 0}), ValueError);
  // a classifier and a purifier built for different data shapes
  const Purifier other(t.score(), {1, 8, 8});
  CHECK_THROWS_AS(pgd({.classifier = &t.clf, .purifier = &other}, t.x, t.y, g), ShapeError);
  CHECK_THAT(pgd_error({.classifier = &t.clf, .purifier = &other}, t.x, {}),
             Contains("pgd") && Contains("[1,2,2]") && Contains("[1,8,8]"));
  // inputs or labels of the wrong shape
  CHECK_THROWS_AS(pgd(m, zeros({3, 4}, DType::f64), t.y, g), ShapeError);
  CHECK_THROWS_AS(pgd(m, t.x, from_indices({0, 1}, {2}), g), ShapeError);
  try {
    fgsm(m, t.x, t.y, g, {.epsilon = 2});
    FAIL("no error");
  } catch (const ValueError& e) {
    CHECK_THAT(e.what(), Contains("fgsm") && Contains("epsilon"));
  }
}
