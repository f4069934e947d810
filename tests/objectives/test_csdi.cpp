// CSDI's objective (objectives/csdi.hpp): training masks (subset of observed, exact counts for
// random, the historical pattern, mix frequencies), the quad schedule's values, the masked
// epsilon loss (0 for the true noise predictor, no gradient outside the target mask, lowered
// by a few dozen Adam steps of a tiny net on airquality windows), ancestral imputation (shape,
// conditioning entries kept exactly, the exact posterior mean recovering a known x0), and the
// stand-in device against the CPU bit for bit.
#include <catch2/catch.hpp>
#include <cmath>
#include <numeric>

#include "nn/optim.hpp"
#include "nn/tables.hpp"
#include "objectives/csdi.hpp"
#include "tests/support/device.hpp"

using namespace sg;
using namespace sg::obj;

namespace {
const DType f64 = DType::f64;

nn::CsdiOptions tiny_net(DType dt = f64) {
  nn::CsdiOptions o;  // 2 layers of 8 channels, 2 heads, small embeddings
  o.layers = 2, o.channels = 8, o.heads = 2, o.ff_dim = 8;
  o.step_embed_dim = 16, o.time_embed_dim = 8, o.feature_embed_dim = 4, o.dtype = dt;
  return o;
}

double count(const Tensor& m) { return sum(cast(m, f64)).item(); }
double count_row(const Tensor& m, int64_t b) { return count(select(m, 0, b)); }

// The exact noise predictor for known data x0: eps = (x_n - sqrt(ab_n) x0) / sqrt(1 - ab_n),
// read from the noisy channel (the target entries of x_n).
CsdiDenoiser oracle(const Tensor& x0, const DdpmSchedule& s) {
  return [x0, s](const Tensor& input, const Tensor&, const Tensor& step) {
    const Tensor ab =
        reshape(index_select(from_vector(s.alpha_bar, {s.steps()}, x0.dtype()), 0, step),
                {x0.dim(0), 1, 1});
    return (select(input, 1, 1) - sqrt(ab) * x0) / sqrt(1.0 - ab);
  };
}

// airquality, standardised, as [W, K, L] windows of length 16 every 8 days
nn::Windows air_windows() {
  const nn::MaskedTable air = nn::load_airquality();
  const nn::Windows w = nn::make_windows(nn::Standardizer::fit(air).apply(air), 16, 8);
  return {contiguous(permute(w.values, {0, 2, 1})), contiguous(permute(w.observed, {0, 2, 1}))};
}
}  // namespace

TEST_CASE("CSDI training masks", "[objectives][csdi]") {
  Generator g(5);
  const int64_t B = 400, K = 3, L = 6, D = K * L;
  const Tensor observed = rand({B, K, L}, g, f64) > 0.3;  // about 70% observed
  const Tensor not_obs = cast(observed, f64) < 0.5;
  SECTION("random: a subset of observed hiding round(r * n_obs), r ~ U(0,1)") {
    Generator a(11), replay(11);
    const Tensor cond = csdi_random_mask(observed, a);
    CHECK(cond.dtype() == DType::b8);
    CHECK(cond.shape() == observed.shape());
    CHECK(count(cast(cond, f64) * cast(not_obs, f64)) == 0);  // cond is inside observed
    const std::vector<double> r = rand({B}, replay, f64).to_vector();
    int64_t exact = 0;
    double hidden = 0, n_obs = 0;
    for (int64_t b = 0; b < B; ++b) {
      const double n = count_row(observed, b);
      exact += count_row(cond, b) == n - double(std::llround(r[std::size_t(b)] * n));
      hidden += n - count_row(cond, b), n_obs += n;
    }
    CHECK(exact == B);
    CHECK(hidden / n_obs == Approx(0.5).margin(3 * std::sqrt(1.0 / 12 / B)));  // E r = 1/2
    Generator again(11);
    CHECK(count(ne(cast(csdi_random_mask(observed, again), f64), cast(cond, f64))) == 0);
    // float masks in, float masks out
    Generator f(11);
    const Tensor cf = csdi_random_mask(cast(observed, f64), f);
    CHECK(cf.dtype() == f64);
    CHECK(count(ne(cf, cast(cond, f64))) == 0);
  }
  SECTION("historical: observed[b] and observed[b - 1 mod B]") {
    const Tensor cond = csdi_historical_mask(observed);
    const Tensor prev = concat({slice(observed, 0, B - 1, B), slice(observed, 0, 0, B - 1)}, 0);
    const Tensor expect = cast(prev, f64) * cast(observed, f64);
    CHECK(count(ne(cast(cond, f64), expect)) == 0);
    // another pattern
    const Tensor pattern = rand({B, K, L}, g, f64) > 0.5;
    const Tensor c2 = csdi_historical_mask(observed, pattern);
    const Tensor pprev = concat({slice(pattern, 0, B - 1, B), slice(pattern, 0, 0, B - 1)}, 0);
    CHECK(count(ne(cast(c2, f64), cast(pprev, f64) * cast(observed, f64))) == 0);
    CHECK_THROWS_AS(csdi_historical_mask(observed, ones({B, K}, DType::b8)), ShapeError);
  }
  SECTION("mix: per sample random when u > 1/2, historical otherwise") {
    Generator a(21), rnd(21), replay(21);
    const Tensor cond = csdi_training_mask(observed, CsdiMask::mix, a);
    const Tensor r = csdi_random_mask(observed, rnd);  // the same first draws
    const Tensor h = csdi_historical_mask(observed);
    (void)rand({B}, replay, f64), (void)rand({B * D}, replay, f64);
    const std::vector<double> u = rand({B}, replay, f64).to_vector();
    int64_t agree = 0, random = 0;
    for (int64_t b = 0; b < B; ++b) {
      const bool is_random = u[std::size_t(b)] > 0.5;
      random += is_random;
      const Tensor want = select(is_random ? r : h, 0, b);
      agree += count(ne(cast(select(cond, 0, b), f64), cast(want, f64))) == 0;
    }
    CHECK(agree == B);
    const double se = std::sqrt(0.25 / double(B));
    CHECK(double(random) / double(B) == Approx(0.5).margin(3 * se));
    CHECK(count(cast(cond, f64) * cast(not_obs, f64)) == 0);
  }
}

