// Mixed precision in training: autocast over the score networks (forward against float32 within
// stated tolerances, float32 master weights and gradients), loss scaling for float16 (gradients
// that underflow without it, skipped steps on overflow, growth), and checkpoints of bfloat16 and
// float16 tensors under safetensors' dtype names.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "autodiff/sg.hpp"
#include "nn/checkpoint.hpp"
#include "nn/networks.hpp"
#include "nn/optim.hpp"
#include "tests/autodiff/half_test_util.hpp"

using namespace sg;
using sg::half_test::rel_error;

namespace {

// The output layers are zero-initialised; perturb every parameter so outputs are not zero.
void perturb(nn::Module& m, uint64_t seed) {
  Generator g(seed);
  NoGradGuard off;
  for (auto& [name, p] : m.named_parameters())
    *p = (*p + randn(p->shape(), g, p->dtype()) * 0.05).detach().requires_grad_();
}

}  // namespace

TEST_CASE("autocast: policy, nesting and float64") {
  CHECK(!autocast_dtype());
  CHECK_THROWS_AS(AutocastGuard(DType::f32), DTypeError);
  const Tensor a = ones({4, 8}), b = ones({8, 2});
  {
    AutocastGuard g(DType::bf16);
    CHECK(autocast_dtype() == DType::bf16);
    CHECK(matmul(a, b).dtype() == DType::bf16);                 // the half list
    CHECK((matmul(a, b) + ones({2})).dtype() == DType::f32);    // promotion back
    CHECK(mean(ones({3}, DType::bf16)).dtype() == DType::f32);  // the float32 list
    CHECK(softmax(ones({3}, DType::f16), 0).dtype() == DType::f32);
    CHECK(exp(ones({3}, DType::bf16)).dtype() == DType::bf16);  // everything else: unchanged
    CHECK(matmul(ones({4, 8}, DType::f64), ones({8, 2}, DType::f64)).dtype() == DType::f64);
    {
      AutocastGuard inner(DType::f16);
      CHECK(matmul(a, b).dtype() == DType::f16);
    }
    {
      AutocastGuard off(DType::f16, false);
      CHECK(matmul(a, b).dtype() == DType::bf16);  // a disabled guard changes nothing
    }
    CHECK(autocast_dtype() == DType::bf16);
  }
  CHECK(!autocast_dtype());
  CHECK(matmul(a, b).dtype() == DType::f32);
  CHECK(mean(ones({3}, DType::bf16)).dtype() == DType::bf16);  // outside: rounded back
}

TEST_CASE("autocast: the MLP score network against float32, master weights stay float32") {
  // Measured (seed 3): bfloat16 forward 2.3e-3 relative, worst gradient 6.0e-3; float16 3.5e-4
  // and 5.8e-4. Bounds: 2e-2 / 3e-3 forward, twice that for gradients.
  for (DType t : {DType::bf16, DType::f16}) {
    const double tol = t == DType::bf16 ? 2e-2 : 3e-3;
    Generator gen(3);
    nn::MlpScoreNet net(2, nn::MlpScoreOptions{.hidden = 64, .layers = 3}, gen);
    perturb(net, 4);
    const Tensor x = randn({128, 2}, gen), tt = rand({128}, gen);
    auto run = [&](bool cast) {
      AutocastGuard g(t, cast);
      const Tensor s = net(x, tt);
      const Tensor loss = mean(square(s + x));
      std::vector<Tensor> params = net.parameters();
      return std::make_pair(s, grad(loss, params));
    };
    const auto [s32, g32] = run(false);
    const auto [sh, gh] = run(true);
    CHECK(sh.dtype() == DType::f32);  // the last Linear's bias add promotes back
    const double e = rel_error(sh, s32);
    INFO(dtype_name(t) << " forward relative error " << e);
    CHECK(e < tol);
    for (const Tensor& p : net.parameters()) CHECK(p.dtype() == DType::f32);
    double worst = 0;
    for (std::size_t i = 0; i < gh.size(); ++i) {
      CHECK(gh[i].dtype() == DType::f32);  // master weights get float32 gradients
      worst = std::max(worst, rel_error(gh[i], g32[i]));
    }
    INFO(dtype_name(t) << " worst gradient relative error " << worst);
    CHECK(worst < 2 * tol);
  }
}

