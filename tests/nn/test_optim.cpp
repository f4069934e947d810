// Optimizers, clipping, the warm-up + cosine schedule and the EMA: convergence on a quadratic,
// update arithmetic bit-exact against hand computations in float64, state export/import, and
// the argument checks.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <numbers>

#include "autodiff/sg.hpp"
#include "nn/optim.hpp"

using namespace sg;
using namespace sg::nn;

namespace {

constexpr DType f64 = DType::f64;

// Two float64 parameters, "a.x" style names exercised through a child-free module.
struct QuadParams : Module {
  Tensor& x;
  Tensor& y;
  QuadParams(std::vector<double> x0, std::vector<double> y0)
      : x(param("x", from_vector(x0, {static_cast<int64_t>(x0.size())}, f64))),
        y(param("y", from_vector(y0, {static_cast<int64_t>(y0.size())}, f64))) {}
};

// f = 0.5 * sum(a * (x - c)^2) + 0.5 * sum(b * (y - d)^2): an ill-conditioned bowl.
const std::vector<double> kA = {1.0, 4.0, 0.25}, kC = {1.5, -2.0, 0.5};
const std::vector<double> kB = {2.0, 0.5}, kD = {-1.0, 3.0};
Tensor quad_loss(QuadParams& m) {
  const Tensor a = from_vector(kA, {3}, f64), c = from_vector(kC, {3}, f64);
  const Tensor b = from_vector(kB, {2}, f64), d = from_vector(kD, {2}, f64);
  return sum(a * square(m.x - c)) * 0.5 + sum(b * square(m.y - d)) * 0.5;
}
double distance_to_min(QuadParams& m) {
  double s = 0;
  auto x = m.x.to_vector(), y = m.y.to_vector();
  for (int i = 0; i < 3; ++i) s += (x[i] - kC[i]) * (x[i] - kC[i]);
  for (int i = 0; i < 2; ++i) s += (y[i] - kD[i]) * (y[i] - kD[i]);
  return std::sqrt(s);
}

// A rounded product: `volatile` keeps the compiler from fusing a*b + c into one FMA (GCC does
// so by default with -march=native), which the tensor ops, one rounding per op, never do.
double rmul(double a, double b) {
  volatile double r = a * b;
  return r;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || !(a.shape() == b.shape())) return false;
  const Tensor ca = a.detach().contiguous(), cb = b.detach().contiguous();
  return std::memcmp(ca.raw_data(), cb.raw_data(), ca.numel() * itemsize(ca.dtype())) == 0;
}
bool same_bits(const Tensor& a, const std::vector<double>& v) {
  return a.dtype() == f64 && a.numel() == static_cast<int64_t>(v.size()) &&
         std::memcmp(a.detach().contiguous().raw_data(), v.data(), v.size() * sizeof(double)) == 0;
}

}  // namespace

TEST_CASE("optim: SGD with momentum or Nesterov and Adam/AdamW minimise a quadratic", "[optim]") {
  SECTION("SGD with momentum, gradients passed explicitly") {
    QuadParams m({0, 0, 0}, {0, 0});
    SGD opt(m.named_parameters(), {.lr = 0.1, .momentum = 0.9});
    for (int s = 0; s < 400; ++s) opt.step(grad(quad_loss(m), m.parameters()));
    CHECK(distance_to_min(m) < 1e-8);
    CHECK(opt.steps() == 400);
  }
  SECTION("SGD with Nesterov momentum, gradients from backward()") {
    QuadParams m({3, 3, 3}, {3, 3});
    SGD opt(m.named_parameters(), {.lr = 0.1, .momentum = 0.9, .nesterov = true});
    for (int s = 0; s < 400; ++s) {
      backward(quad_loss(m));
      opt.step();
      CHECK_FALSE(m.x.grad().defined());  // the new leaf carries no gradient
    }
    CHECK(distance_to_min(m) < 1e-8);
  }
  SECTION("Adam with warm-up and cosine decay") {
    QuadParams m({0, 0, 0}, {0, 0});
    Adam opt(m.named_parameters(), {.lr = 0.1});
    const WarmupCosine sched{.base_lr = 0.1, .min_lr = 0, .warmup_steps = 20, .total_steps = 1500};
    for (int s = 0; s < 1500; ++s) {
      opt.set_lr(sched.lr(s));
      opt.step(grad(quad_loss(m), m.parameters()));
    }
    CHECK(distance_to_min(m) < 1e-4);
  }
  SECTION("AdamW with a small decoupled decay lands near the minimiser, pulled toward 0") {
    QuadParams m({0, 0, 0}, {0, 0});
    AdamW opt(m.named_parameters(), {.lr = 0.05, .weight_decay = 1e-4});
    const WarmupCosine sched{.base_lr = 0.05, .min_lr = 0, .warmup_steps = 0, .total_steps = 2000};
    for (int s = 0; s < 2000; ++s) {
      opt.set_lr(sched.lr(s));
      opt.step(grad(quad_loss(m), m.parameters()));
    }
    CHECK(distance_to_min(m) < 2e-3);
  }
}