TEST_CASE("CSDI quad schedule", "[objectives][csdi]") {
  const DdpmSchedule s = csdi_quad_schedule();
  REQUIRE(s.steps() == 50);
  CHECK(s.beta[0] == Approx(1e-4).epsilon(1e-12));
  CHECK(s.beta[49] == Approx(0.5).epsilon(1e-12));
  const double r = 0.01 + 25.0 * (std::sqrt(0.5) - 0.01) / 49.0;  // linspace(0.01, sqrt .5)[25]
  CHECK(s.beta[25] == Approx(r * r).epsilon(1e-12));
  double ab = 1;
  for (int n = 0; n < 50; ++n) ab *= 1 - s.beta[std::size_t(n)];
  CHECK(s.alpha_bar[49] == Approx(ab).epsilon(1e-12));
  CHECK(s.alpha[10] == 1 - s.beta[10]);
  const DdpmSchedule lin = csdi_linear_schedule(3, 0.1, 0.3);
  CHECK(lin.beta[1] == Approx(0.2));
  CHECK_THROWS_AS(csdi_quad_schedule(1), ValueError);
}

TEST_CASE("CSDI masked epsilon loss", "[objectives][csdi]") {
  Generator g(7);
  const int64_t B = 4, K = 3, L = 5;
  const DdpmSchedule s = csdi_quad_schedule();
  const Tensor x0 = randn({B, K, L}, g, f64);
  const Tensor observed = rand({B, K, L}, g, f64) > 0.2;
  const Tensor cond = csdi_random_mask(observed, g);
  const Tensor target = where(cond, zeros({B, K, L}, f64), cast(observed, f64));
  SECTION("the true noise predictor has loss 0") {
    const Tensor loss = csdi_loss(oracle(x0, s), x0, observed, cond, s, g);
    CHECK(loss.shape() == Shape{});
    CHECK(loss.item() < 1e-26);
  }
  SECTION("eps_theta = 0 gives sum(eps^2 target) / sum target; no gradient outside the target") {
    const Tensor step = from_indices({0, 10, 30, 49}, {B});
    const Tensor noise = randn({B, K, L}, g, f64);
    const Tensor p = randn({B, K, L}, g, f64).requires_grad_();
    const auto pred = [&](const Tensor& in, const Tensor&, const Tensor&) {
      return p + select(in, 1, 0) * 0.0;
    };
    const Tensor loss = csdi_loss_with(pred, x0, observed, cond, s, step, noise);
    const double m = count(target);
    CHECK(loss.item() ==
          Approx(sum(square((noise - p.detach()) * target)).item() / m).epsilon(1e-12));
    const Tensor gp = grad(loss, {p})[0];
    CHECK(max(abs(gp * (1.0 - target))).item() == 0.0);  // d L / d eps_theta off the target
    const Tensor expect = -2.0 * (noise - p.detach()) * target / m;
    CHECK(max(abs(gp - expect)).item() < 1e-12);
    // no target at all: the divisor is 1 and the loss 0
    const Tensor none = csdi_loss_with(pred, x0, observed, observed, s, step, noise);
    CHECK(none.item() == 0.0);
  }
  SECTION("shape errors") {
    nn::CsdiNet net(K, tiny_net(), g);
    CHECK_THROWS_AS(csdi_loss(csdi_denoiser(net), x0, ones({B, K}, DType::b8), cond, s, g),
                    ShapeError);
  }
}