TEST_CASE("autocast: the U-Net score network (convolutions, group norm) against float32") {
  // Measured (seed 5): bfloat16 9.9e-3, float16 9.6e-4.
  for (DType t : {DType::bf16, DType::f16}) {
    const double tol = t == DType::bf16 ? 3e-2 : 4e-3;
    Generator gen(5);
    nn::UNet net(1, nn::UNetOptions{.channels = 8, .multipliers = {1, 2}, .groups = 4}, gen);
    perturb(net, 6);
    const Tensor x = randn({2, 1, 8, 8}, gen), tt = rand({2}, gen);
    const Tensor s32 = net(x, tt);
    Tensor sh;
    {
      AutocastGuard g(t);
      sh = net(x, tt);
    }
    const double e = rel_error(sh, s32);
    INFO(dtype_name(t) << " relative error " << e);
    CHECK(e < tol);
  }
}

TEST_CASE("autocast: derivatives under the guard keep their forward's dtypes") {
  // Score matching differentiates inside the loss: grad with create_graph under the guard.
  Generator gen(8);
  const Tensor w = (randn({3, 3}, gen) * 0.5).requires_grad_();
  const Tensor x = randn({16, 3}, gen).requires_grad_();
  AutocastGuard g(DType::bf16);
  const Tensor y = sum(tanh(matmul(x, w)));
  const Tensor gx = grad(y, {x}, {.create_graph = true})[0];
  CHECK(gx.dtype() == DType::f32);
  const Tensor l = mean(square(gx));
  auto gw = grad(l, {w});
  CHECK(gw[0].dtype() == DType::f32);
  CHECK(std::isfinite(sum(gw[0]).item()));
}

TEST_CASE("GradScaler: float16 gradients that underflow without scaling train with it") {
  // A float16 network whose loss is tiny (1e-7 scale): its activations' gradients fall below
  // float16's smallest subnormal (6e-8) and flush to zero without scaling.
  auto train = [](bool scaled, int steps, double* final_loss, int64_t* skipped) {
    Generator gen(9);
    nn::Linear l1(4, 16, gen), l2(16, 1, gen);
    nn::ParamSlots ps;
    int layer = 0;
    for (auto* m : {&l1, &l2}) {
      for (auto& [n, p] : m->named_parameters()) ps.push_back({std::to_string(layer) + n, p});
      ++layer;
    }
    nn::SGD opt(ps, {.lr = 0.5});
    GradScaler scaler({.init_scale = 65536.0, .growth_interval = 4, .enabled = scaled});
    const Tensor x = randn({32, 4}, gen), target = randn({32, 1}, gen);
    std::vector<Tensor> first;
    for (int s = 0; s < steps; ++s) {
      Tensor loss;
      {
        AutocastGuard g(DType::f16);
        const Tensor h = tanh(l1(x));
        const Tensor y = cast(l2(h), DType::f16);  // float16 activations at the output
        loss = mean(square(y - cast(target, DType::f16))) * 1e-7;
      }
      std::vector<Tensor> params;
      for (auto& [n, p] : ps) params.push_back(*p);
      std::vector<Tensor> grads = grad(scaler.scale(loss), params);
      if (s == 0) first = grads;
      if (scaler.step(grads)) {
        for (Tensor& g : grads) g = g * 1e7;  // undo the tiny loss scale for the step size
        opt.step(grads);
      }
      *final_loss = loss.item() * 1e7;
    }
    *skipped = scaler.skipped_steps();
    double norm = 0;
    for (const Tensor& g : first) norm += sum(square(cast(g, DType::f64))).item();
    return norm;
  };
  double l_plain = 0, l_scaled = 0;
  int64_t sk_plain = 0, sk_scaled = 0;
  const double n_plain = train(false, 1, &l_plain, &sk_plain);
  const double n_scaled = train(true, 1, &l_scaled, &sk_scaled);
  CHECK(n_plain == 0.0);  // every gradient underflowed to zero in float16
  CHECK(n_scaled > 0.0);
  double l0 = 0, l30 = 0;
  int64_t sk = 0;
  train(true, 1, &l0, &sk);
  train(true, 30, &l30, &sk);
  INFO("loss " << l0 << " -> " << l30);
  CHECK(l30 < 0.7 * l0);  // it trains
  double p0 = 0, p30 = 0;
  train(false, 1, &p0, &sk);
  train(false, 30, &p30, &sk);
  CHECK(p30 == p0);  // without scaling nothing moves
}