TEST_CASE(
    "optim: SGD arithmetic is exact with weight decay and momentum and dampening and Nesterov",
    "[optim]") {
  for (bool nesterov : {false, true}) {
    QuadParams m({1.0, -2.0, 0.5}, {0.25, 3.0});
    const double lr = 0.1, mu = 0.9, wd = 0.01, damp = nesterov ? 0.0 : 0.25;
    SGD opt(
        {{"x", &m.x}},
        {.lr = lr, .momentum = mu, .dampening = damp, .weight_decay = wd, .nesterov = nesterov});
    std::vector<double> p = {1.0, -2.0, 0.5}, buf(3);
    const std::vector<std::vector<double>> gs = {
        {0.3, -0.7, 1.1}, {-0.2, 0.05, 0.9}, {1.5, 0.0, -0.4}};
    for (int s = 0; s < 3; ++s) {
      opt.step({from_vector(gs[s], {3}, f64)});
      for (int i = 0; i < 3; ++i) {
        double g = gs[s][i] + rmul(p[i], wd);
        buf[i] = s == 0 ? g : rmul(buf[i], mu) + rmul(g, 1 - damp);
        const double d = nesterov ? g + rmul(buf[i], mu) : buf[i];
        p[i] = p[i] - rmul(d, lr);
      }
      REQUIRE(same_bits(m.x, p));
    }
    CHECK(m.x.requires_grad());
    CHECK(m.x.is_leaf());
  }
}

TEST_CASE("optim: Adam and AdamW arithmetic is exact", "[optim]") {
  const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
  const std::vector<std::vector<double>> gs = {
      {0.3, -0.7, 1.1}, {-0.2, 0.05, 0.9}, {1.5, 0.0, -0.4}};
  for (bool decoupled : {false, true}) {
    QuadParams m({1.0, -2.0, 0.5}, {0, 0});
    std::unique_ptr<Optimizer> opt;
    if (decoupled)
      opt = std::make_unique<AdamW>(ParamSlots{{"x", &m.x}},
                                    AdamWOptions{.lr = lr, .weight_decay = wd});
    else
      opt = std::make_unique<Adam>(ParamSlots{{"x", &m.x}},
                                   AdamOptions{.lr = lr, .weight_decay = wd});
    std::vector<double> p = {1.0, -2.0, 0.5}, mm(3, 0.0), vv(3, 0.0);
    for (int s = 0; s < 3; ++s) {
      opt->step({from_vector(gs[s], {3}, f64)});
      const int t = s + 1;
      const double c1 = 1 - std::pow(b1, t), c2 = 1 - std::pow(b2, t);
      for (int i = 0; i < 3; ++i) {
        double g = gs[s][i];
        if (decoupled)
          p[i] = p[i] * (1 - lr * wd);
        else
          g = g + rmul(p[i], wd);
        mm[i] = rmul(mm[i], b1) + rmul(g, 1 - b1);
        vv[i] = rmul(vv[i], b2) + rmul(rmul(g, g), 1 - b2);
        p[i] = p[i] - rmul(mm[i] / (std::sqrt(vv[i]) / std::sqrt(c2) + eps), lr / c1);
      }
      REQUIRE(same_bits(m.x, p));
    }
    const NamedTensors st = opt->state();
    CHECK(same_bits(st.at("optim.adam.m.x"), mm));
    CHECK(same_bits(st.at("optim.adam.v.x"), vv));
    CHECK(st.at("optim.adam.step.x").values<int64_t>() == std::vector<int64_t>{3});
    CHECK(st.at("optim.step").values<int64_t>() == std::vector<int64_t>{3});
    CHECK(st.at("optim.lr").item() == lr);
  }
  SECTION("AdamW with a zero gradient only decays: p * (1 - lr*wd)") {
    QuadParams m({1.0, -2.0, 0.5}, {0, 0});
    AdamW opt({{"x", &m.x}}, {.lr = 0.1, .weight_decay = 0.5});
    opt.step({zeros({3}, f64)});
    CHECK(same_bits(m.x, std::vector<double>{1.0 * 0.95, -2.0 * 0.95, 0.5 * 0.95}));
  }
}

