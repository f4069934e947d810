// Layers and networks: gradient checks of order 1 and 2 in float64 with respect to inputs and
// parameters (through functional_call), the second derivative score matching needs
// (d/dtheta of tr(ds/dx)), and Conv2d and attention against plain-loop references.
#include <catch2/catch.hpp>
#include <sstream>

#include "autodiff/sg.hpp"
#include "nn/networks.hpp"

using namespace sg;
using namespace sg::nn;

namespace {
// gradcheck of fwd(x) with respect to x and every parameter of m (all float64).
GradcheckReport check_module(Module& m, const Tensor& x,
                             const std::function<Tensor(const Tensor&)>& fwd, int order = 2) {
  std::vector<std::string> names;
  std::vector<Tensor> inputs = {x};
  for (auto& [n, p] : m.named_parameters()) names.push_back(n), inputs.push_back(*p);
  return gradcheck(
      [&](const std::vector<Tensor>& v) {
        NamedTensors params;
        for (std::size_t i = 0; i < names.size(); ++i) params[names[i]] = v[i + 1];
        return functional_call(m, params, [&] { return fwd(v[0]); });
      },
      inputs, {.order = order, .atol = 1e-6, .rtol = 1e-5, .seed = 5});
}
std::string show(const GradcheckReport& r) {
  std::ostringstream s;
  s << r;
  return s.str();
}
constexpr DType f64 = DType::f64;
}  // namespace

TEST_CASE("module bookkeeping: names, state dicts, modes, dtype", "[nn][module]") {
  Generator g(0);
  Mlp mlp({3, 4, 2}, Activation::tanh, g);
  auto named = mlp.named_parameters();
  REQUIRE(named.size() == 4);
  CHECK(named[0].first == "layers.0.weight");
  CHECK(named[3].first == "layers.1.bias");
  CHECK(mlp.num_parameters() == 3 * 4 + 4 + 4 * 2 + 2);
  auto sd = mlp.state_dict();
  sd["layers.0.weight"] = zeros({3, 5});
  sd.erase("layers.1.bias");
  sd["extra"] = zeros({1});
  try {
    mlp.load_state_dict(sd);
    FAIL("load_state_dict accepted a bad state");
  } catch (const ValueError& e) {
    const std::string m = e.what();
    CHECK_THAT(m,
               Catch::Contains("mismatch: layers.0.weight expects float32[3,4], got float32[3,5]"));
    CHECK_THAT(m, Catch::Contains("missing: layers.1.bias"));
    CHECK_THAT(m, Catch::Contains("unexpected: extra"));
  }
  mlp.to(f64);
  CHECK(mlp.parameters()[0].dtype() == f64);
  CHECK(mlp.parameters()[0].requires_grad());
  Dropout d(0.5, g);
  const Tensor x = ones({1000}, f64);
  CHECK(sum(eq(d(x), zeros_like(x))).item() > 300);
  d.eval();
  CHECK(sum(eq(d(x), x)).item() == 1000);
}

