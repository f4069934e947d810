// CSDI's denoiser (nn/csdi.hpp): residual layers of temporal and feature transformers over
// channels-last activations [B, K, L, C]; 1x1 convolutions are Linear layers on the last axis.
#include "nn/csdi.hpp"

#include <cmath>
#include <memory>
#include <string>

#include "autodiff/ops/ops.hpp"
#include "nn/init.hpp"

namespace sg::nn {
namespace {

// CSDI's Conv1d_with_init: a 1x1 convolution with Kaiming-normal weights, N(0, 2 / in), and
// PyTorch's default bias U(+-1/sqrt(in)).
std::unique_ptr<Linear> kaiming_1x1(int64_t in, int64_t out, Generator& gen, DType dtype) {
  auto l = std::make_unique<Linear>(in, out, gen, LayerOptions{.dtype = dtype});
  assign_leaf(&l->weight, init::kaiming_normal({in, out}, init::linear_fans(in, out), gen,
                                               std::sqrt(2.0), dtype));
  return l;
}

void check_options(int64_t features, const CsdiOptions& o) {
  auto positive = [](int64_t v, const char* name) {
    if (v < 1) fail<ValueError>("CsdiNet: ", name, " must be >= 1, got ", v);
  };
  positive(features, "features");
  positive(o.layers, "layers");
  positive(o.channels, "channels");
  positive(o.heads, "heads");
  positive(o.ff_dim, "ff_dim");
  positive(o.steps, "steps");
  positive(o.feature_embed_dim, "feature_embed_dim");
  if (o.channels % o.heads)
    fail<ValueError>("CsdiNet: heads (", o.heads, ") must divide channels (", o.channels, ")");
  if (o.step_embed_dim < 4 || o.step_embed_dim % 2)
    fail<ValueError>("CsdiNet: step_embed_dim must be even and >= 4, got ", o.step_embed_dim);
  if (o.time_embed_dim < 2 || o.time_embed_dim % 2)
    fail<ValueError>("CsdiNet: time_embed_dim must be even and >= 2, got ", o.time_embed_dim);
  if (!(o.dropout >= 0.0 && o.dropout < 1.0))
    fail<ValueError>("CsdiNet: dropout must be in [0, 1), got ", o.dropout);
}

// table[n, j] = sin(n f_j), table[n, h + j] = cos(n f_j), f_j = 10^(4 j / (h - 1)), j < h = dim/2
Tensor step_table_values(int64_t steps, int64_t dim, DType dtype) {
  const int64_t h = dim / 2;
  std::vector<double> v(static_cast<std::size_t>(steps * dim));
  for (int64_t n = 0; n < steps; ++n)
    for (int64_t j = 0; j < h; ++j) {
      const double a = double(n) * std::pow(10.0, 4.0 * double(j) / double(h - 1));
      v[std::size_t(n * dim + j)] = std::sin(a);
      v[std::size_t(n * dim + h + j)] = std::cos(a);
    }
  return from_vector(v, {steps, dim}, dtype);
}

// pe[l, 2j] = sin(l / 10000^(2j/d)), pe[l, 2j+1] = cos(l / 10000^(2j/d))  (CSDI's time_embedding)
Tensor time_embedding(int64_t length, int64_t d, DType dtype, Device device) {
  std::vector<double> v(static_cast<std::size_t>(length * d));
  for (int64_t l = 0; l < length; ++l)
    for (int64_t j = 0; j < d / 2; ++j) {
      const double a = double(l) / std::pow(10000.0, double(2 * j) / double(d));
      v[std::size_t(l * d + 2 * j)] = std::sin(a);
      v[std::size_t(l * d + 2 * j + 1)] = std::cos(a);
    }
  return from_vector(v, {length, d}, dtype, device);
}

Tensor as_bool(const Tensor& m) { return m.dtype() == DType::b8 ? m : (m > 0.5); }

}  // namespace

Tensor csdi_input(const Tensor& x0, const Tensor& x_noisy, const Tensor& cond_mask) {
  if (x0.rank() != 3 || x_noisy.shape() != x0.shape() || cond_mask.shape() != x0.shape())
    fail<ShapeError>("csdi_input: x0 ", describe(x0), ", x_noisy ", describe(x_noisy),
                     " and cond_mask ", describe(cond_mask), " must all be [B, K, L]");
  const Tensor c = as_bool(cond_mask);
  // channel 0: x0 on cond, 0 elsewhere;  channel 1: x_n off cond, 0 on it
  return stack({where(c, x0, 0.0), where(c, zeros_like(x_noisy), x_noisy)}, 1);
}

CsdiResidualLayer::CsdiResidualLayer(int64_t side_dim, const CsdiOptions& o, Generator& gen)
    : channels(o.channels),
      step_proj(child("step_proj", std::make_unique<Linear>(o.step_embed_dim, o.channels, gen,
                                                            LayerOptions{.dtype = o.dtype}))),
      side_proj(child("side_proj", kaiming_1x1(side_dim, 2 * o.channels, gen, o.dtype))),
      mid_proj(child("mid_proj", kaiming_1x1(o.channels, 2 * o.channels, gen, o.dtype))),
      out_proj(child("out_proj", kaiming_1x1(o.channels, 2 * o.channels, gen, o.dtype))),
      time_layer(child("time_layer", std::make_unique<TransformerEncoderLayer>(
                                         o.channels, o.heads, o.ff_dim, gen, o.dropout,
                                         Activation::gelu, o.dtype))),
      feature_layer(child("feature_layer", std::make_unique<TransformerEncoderLayer>(
                                               o.channels, o.heads, o.ff_dim, gen, o.dropout,
                                               Activation::gelu, o.dtype))) {}

std::pair<Tensor, Tensor> CsdiResidualLayer::operator()(const Tensor& x, const Tensor& side,
                                                        const Tensor& step_emb) const {
  const int64_t B = x.dim(0), K = x.dim(1), L = x.dim(2), C = channels;
  Tensor y = x + reshape(step_proj(step_emb), {B, 1, 1, C});  // y = x + W_d e(n)
  // temporal attention: each (b, k) row is a sequence of L tokens of width C
  if (L > 1) y = reshape(time_layer(reshape(y, {B * K, L, C})), {B, K, L, C});
  // feature attention: each (b, l) column is a sequence of K tokens
  if (K > 1) {
    const Tensor t = reshape(permute(y, {0, 2, 1, 3}), {B * L, K, C});
    y = permute(reshape(feature_layer(t), {B, L, K, C}), {0, 2, 1, 3});
  }
  y = mid_proj(y) + side_proj(side);                             // [B, K, L, 2C]
  y = sigmoid(slice(y, 3, 0, C)) * tanh(slice(y, 3, C, 2 * C));  // gate, filter (CSDI order)
  y = out_proj(y);                                               // [B, K, L, 2C]
  return {(x + slice(y, 3, 0, C)) * (1.0 / std::sqrt(2.0)), slice(y, 3, C, 2 * C)};
}

CsdiNet::CsdiNet(int64_t k, CsdiOptions o, Generator& gen)
    : features((check_options(k, o), k)),
      input_proj(child("input_proj", kaiming_1x1(2, o.channels, gen, o.dtype))),
      step1(child("step1", std::make_unique<Linear>(o.step_embed_dim, o.step_embed_dim, gen,
                                                    LayerOptions{.dtype = o.dtype}))),
      step2(child("step2", std::make_unique<Linear>(o.step_embed_dim, o.step_embed_dim, gen,
                                                    LayerOptions{.dtype = o.dtype}))),
      out1(child("out1", kaiming_1x1(o.channels, o.channels, gen, o.dtype))),
      out2(child("out2",
                 std::make_unique<Linear>(o.channels, 1, gen,
                                          LayerOptions{.zero_init = true, .dtype = o.dtype}))),
      feature_embed(child("feature_embed",
                          std::make_unique<Embedding>(k, o.feature_embed_dim, gen, o.dtype))),
      step_table(buffer("step_table", step_table_values(o.steps, o.step_embed_dim, o.dtype))),
      o_(o) {
  for (int64_t i = 0; i < o.layers; ++i)
    blocks.push_back(&child("blocks." + std::to_string(i),
                            std::make_unique<CsdiResidualLayer>(side_dim(), o, gen)));
}

Tensor CsdiNet::side_info(const Tensor& cond_mask) const {
  if (cond_mask.rank() != 3 || cond_mask.dim(1) != features)
    fail<ShapeError>("CsdiNet(", features, " features): cond_mask ", describe(cond_mask),
                     " is not [B, ", features, ", L]");
  const int64_t B = cond_mask.dim(0), K = features, L = cond_mask.dim(2);
  const Device dev = cond_mask.device();
  const Tensor te = expand(
      reshape(time_embedding(L, o_.time_embed_dim, o_.dtype, dev), {1, 1, L, o_.time_embed_dim}),
      {B, K, L, o_.time_embed_dim});
  const Tensor fe =
      expand(reshape(feature_embed(arange(K, DType::i64, dev)), {1, K, 1, o_.feature_embed_dim}),
             {B, K, L, o_.feature_embed_dim});
  const Tensor m = unsqueeze(cast(as_bool(cond_mask), o_.dtype), 3);
  return concat({te, fe, m}, 3);
}

Tensor CsdiNet::step_embedding(const Tensor& step) const {
  if (step.rank() != 1 || step.dtype() != DType::i64)
    fail<ShapeError>("CsdiNet: step ", describe(step), " must be int64 [B]");
  return silu(step2(silu(step1(index_select(step_table, 0, step)))));
}

Tensor CsdiNet::operator()(const Tensor& input, const Tensor& cond_mask, const Tensor& step) const {
  if (input.rank() != 4 || input.dim(1) != 2 || input.dim(2) != features ||
      cond_mask.shape() != Shape{input.dim(0), input.dim(2), input.dim(3)} || step.rank() != 1 ||
      step.dim(0) != input.dim(0))
    fail<ShapeError>("CsdiNet(", features, " features): input ", describe(input),
                     " must be [B, 2, ", features, ", L], cond_mask ", describe(cond_mask),
                     " [B, K, L] and step ", describe(step), " [B]");
  const int64_t B = input.dim(0), K = features, L = input.dim(3);
  Tensor x = relu(input_proj(permute(input, {0, 2, 3, 1})));  // [B, K, L, C]
  const Tensor side = side_info(cond_mask);
  const Tensor emb = step_embedding(step);
  Tensor skip;
  for (const CsdiResidualLayer* b : blocks) {
    auto [next, s] = (*b)(x, side, emb);
    x = next;
    skip = skip.defined() ? skip + s : s;
  }
  // out = W2 relu(W1 (sum skip / sqrt(layers))), W2 zero-initialised
  const Tensor h = relu(out1(skip * (1.0 / std::sqrt(double(blocks.size())))));
  return reshape(out2(h), {B, K, L});
}

}  // namespace sg::nn
