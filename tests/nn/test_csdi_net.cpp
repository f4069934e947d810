// CSDI's denoiser (nn/csdi.hpp): shapes and side information, the step-embedding table, the
// conditioning channel's independence of target values (masking correctness), typed option
// errors, and first-order gradchecks of the transformer layer and a whole tiny net in float64.
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>

#include "autodiff/sg.hpp"
#include "autodiff/verify/gradcheck.hpp"
#include "nn/csdi.hpp"

using namespace sg;
using namespace sg::nn;

namespace {
const DType f64 = DType::f64;

CsdiOptions tiny_csdi(DType dt = f64) {
  return {.layers = 2,
          .channels = 4,
          .heads = 2,
          .ff_dim = 6,
          .steps = 50,
          .step_embed_dim = 8,
          .time_embed_dim = 6,
          .feature_embed_dim = 3,
          .dtype = dt};
}

// The zero-initialised output layer makes eps_theta = 0; give it weights so outputs carry signal.
void wake_output(CsdiNet& net, Generator& g) {
  assign_leaf(&net.out2.weight, randn(net.out2.weight.shape(), g, net.out2.weight.dtype()));
}

bool same_bits(const Tensor& a, const Tensor& b) {
  const auto x = a.to_vector(), y = b.to_vector();
  if (x.size() != y.size()) return false;
  for (std::size_t i = 0; i < x.size(); ++i)
    if (std::bit_cast<uint64_t>(x[i]) != std::bit_cast<uint64_t>(y[i])) return false;
  return true;
}
}  // namespace

TEST_CASE("CSDI denoiser: shapes, side information, zero-initialised output", "[nn][csdi]") {
  Generator g(1);
  CsdiNet net(3, tiny_csdi(), g);
  const int64_t B = 2, K = 3, L = 5;
  const Tensor x0 = randn({B, K, L}, g, f64), xn = randn({B, K, L}, g, f64);
  const Tensor cond = rand({B, K, L}, g, f64) > 0.5;
  const Tensor in = csdi_input(x0, xn, cond);
  CHECK(in.shape() == Shape{B, 2, K, L});
  const Tensor side = net.side_info(cond);
  CHECK(side.shape() == Shape{B, K, L, 6 + 3 + 1});
  CHECK(net.side_dim() == 10);
  // last side channel is the mask; the time embedding at l = 1, j = 0 is (sin 1, cos 1)
  CHECK(same_bits(select(side, 3, 9), cast(cond, f64)));
  CHECK(select(select(select(select(side, 0, 1), 0, 2), 0, 1), 0, 0).item() ==
        Approx(std::sin(1.0)));
  CHECK(select(select(select(select(side, 0, 1), 0, 2), 0, 1), 0, 1).item() ==
        Approx(std::cos(1.0)));
  // step table: [sin(n f_j), cos(n f_j)], f_j = 10^(4 j / (h - 1)), h = 4
  const std::vector<double> row = select(net.step_table, 0, 3).to_vector();
  REQUIRE(row.size() == 8);
  CHECK(row[2] == Approx(std::sin(3.0 * std::pow(10.0, 8.0 / 3.0))));
  CHECK(row[4 + 1] == Approx(std::cos(3.0 * std::pow(10.0, 4.0 / 3.0))));
  const Tensor step = from_indices({0, 49}, {B});
  const Tensor out = net(in, cond, step);
  CHECK(out.shape() == Shape{B, K, L});
  CHECK(max(abs(out)).item() == 0.0);  // zero-initialised last conv
  wake_output(net, g);
  const Tensor out2 = net(in, cond, step);
  CHECK(max(abs(out2)).item() > 0.0);
  CHECK(net.blocks.size() == 2);
  // default sizes build (4 layers, 64 channels, 8 heads, ff 64) and run on one window
  Generator g2(0);
  CsdiNet big(4, {}, g2);
  CHECK(big.blocks.size() == 4);
  const Tensor c4 = ones({1, 4, 6}, DType::b8);
  CHECK(
      big(csdi_input(zeros({1, 4, 6}), zeros({1, 4, 6}), c4), c4, from_indices({7}, {1})).shape() ==
      Shape{1, 4, 6});
}