TEST_CASE("CSDI: a tiny net trained on airquality windows lowers the loss", "[objectives][csdi]") {
  const nn::Windows w = air_windows();  // [W, 4, 16]
  const int64_t B = w.values.dim(0), K = 4;
  Generator g(3);
  nn::CsdiNet net(K, tiny_net(DType::f32), g);
  const Tensor x0 = cast(w.values, DType::f32);
  const DdpmSchedule s = csdi_quad_schedule();
  const CsdiDenoiser eps = csdi_denoiser(net);
  // fixed evaluation draws (common random numbers before and after training)
  const int M = 24;
  std::vector<Tensor> conds, steps, noises;
  Generator ge(99);
  for (int i = 0; i < M; ++i) {
    conds.push_back(csdi_random_mask(w.observed, ge));
    std::vector<int64_t> n;
    for (double u : rand({B}, ge, f64).to_vector()) n.push_back(int64_t(u * 50));
    steps.push_back(from_indices(n, {B}));
    noises.push_back(randn({B, K, 16}, ge));
  }
  auto eval = [&] {
    NoGradGuard ng;
    std::vector<double> v;
    for (int i = 0; i < M; ++i)
      v.push_back(csdi_loss_with(eps, x0, w.observed, conds[std::size_t(i)], s,
                                 steps[std::size_t(i)], noises[std::size_t(i)])
                      .item());
    return v;
  };
  const std::vector<double> before = eval();
  nn::Adam opt(net.named_parameters(), {.lr = 3e-3, .weight_decay = 1e-6});
  for (int it = 0; it < 40; ++it) {
    const Tensor cond = csdi_training_mask(w.observed, CsdiMask::random, g);
    const Tensor loss = csdi_loss(eps, x0, w.observed, cond, s, g);
    opt.step(grad(loss, net.parameters()));
  }
  const std::vector<double> after = eval();
  double md = 0, m2 = 0, mb = 0, ma = 0;
  for (int i = 0; i < M; ++i) {
    const double d = before[std::size_t(i)] - after[std::size_t(i)];
    md += d / M, m2 += d * d / M, mb += before[std::size_t(i)] / M, ma += after[std::size_t(i)] / M;
  }
  const double se = std::sqrt((m2 - md * md) / (M - 1));
  INFO("loss before " << mb << ", after " << ma << ", paired decrease " << md << " +- " << se);
  CHECK(md > 3 * se);
  CHECK(ma < mb);
}

TEST_CASE("CSDI imputation", "[objectives][csdi]") {
  Generator g(13);
  const int64_t B = 2, K = 3, L = 4, S = 3;
  const DdpmSchedule s = csdi_quad_schedule();
  const Tensor x0 = randn({B, K, L}, g, f64);
  const Tensor cond = rand({B, K, L}, g, f64) > 0.5;
  SECTION("conditioning entries are kept exactly; samples are finite and differ") {
    nn::CsdiNet net(K, tiny_net(), g);
    nn::assign_leaf(&net.out2.weight, randn(net.out2.weight.shape(), g, f64) * 0.1);
    const Tensor smp = csdi_impute(csdi_denoiser(net), x0, cond, s, S, g, /*chunk=*/2);
    REQUIRE(smp.shape() == Shape{S, B, K, L});
    const Tensor c = expand(unsqueeze(cond, 0), {S, B, K, L});
    const Tensor x = expand(unsqueeze(x0, 0), {S, B, K, L});
    CHECK(count(ne(where(c, smp, 0.0), where(c, x, 0.0))) == 0);
    CHECK(std::isfinite(sum(smp).item()));
    CHECK(max(abs(select(smp, 0, 0) - select(smp, 0, 1)) * (1.0 - cast(cond, f64))).item() > 0);
  }
  SECTION("with the exact predictor for a known x0 every sample is x0 (the n = 0 step's mean)") {
    const Tensor smp = csdi_impute(oracle(x0, s), x0, cond, s, 1, g);
    REQUIRE(smp.shape() == Shape{1, B, K, L});
    const double err = max(abs(select(smp, 0, 0) - x0)).item();
    INFO("max |sample - x0| = " << err);
    CHECK(err < 1e-9);
  }
}

TEST_CASE("CSDI on the stand-in device: loss, gradient and a sampling step",
          "[objectives][csdi][device][standin]") {
  const int64_t B = 2, K = 3, L = 4;
  test::same_on_both(
      [&](Device d) {
        Generator g(17);
        nn::CsdiNet net(K, tiny_net(DType::f32), g);
        nn::assign_leaf(&net.out2.weight, randn(net.out2.weight.shape(), g) * 0.1);
        net.to(d);
        const Tensor x0 = randn({B, K, L}, g, DType::f32, d);
        const Tensor observed = rand({B, K, L}, g, DType::f32, d) > 0.2;
        const Tensor cond = csdi_training_mask(observed, CsdiMask::mix, g);
        const DdpmSchedule s = csdi_quad_schedule();
        const CsdiDenoiser eps = csdi_denoiser(net);
        const Tensor loss = csdi_loss(eps, x0, observed, cond, s, g);
        std::vector<Tensor> out = {cond, loss};
        for (const Tensor& gr : grad(loss, net.parameters())) out.push_back(gr);
        const Tensor xn = randn({B, K, L}, g, DType::f32, d);
        out.push_back(csdi_ancestral_step(eps, x0, cond, xn, 20, s, g));
        return out;
      },
      "CSDI loss, gradients and sampling step");
}