TEST_CASE("optim: parameters are replaced by new leaves and undefined gradients skip", "[optim]") {
  QuadParams m({1, 2, 3}, {4, 5});
  const Tensor old_x = m.x, old_y = m.y;
  SGD opt(m.named_parameters(), {.lr = 0.5});
  opt.step({ones({3}, f64), Tensor()});
  CHECK(old_x.to_vector() == std::vector<double>{1, 2, 3});  // the old leaf is untouched
  CHECK(m.x.to_vector() == std::vector<double>{0.5, 1.5, 2.5});
  CHECK(m.x.impl() != old_x.impl());
  CHECK(m.y.impl() == old_y.impl());  // skipped
  CHECK(m.x.requires_grad());
}

TEST_CASE("optim: argument checks name the problem", "[optim][errors]") {
  QuadParams m({1, 2, 3}, {4, 5});
  SGD opt(m.named_parameters(), {.lr = 0.1});
  CHECK_THROWS_WITH(opt.step({ones({3}, f64)}), Catch::Contains("1 gradients for 2 parameters"));
  CHECK_THROWS_AS(opt.step({ones({2}, f64), ones({2}, f64)}), ShapeError);
  CHECK_THROWS_WITH(opt.step({ones({2}, f64), ones({2}, f64)}),
                    Catch::Contains("gradient for 'x' is float64[2]"));
  CHECK_THROWS_AS(opt.step({ones({3}), ones({2}, f64)}), DTypeError);
  CHECK_THROWS_AS(opt.step({Tensor(), Tensor()}), GradError);
  CHECK_THROWS_AS(opt.step(), GradError);                  // no backward yet
  CHECK(m.x.to_vector() == std::vector<double>{1, 2, 3});  // nothing changed by failed steps
  CHECK(opt.steps() == 0);
  CHECK_THROWS_AS(opt.set_lr(-1), ValueError);
  CHECK_THROWS_AS(opt.set_lr(std::nan("")), ValueError);
  CHECK_THROWS_WITH((SGD(m.named_parameters(), {.momentum = 0, .nesterov = true})),
                    Catch::Contains("nesterov"));
  CHECK_THROWS_WITH((Adam(m.named_parameters(), {.beta1 = 1.0})), Catch::Contains("beta1"));
  CHECK_THROWS_AS((Adam(ParamSlots{{"x", &m.x}, {"x", &m.y}})), ValueError);
  CHECK_THROWS_AS((Adam(ParamSlots{{"x", nullptr}})), ValueError);
  Tensor idx = zeros({2}, DType::i64);
  CHECK_THROWS_AS((Adam(ParamSlots{{"i", &idx}})), DTypeError);
}