TEST_CASE("CSDI denoiser: target values never reach the conditioning channel", "[nn][csdi]") {
  Generator g(2);
  CsdiNet net(3, tiny_csdi(), g);
  wake_output(net, g);
  const int64_t B = 2, K = 3, L = 4;
  const Tensor x0 = randn({B, K, L}, g, f64), xn = randn({B, K, L}, g, f64);
  const Tensor cond = rand({B, K, L}, g, f64) > 0.4;
  const Tensor step = from_indices({3, 20}, {B});
  // change x0 off the conditioning set (targets, gaps), and x_n on it
  const Tensor x0b = where(cond, x0, randn({B, K, L}, g, f64) * 100.0);
  const Tensor xnb = where(cond, randn({B, K, L}, g, f64) * 100.0, xn);
  const Tensor in = csdi_input(x0, xn, cond), inb = csdi_input(x0b, xnb, cond);
  CHECK(same_bits(in, inb));
  CHECK(same_bits(net(in, cond, step), net(inb, cond, step)));
  // channel 0 is exactly 0 off cond, channel 1 exactly 0 on it
  CHECK(same_bits(where(cond, zeros({B, K, L}, f64), select(in, 1, 0)), zeros({B, K, L}, f64)));
  CHECK(same_bits(where(cond, select(in, 1, 1), 0.0), zeros({B, K, L}, f64)));
  // the conditioning values themselves do matter
  const Tensor x0c = where(cond, x0 + 1.0, x0);
  CHECK(max(abs(net(csdi_input(x0c, xn, cond), cond, step) - net(in, cond, step))).item() > 1e-6);
}

TEST_CASE("CSDI denoiser: option and shape errors", "[nn][csdi]") {
  Generator g(0);
  CsdiOptions o = tiny_csdi();
  o.heads = 3;
  CHECK_THROWS_AS(CsdiNet(3, o, g), ValueError);
  o = tiny_csdi();
  o.step_embed_dim = 7;
  CHECK_THROWS_AS(CsdiNet(3, o, g), ValueError);
  CHECK_THROWS_AS(CsdiNet(0, tiny_csdi(), g), ValueError);
  CsdiNet net(3, tiny_csdi(), g);
  const Tensor c = ones({1, 3, 4}, DType::b8);
  CHECK_THROWS_AS(net(zeros({1, 2, 2, 4}, f64), c, from_indices({0}, {1})), ShapeError);
  CHECK_THROWS_AS(net(zeros({1, 2, 3, 4}, f64), c, from_indices({0, 1}, {2})), ShapeError);
  CHECK_THROWS_AS(csdi_input(zeros({1, 3, 4}), zeros({1, 3, 5}), c), ShapeError);
}

TEST_CASE("CSDI denoiser: first-order gradchecks in float64", "[nn][csdi][gradcheck]") {
  Generator g(3);
  SECTION("transformer encoder layer (input and every parameter)") {
    TransformerEncoderLayer m(4, 2, 6, g, 0.0, Activation::gelu, f64);
    NamedTensors p;
    std::vector<std::string> names;
    std::vector<Tensor> inputs = {randn({2, 3, 4}, g, f64)};
    for (auto& [name, slot] : m.named_parameters()) {
      names.push_back(name);
      inputs.push_back(slot->detach());
    }
    const auto r = gradcheck(
        [&](const std::vector<Tensor>& v) {
          NamedTensors sub;
          for (std::size_t i = 0; i < names.size(); ++i) sub[names[i]] = v[i + 1];
          return functional_call(m, sub, [&] { return m(v[0]); });
        },
        inputs, {.order = 1});
    INFO(r);
    CHECK(r.ok());
  }
  SECTION("whole tiny net, in the noisy channel and the output layer") {
    CsdiNet net(2, tiny_csdi(), g);
    wake_output(net, g);
    const Tensor cond = rand({1, 2, 3}, g, f64) > 0.5, x0 = randn({1, 2, 3}, g, f64);
    const Tensor step = from_indices({11}, {1});
    const auto r = gradcheck(
        [&](const std::vector<Tensor>& v) {
          return functional_call(net, {{"out2.weight", v[1]}},
                                 [&] { return net(csdi_input(x0, v[0], cond), cond, step); });
        },
        {randn({1, 2, 3}, g, f64), net.out2.weight.detach()}, {.order = 1});
    INFO(r);
    CHECK(r.ok());
  }
}