TEST_CASE("layers pass gradient checks of order 1 and 2", "[nn][gradcheck]") {
  Generator g(1);
  SECTION("Linear") {
    Linear m(3, 2, g, {.dtype = f64});
    const auto r = check_module(m, randn({4, 3}, g, f64), [&](const Tensor& x) { return m(x); });
    INFO(show(r));
    CHECK(r.ok());
  }
  SECTION("Mlp (silu)") {
    Mlp m({3, 5, 2}, Activation::silu, g, {.dtype = f64});
    const auto r = check_module(m, randn({4, 3}, g, f64), [&](const Tensor& x) { return m(x); });
    INFO(show(r));
    CHECK(r.ok());
  }
  SECTION("LayerNorm") {
    LayerNorm m(5, 1e-5, f64);
    const auto r =
        check_module(m, randn({3, 5}, g, f64), [&](const Tensor& x) { return m(x) * m(x); });
    INFO(show(r));
    CHECK(r.ok());
  }
  SECTION("GroupNorm") {
    GroupNorm m(2, 4, 1e-5, f64);
    const auto r =
        check_module(m, randn({2, 4, 3, 3}, g, f64), [&](const Tensor& x) { return m(x) * m(x); });
    INFO(show(r));
    CHECK(r.ok());
  }
  SECTION("Conv2d, stride 1 and 2") {
    Conv2d a(2, 3, 3, g, {.padding = 1, .dtype = f64});
    const auto r1 =
        check_module(a, randn({2, 2, 4, 4}, g, f64), [&](const Tensor& x) { return a(x); });
    INFO(show(r1));
    CHECK(r1.ok());
    Conv2d b(2, 2, 2, g, {.stride = 2, .dtype = f64});
    const auto r2 =
        check_module(b, randn({1, 2, 4, 4}, g, f64), [&](const Tensor& x) { return square(b(x)); });
    INFO(show(r2));
    CHECK(r2.ok());
  }
  SECTION("pooling and upsampling") {
    const auto r = gradcheck(
        [](const std::vector<Tensor>& v) {
          return square(upsample_nearest2d(avg_pool2d(v[0], 2), 2));
        },
        {randn({1, 2, 4, 4}, g, f64)}, {.order = 2});
    INFO(show(r));
    CHECK(r.ok());
  }
  SECTION("Embedding") {
    Embedding m(5, 3, g, f64);
    const Tensor idx = from_indices({4, 0, 4}, {3});
    std::vector<std::string> names;
    const auto r = gradcheck(
        [&](const std::vector<Tensor>& v) {
          return square(functional_call(m, {{"weight", v[0]}}, [&] { return m(idx); }));
        },
        {m.weight.detach()}, {.order = 2});
    INFO(show(r));
    CHECK(r.ok());
  }
  SECTION("multi-head self-attention") {
    MultiHeadSelfAttention m(4, 2, g, f64);
    const auto r = check_module(m, randn({2, 3, 4}, g, f64), [&](const Tensor& x) { return m(x); });
    INFO(show(r));
    CHECK(r.ok());
  }
  SECTION("Transformer encoder layer") {
    TransformerEncoderLayer m(4, 2, 6, g, 0.0, Activation::gelu, f64);
    const auto r = check_module(m, randn({2, 3, 4}, g, f64), [&](const Tensor& x) { return m(x); });
    INFO(show(r));
    CHECK(r.ok());
  }
  SECTION("time embeddings and FiLM") {
    GaussianFourierFeatures ff(4, 2.0, g, f64);
    const auto r1 = gradcheck([&](const std::vector<Tensor>& v) { return ff(v[0]); },
                              {rand({3}, g, f64)}, {.order = 2});
    INFO(show(r1));
    CHECK(r1.ok());
    const auto r2 =
        gradcheck([](const std::vector<Tensor>& v) { return sinusoidal_embedding(v[0], 5); },
                  {rand({3}, g, f64)}, {.order = 2});
    INFO(show(r2));
    CHECK(r2.ok());
    FiLM film(3, 2, g, f64);
    film.proj.weight = randn({3, 4}, g, f64).requires_grad_();  // away from the zero init
    const Tensor c = randn({2, 3}, g, f64);
    const auto r3 =
        check_module(film, randn({2, 2, 3}, g, f64), [&](const Tensor& h) { return film(h, c); });
    INFO(show(r3));
    CHECK(r3.ok());
  }
  SECTION("CNF dynamics (concat-squash)") {
    CnfDynamics m(2, {5, 5}, Activation::tanh, g, f64);
    const Tensor t = scalar(0.3, f64);
    const auto r = check_module(m, randn({3, 2}, g, f64), [&](const Tensor& z) { return m(t, z); });
    INFO(show(r));
    CHECK(r.ok());
  }
}