TEST_CASE("optim: state export/import resumes identically and rejects foreign state",
          "[optim][state]") {
  QuadParams a({0, 0, 0}, {0, 0});
  Adam opt_a(a.named_parameters(), {.lr = 0.05});
  for (int s = 0; s < 5; ++s) opt_a.step(grad(quad_loss(a), a.parameters()));
  const NamedTensors st = opt_a.state();
  for (const char* k :
       {"optim.step", "optim.lr", "optim.adam.m.x", "optim.adam.v.x", "optim.adam.step.x",
        "optim.adam.m.y", "optim.adam.v.y", "optim.adam.step.y"})
    CHECK(st.count(k) == 1);
  CHECK(st.size() == 8);

  QuadParams b({0, 0, 0}, {0, 0});
  b.load_state_dict(a.state_dict());
  Adam opt_b(b.named_parameters(), {.lr = 0.3});
  opt_b.load_state(st);
  CHECK(opt_b.lr() == 0.05);
  CHECK(opt_b.steps() == 5);
  for (int s = 0; s < 5; ++s) {
    opt_a.step(grad(quad_loss(a), a.parameters()));
    opt_b.step(grad(quad_loss(b), b.parameters()));
  }
  CHECK(same_bits(a.x, b.x));
  CHECK(same_bits(a.y, b.y));

  SECTION("SGD state into Adam lists the foreign names") {
    QuadParams c({0, 0, 0}, {0, 0});
    SGD sgd(c.named_parameters(), {.lr = 0.1, .momentum = 0.9});
    sgd.step(grad(quad_loss(c), c.parameters()));
    Adam adam(c.named_parameters());
    CHECK_THROWS_AS(adam.load_state(sgd.state()), ValueError);
    CHECK_THROWS_WITH(adam.load_state(sgd.state()),
                      Catch::Contains("unexpected: optim.sgd.momentum.x"));
  }
  SECTION("wrong shapes, unknown parameters and missing step are all listed") {
    NamedTensors bad = st;
    bad["optim.adam.m.x"] = zeros({4}, f64);
    bad["optim.adam.m.z"] = zeros({3}, f64);
    bad.erase("optim.step");
    Adam adam(b.named_parameters());
    const Tensor before = b.x;
    try {
      adam.load_state(bad);
      FAIL("no error");
    } catch (const ValueError& e) {
      const std::string msg = e.what();
      CHECK_THAT(msg,
                 Catch::Contains("mismatch: optim.adam.m.x expects float64[3], got float64[4]"));
      CHECK_THAT(msg, Catch::Contains("unexpected: optim.adam.m.z (no parameter named 'z')"));
      CHECK_THAT(msg, Catch::Contains("missing: optim.step"));
    }
    CHECK(adam.steps() == 0);
  }
}

TEST_CASE("optim: clip_grad_norm returns the norm and scales exactly by max_norm/(norm+eps)",
          "[optim][clip]") {
  const std::vector<double> g1 = {3.0, -4.0}, g2 = {12.0};  // global norm 13
  SECTION("above the threshold") {
    std::vector<Tensor> gs = {from_vector(g1, {2}, f64), Tensor(), from_vector(g2, {1, 1}, f64)};
    const double norm = clip_grad_norm(gs, 6.5);
    CHECK(norm == 13.0);
    const double scale = 6.5 / (13.0 + 1e-6);
    CHECK(same_bits(gs[0], std::vector<double>{3.0 * scale, -4.0 * scale}));
    CHECK(same_bits(gs[2], std::vector<double>{12.0 * scale}));
    CHECK(gs[2].shape() == Shape{1, 1});
    CHECK_FALSE(gs[1].defined());
    CHECK(std::sqrt(sum(square(gs[0])).item() + sum(square(gs[2])).item()) < 6.5);
  }
  SECTION("float32 gradients are scaled in float32") {
    std::vector<Tensor> gs = {from_vector(g1, {2}), from_vector(g2, {1})};
    CHECK(clip_grad_norm(gs, 1.0, 0.0) == 13.0);
    const float scale = static_cast<float>(1.0 / 13.0);
    CHECK(gs[0].values<float>() == std::vector<float>{3.0f * scale, -4.0f * scale});
  }
  SECTION("at or below the threshold nothing changes") {
    std::vector<Tensor> gs = {from_vector(g1, {2}, f64), from_vector(g2, {1}, f64)};
    const Tensor before = gs[0];
    CHECK(clip_grad_norm(gs, 13.0) == 13.0);
    CHECK(gs[0].impl() == before.impl());
    CHECK(clip_grad_norm(gs, 100.0) == 13.0);
    CHECK(gs[0].to_vector() == g1);
  }
  SECTION("on the slots' accumulated gradients") {
    QuadParams m({0, 0, 0}, {0, 0});
    backward(quad_loss(m));
    const double n0 = std::sqrt(sum(square(m.x.grad())).item() + sum(square(m.y.grad())).item());
    const auto gx = m.x.grad().to_vector();
    const double norm = clip_grad_norm(m.named_parameters(), 1.0);
    CHECK(norm == Approx(n0).epsilon(1e-15));
    const double scale = 1.0 / (norm + 1e-6);
    CHECK(same_bits(m.x.grad(), std::vector<double>{gx[0] * scale, gx[1] * scale, gx[2] * scale}));
  }
  SECTION("non-finite norms and bad arguments") {
    std::vector<Tensor> gs = {from_vector({1.0, std::nan("")}, {2}, f64)};
    CHECK_THROWS_WITH(clip_grad_norm(gs, 1.0), Catch::Contains("NaN or Inf"));
    CHECK(std::isnan(clip_grad_norm(gs, 1.0, 1e-6, false)));
    CHECK_THROWS_AS(clip_grad_norm(gs, 0.0), ValueError);
    std::vector<Tensor> ints = {zeros({2}, DType::i64)};
    CHECK_THROWS_AS(clip_grad_norm(ints, 1.0), DTypeError);
  }
}