TEST_CASE("GradScaler: overflow skips the step and halves the scale; growth after N") {
  GradScaler s({.init_scale = 1024.0, .growth_interval = 3});
  std::vector<Tensor> g = {full({3}, 2.0), Tensor()};
  CHECK(s.step(g));
  CHECK(g[0].to_vector() == std::vector<double>{2.0 / 1024, 2.0 / 1024, 2.0 / 1024});
  std::vector<Tensor> bad = {from_vector({1.0, INFINITY}, {2})};
  CHECK(!s.step(bad));
  CHECK(s.get_scale() == 512.0);
  std::vector<Tensor> nan = {from_vector({NAN}, {1}, DType::f16)};
  CHECK(!s.step(nan));
  CHECK(s.get_scale() == 256.0);
  CHECK(s.skipped_steps() == 2);
  for (int i = 0; i < 3; ++i) {
    std::vector<Tensor> ok = {ones({2}, DType::f16)};
    CHECK(s.step(ok));
  }
  CHECK(s.get_scale() == 512.0);
  // A float16 gradient is unscaled in float32: 65536 does not fit a float16.
  GradScaler big;
  std::vector<Tensor> h = {full({1}, 4096.0, DType::f16)};
  CHECK(big.step(h));
  CHECK(h[0].dtype() == DType::f16);
  CHECK(h[0].item() == 0.0625);
  // A scaled float16 loss that overflows: inf gradients, skipped, scale halves until finite.
  GradScaler over({.init_scale = std::ldexp(1.0, 40)});
  const Tensor w = ones({4}, DType::f16).requires_grad_();
  int tries = 0;
  for (;; ++tries) {
    const Tensor loss = sum(square(w)) * 1000.0;
    std::vector<Tensor> gw = grad(over.scale(cast(loss, DType::f32)), {w});
    if (over.step(gw)) break;
  }
  CHECK(tries > 0);
  CHECK(over.get_scale() < 65504.0 / 2000);
  CHECK_THROWS_AS(GradScaler({.init_scale = 0}), ValueError);
}

TEST_CASE("checkpoints: bfloat16 and float16 tensors under safetensors' names") {
  const std::string path = "test_half_checkpoint.safetensors";
  const Tensor b =
      cast(from_vector({1.0 / 3, -0.0, 1e30, INFINITY}, {2, 2}, DType::f64), DType::bf16);
  const Tensor h = cast(from_vector({1.0 / 3, 65504, 6e-8}, {3}, DType::f64), DType::f16);
  nn::save_safetensors(path, {{"b", b}, {"h", h}});
  const nn::SafetensorsFile f = nn::load_safetensors(path);
  std::remove(path.c_str());
  REQUIRE(f.tensors.at("b").dtype() == DType::bf16);
  REQUIRE(f.tensors.at("h").dtype() == DType::f16);
  CHECK(f.tensors.at("b").shape() == Shape{2, 2});
  for (auto [t, u] : {std::pair{b, f.tensors.at("b")}, std::pair{h, f.tensors.at("h")}}) {
    const auto* p = static_cast<const uint16_t*>(t.raw_data());
    const auto* q = static_cast<const uint16_t*>(u.raw_data());
    for (int64_t i = 0; i < t.numel(); ++i) CHECK(p[i] == q[i]);
  }
}