TEST_CASE("score networks pass gradient checks, including d/dtheta tr(ds/dx)", "[nn][gradcheck]") {
  Generator g(2);
  const Tensor t = rand({3}, g, f64);
  SECTION("MLP score network") {
    MlpScoreNet s(2, {.hidden = 6, .layers = 2, .embed_dim = 4, .dtype = f64}, g);
    s.mlp.layers.back()->weight = randn({6, 2}, g, f64).requires_grad_();  // leave the zero init
    const Tensor x = randn({3, 2}, g, f64);
    const auto r = check_module(s, x, [&](const Tensor& z) { return s(z, t); });
    INFO(show(r));
    CHECK(r.ok());
    // The score-matching second derivative: F(theta) = sum_b tr(ds/dx)(x_b), checked in theta
    // to order 2 (so third derivatives of the network are exercised).
    const auto r2 = check_module(s, x, [&](const Tensor& z) {
      return sum(divergence([&](const Tensor& u) { return s(u, t); }, z));
    });
    INFO(show(r2));
    CHECK(r2.ok());
  }
  SECTION("U-Net") {
    UNet u(1, {.channels = 4, .multipliers = {1, 2}, .groups = 2, .attention = true, .dtype = f64},
           g);
    for (auto& [n, p] : u.named_parameters())
      *p = (randn(p->shape(), g, f64) * 0.3).requires_grad_();
    const Tensor x = randn({2, 1, 4, 4}, g, f64);
    const auto r = check_module(
        u, x, [&](const Tensor& z) { return u(z, slice(t, 0, 0, 2)); }, 1);
    INFO(show(r));
    CHECK(r.ok());
    CHECK(u(x, slice(t, 0, 0, 2)).shape() == x.shape());
  }
  SECTION("energy network: score = -dE/dx, and its parameter gradient") {
    EnergyNet e(2, {.hidden = 6, .layers = 2, .embed_dim = 4, .dtype = f64}, g);
    const Tensor x = randn({3, 2}, g, f64);
    const auto r = check_module(e, x, [&](const Tensor& z) { return e.score(z, t); });
    INFO(show(r));
    CHECK(r.ok());
    // score against finite differences of the energy
    const double eps = 1e-6;
    const Tensor s = e.score(x, t);
    for (int j = 0; j < 2; ++j) {
      const Tensor d = reshape(one_hot(from_indices({j}, {1}), 2, f64), {1, 2}) * eps;
      const Tensor fd = (e.energy(x + d, t) - e.energy(x - d, t)) / (2 * eps);
      CHECK(max(abs(select(s, 1, j) + fd)).item() < 1e-7);
    }
  }
}

TEST_CASE("Conv2d matches a plain-loop convolution", "[nn][reference]") {
  Generator g(3);
  for (auto [stride, padding] : {std::pair<int64_t, int64_t>{1, 1}, {2, 0}, {2, 1}, {1, 0}}) {
    Conv2d conv(3, 4, 3, g, {.stride = stride, .padding = padding, .dtype = f64});
    const Tensor x = randn({2, 3, 7, 6}, g, f64);
    const Tensor y = conv(x);
    const int64_t Ho = (7 + 2 * padding - 3) / stride + 1, Wo = (6 + 2 * padding - 3) / stride + 1;
    REQUIRE(y.shape() == Shape({2, 4, Ho, Wo}));
    const auto xv = x.to_vector(), wv = conv.weight.to_vector(), bv = conv.bias->to_vector(),
               yv = y.to_vector();
    double worst = 0;
    for (int n = 0; n < 2; ++n)
      for (int o = 0; o < 4; ++o)
        for (int h = 0; h < Ho; ++h)
          for (int w = 0; w < Wo; ++w) {
            double acc = bv[o];
            for (int c = 0; c < 3; ++c)
              for (int i = 0; i < 3; ++i)
                for (int j = 0; j < 3; ++j) {
                  const int64_t hh = h * stride + i - padding, ww = w * stride + j - padding;
                  if (hh < 0 || hh >= 7 || ww < 0 || ww >= 6) continue;
                  acc += wv[((o * 3 + c) * 3 + i) * 3 + j] * xv[((n * 3 + c) * 7 + hh) * 6 + ww];
                }
            worst = std::max(worst, std::abs(acc - yv[((n * 4 + o) * Ho + h) * Wo + w]));
          }
    CHECK(worst < 1e-12);
  }
}

TEST_CASE("self-attention matches a plain-loop reference", "[nn][reference]") {
  Generator g(4);
  const int64_t B = 2, T = 3, D = 4, H = 2, dh = 2;
  MultiHeadSelfAttention m(D, H, g, f64);
  const Tensor x = randn({B, T, D}, g, f64);
  const auto Q = m.q(x).to_vector(), K = m.k(x).to_vector(), V = m.v(x).to_vector();
  std::vector<double> y(B * T * D, 0.0);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < T; ++i) {
        std::vector<double> s(T);
        double mx = -1e300, z = 0;
        for (int j = 0; j < T; ++j) {
          double acc = 0;
          for (int d = 0; d < dh; ++d)
            acc += Q[(b * T + i) * D + h * dh + d] * K[(b * T + j) * D + h * dh + d];
          s[j] = acc / std::sqrt(double(dh));
          mx = std::max(mx, s[j]);
        }
        for (int j = 0; j < T; ++j) z += (s[j] = std::exp(s[j] - mx));
        for (int j = 0; j < T; ++j)
          for (int d = 0; d < dh; ++d)
            y[(b * T + i) * D + h * dh + d] += s[j] / z * V[(b * T + j) * D + h * dh + d];
      }
  const Tensor expect = m.out(from_vector(y, {B, T, D}, f64));
  CHECK(max(abs(m(x) - expect)).item() < 1e-12);
}