TEST_CASE("optim: warm-up then cosine decay to a floor", "[optim][schedule]") {
  const WarmupCosine s{.base_lr = 1.0, .min_lr = 0.1, .warmup_steps = 10, .total_steps = 110};
  CHECK(s.lr(0) == 0.1);
  CHECK(s.lr(4) == 0.5);
  CHECK(s.lr(9) == 1.0);
  CHECK(s.lr(10) == 1.0);
  CHECK(s.lr(35) ==
        Approx(0.1 + 0.9 * 0.5 * (1 + std::cos(std::numbers::pi * 0.25))).epsilon(1e-14));
  CHECK(s.lr(60) == Approx(0.55).epsilon(1e-14));
  CHECK(s.lr(109) == Approx(0.1 + 0.45 * (1 + std::cos(std::numbers::pi * 0.99))).epsilon(1e-14));
  CHECK(s.lr(110) == 0.1);
  CHECK(s.lr(100000) == 0.1);
  for (int64_t k = 10; k < 110; ++k) CHECK(s.lr(k + 1) <= s.lr(k));  // monotone decay
  const WarmupCosine no_warmup{.base_lr = 2.0, .min_lr = 0.0, .warmup_steps = 0, .total_steps = 4};
  CHECK(no_warmup.lr(0) == 2.0);
  CHECK(no_warmup.lr(2) == Approx(1.0).epsilon(1e-15));
  CHECK(no_warmup.lr(4) == 0.0);
  CHECK_THROWS_AS(s.lr(-1), ValueError);
  CHECK_THROWS_WITH(
      (WarmupCosine{.base_lr = 1, .min_lr = 0, .warmup_steps = 5, .total_steps = 4}.lr(0)),
      Catch::Contains("warmup_steps <= total_steps"));
  CHECK_THROWS_AS((WarmupCosine{.base_lr = 0.1, .min_lr = 0.2}.lr(0)), ValueError);
}

TEST_CASE("optim: EMA warm-up uses min(decay, (1 + n) / (10 + n)) and resumes with its count",
          "[optim][ema]") {
  QuadParams m({1.0, -2.0, 0.5}, {0.25, 3.0});
  Ema ema(m, 0.5, /*warmup=*/true);
  std::vector<double> sx = {1.0, -2.0, 0.5};
  for (int n = 0; n < 20; ++n) {
    const double d = std::min(0.5, (1.0 + n) / (10.0 + n));
    CHECK(ema.next_decay() == d);
    m.x = from_vector({n * 1.0, -n * 0.5, 2.0}, {3}, f64).requires_grad_();
    ema.update();
    const auto x = m.x.to_vector();
    for (int i = 0; i < 3; ++i) sx[i] = rmul(d, sx[i]) + rmul(1 - d, x[i]);
    REQUIRE(same_bits(ema.shadow().at("x"), sx));
  }
  // The first decay is 0.1: the average moves 90% of the way at once.
  Ema fresh(m, 0.999, true);
  CHECK(fresh.next_decay() == Approx(0.1));
  fresh.load_state(ema.state());  // num_updates = 20 comes with the state
  CHECK(fresh.next_decay() == Approx(std::min(0.999, 21.0 / 30.0)));
  CHECK(Ema(m, 0.999).next_decay() == 0.999);
}

TEST_CASE("optim: EMA arithmetic is exact with apply_to and swap and a state round trip",
          "[optim][ema]") {
  QuadParams m({1.0, -2.0, 0.5}, {0.25, 3.0});
  const double d = 0.9;
  Ema ema(m, d);
  std::vector<double> sx = {1.0, -2.0, 0.5}, sy = {0.25, 3.0};
  const std::vector<std::vector<double>> xs = {
      {2.0, 0.1, -0.3}, {0.7, 0.7, 0.7}, {-1.0, 5.0, 1e-3}};
  for (int s = 0; s < 3; ++s) {
    m.x = from_vector(xs[s], {3}, f64).requires_grad_();
    m.y = (m.y.detach() * 1.5).detach().requires_grad_();
    ema.update();
    for (int i = 0; i < 3; ++i) sx[i] = rmul(d, sx[i]) + rmul(1 - d, xs[s][i]);
    const auto y = m.y.to_vector();
    for (int i = 0; i < 2; ++i) sy[i] = rmul(d, sy[i]) + rmul(1 - d, y[i]);
    REQUIRE(same_bits(ema.shadow().at("x"), sx));
    REQUIRE(same_bits(ema.shadow().at("y"), sy));
  }
  CHECK(ema.num_updates() == 3);

  const NamedTensors st = ema.state();
  CHECK(st.size() == 3);
  CHECK(st.count("ema.num_updates") == 1);
  CHECK(same_bits(st.at("ema.shadow.x"), sx));

  SECTION("swap twice restores; apply_to copies") {
    const Tensor live_x = m.x;
    ema.swap(m);
    CHECK(same_bits(m.x, sx));
    CHECK(m.x.requires_grad());
    CHECK(same_bits(ema.shadow().at("x"), live_x));
    ema.swap(m);
    CHECK(same_bits(m.x, live_x));
    CHECK(same_bits(ema.shadow().at("x"), sx));
    QuadParams other({0, 0, 0}, {0, 0});
    ema.apply_to(other);
    CHECK(same_bits(other.x, sx));
    CHECK(same_bits(other.y, sy));
    CHECK(other.x.requires_grad());
    QuadParams wrong({0, 0}, {0, 0});
    CHECK_THROWS_WITH(ema.apply_to(wrong),
                      Catch::Contains("mismatch: x is float64[2], its average is float64[3]"));
  }
  SECTION("load_state restores and checks") {
    QuadParams m2({0, 0, 0}, {0, 0});
    Ema ema2(m2, d);
    ema2.load_state(st);
    CHECK(ema2.num_updates() == 3);
    CHECK(same_bits(ema2.shadow().at("x"), sx));
    NamedTensors bad = st;
    bad.erase("ema.shadow.y");
    bad["ema.shadow.q"] = zeros({1}, f64);
    try {
      ema2.load_state(bad);
      FAIL("no error");
    } catch (const ValueError& e) {
      CHECK_THAT(std::string(e.what()), Catch::Contains("missing: ema.shadow.y"));
      CHECK_THAT(std::string(e.what()), Catch::Contains("unexpected: ema.shadow.q"));
    }
    CHECK_THROWS_AS(Ema(m2, 1.5), ValueError);
  }
  SECTION("a parameter whose shape changed is refused") {
    m.x = zeros({4}, f64).requires_grad_();
    CHECK_THROWS_AS(ema.update(), ShapeError);
  }
}
