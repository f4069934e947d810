// Layer forwards, each a few differentiable ops; formulas in one line beside each.
#include "nn/layers.hpp"

#include <cmath>

#include "autodiff/ops/ops.hpp"
#include "nn/init.hpp"

namespace sg::nn {

Tensor activate(Activation a, const Tensor& x) {
  switch (a) {
    case Activation::identity:
      return x;
    case Activation::relu:
      return relu(x);
    case Activation::silu:
      return silu(x);
    case Activation::tanh:
      return tanh(x);
    case Activation::softplus:
      return softplus(x);
    case Activation::gelu:
      return gelu(x);
    case Activation::elu:
      return elu(x);
    case Activation::sigmoid:
      return sigmoid(x);
  }
  return x;
}
Activation activation_from_name(const std::string& n) {
  const std::pair<const char*, Activation> names[] = {
      {"identity", Activation::identity}, {"relu", Activation::relu},
      {"silu", Activation::silu},         {"tanh", Activation::tanh},
      {"softplus", Activation::softplus}, {"gelu", Activation::gelu},
      {"elu", Activation::elu},           {"sigmoid", Activation::sigmoid}};
  for (auto& [name, a] : names)
    if (n == name) return a;
  fail<ValueError>("unknown activation '", n,
                   "' (identity, relu, silu, tanh, softplus, gelu, elu, sigmoid)");
}

// ---- Linear, MLP ----
Linear::Linear(int64_t in, int64_t out, Generator& gen, LayerOptions o)
    : in_features(in),
      out_features(out),
      weight(param("weight", o.zero_init
                                 ? zeros({in, out}, o.dtype)
                                 : init::fan_in_uniform({in, out}, init::linear_fans(in, out), gen,
                                                        o.dtype))) {
  if (o.bias)
    bias = &param("bias", o.zero_init ? zeros({out}, o.dtype)
                                      : init::fan_in_uniform({out}, init::linear_fans(in, out), gen,
                                                             o.dtype));
}
// y = x W + b
Tensor Linear::operator()(const Tensor& x) const {
  if (x.dim(-1) != in_features)
    fail<ShapeError>("Linear(", in_features, " -> ", out_features, "): input ", describe(x),
                     " has ", x.dim(-1), " features");
  const Tensor y = matmul(x, weight);
  return bias ? y + *bias : y;
}

Mlp::Mlp(const std::vector<int64_t>& widths, Activation a, Generator& gen, LayerOptions o,
         bool zero_init_last)
    : act(a) {
  if (widths.size() < 2) fail<ValueError>("Mlp: need at least input and output widths");
  for (std::size_t i = 0; i + 1 < widths.size(); ++i) {
    LayerOptions lo = o;
    lo.zero_init = zero_init_last && i + 2 == widths.size();
    layers.push_back(&child("layers." + std::to_string(i),
                            std::make_unique<Linear>(widths[i], widths[i + 1], gen, lo)));
  }
}
Tensor Mlp::operator()(const Tensor& x) const {
  Tensor h = x;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    h = (*layers[i])(h);
    if (i + 1 < layers.size()) h = activate(act, h);
  }
  return h;
}

// ---- normalisation ----
LayerNorm::LayerNorm(int64_t dim, double e, DType dtype)
    : eps(e),
      weight(param("weight", ones({dim}, dtype))),
      bias(param("bias", zeros({dim}, dtype))) {}
// y = (x - mean) / sqrt(var + eps) w + b over the last axis (population variance)
Tensor LayerNorm::operator()(const Tensor& x) const {
  const Tensor mu = mean(x, {-1}, true);
  const Tensor d = x - mu;
  return d * rsqrt(mean(d * d, {-1}, true) + eps) * weight + bias;
}

GroupNorm::GroupNorm(int64_t g, int64_t c, double e, DType dtype)
    : groups(g),
      channels(c),
      eps(e),
      weight(param("weight", ones({c}, dtype))),
      bias(param("bias", zeros({c}, dtype))) {
  if (c % g) fail<ValueError>("GroupNorm: ", c, " channels are not divisible into ", g, " groups");
}
// y = (x - mean_g) / sqrt(var_g + eps) w_c + b_c, statistics per sample and group
Tensor GroupNorm::operator()(const Tensor& x) const {
  if (x.rank() < 2 || x.dim(1) != channels)
    fail<ShapeError>("GroupNorm(", groups, ", ", channels, "): input ", describe(x), " is not [N, ",
                     channels, ", ...]");
  // y = (x - mean) * (rsqrt(var + eps) * weight) + bias, with the per-(sample, channel) scale
  // formed on the small [N, G, C/G] tensor: two full-size passes after the statistics, and
  // fewer in the backward pass than normalizing first and scaling after.
  const int64_t N = x.dim(0), cg = channels / groups;
  const Tensor xg = reshape(x, {N, groups, cg, -1});
  const Tensor d = xg - mean(xg, {2, 3}, true);
  const Tensor r = rsqrt(mean(d * d, {2, 3}, true) + eps);  // [N, G, 1, 1]
  const Tensor scale = r * reshape(weight, {1, groups, cg, 1});
  return reshape(d * scale + reshape(bias, {1, groups, cg, 1}), x.shape());
}

Dropout::Dropout(double prob, Generator& g) : p(prob), gen(&g) {
  if (!(p >= 0 && p < 1)) fail<ValueError>("Dropout: p = ", p, " must lie in [0, 1)");
}
// y = x m / (1 - p), m ~ Bernoulli(1 - p), in training mode only
Tensor Dropout::operator()(const Tensor& x) const {
  if (!training() || p == 0) return x;
  return x * bernoulli(x.shape(), 1 - p, *gen, x.dtype(), x.device()) * (1.0 / (1 - p));
}

// ---- convolution ----
Tensor unfold2d(const Tensor& x, int64_t k, int64_t stride, int64_t padding) {
  if (x.rank() != 4) fail<ShapeError>("unfold2d: input ", describe(x), " is not [N, C, H, W]");
  const int64_t N = x.dim(0), C = x.dim(1), Hp = x.dim(2) + 2 * padding,
                Wp = x.dim(3) + 2 * padding;
  if (Hp < k || Wp < k)
    fail<ShapeError>("unfold2d: kernel ", k, " larger than the padded input ", describe(x));
  const int64_t Ho = (Hp - k) / stride + 1, Wo = (Wp - k) / stride + 1, L = Ho * Wo;
  const Tensor xp = padding ? pad(x, {0, 0, padding, padding}, {0, 0, padding, padding}) : x;
  // Flat spatial index of every (kernel offset, output position) pair, offsets major.
  std::vector<int64_t> idx;
  idx.reserve(static_cast<std::size_t>(k * k * L));
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j)
      for (int64_t oh = 0; oh < Ho; ++oh)
        for (int64_t ow = 0; ow < Wo; ++ow) idx.push_back((oh * stride + i) * Wp + ow * stride + j);
  const Tensor cols =
      index_select(reshape(xp, {N, C, Hp * Wp}), 2,
                   from_indices(idx, {static_cast<int64_t>(idx.size())}, x.device()));
  return reshape(cols, {N, C * k * k, L});
}

Conv2d::Conv2d(int64_t in, int64_t out, int64_t k, Generator& gen, ConvOptions o)
    : in_channels(in),
      out_channels(out),
      kernel(k),
      stride(o.stride),
      padding(o.padding),
      weight(param("weight", o.zero_init ? zeros({out, in, k, k}, o.dtype)
                                         : init::fan_in_uniform({out, in, k, k},
                                                                init::conv_fans(in, out, k * k),
                                                                gen, o.dtype))) {
  if (o.bias)
    bias = &param("bias", o.zero_init ? zeros({out}, o.dtype)
                                      : init::fan_in_uniform({out}, init::conv_fans(in, out, k * k),
                                                             gen, o.dtype));
}
// y[n, o] = sum_{c,i,j} W[o, c, i, j] x[n, c, s h + i - p, s w + j - p] + b[o]  (the conv2d op)
Tensor Conv2d::operator()(const Tensor& x) const {
  if (x.rank() != 4 || x.dim(1) != in_channels)
    fail<ShapeError>("Conv2d(", in_channels, " -> ", out_channels, "): input ", describe(x),
                     " is not [N, ", in_channels, ", H, W]");
  const Tensor out = conv2d(x, weight, stride, padding);
  return bias ? out + reshape(*bias, {1, out_channels, 1, 1}) : out;
}

Tensor avg_pool2d(const Tensor& x, int64_t k) {
  if (x.rank() != 4 || x.dim(2) % k || x.dim(3) % k)
    fail<ShapeError>("avg_pool2d: input ", describe(x),
                     " is not [N, C, H, W] with H and W divisible by ", k);
  return mean(reshape(x, {x.dim(0), x.dim(1), x.dim(2) / k, k, x.dim(3) / k, k}), {3, 5});
}
Tensor upsample_nearest2d(const Tensor& x, int64_t k) {
  if (x.rank() != 4)
    fail<ShapeError>("upsample_nearest2d: input ", describe(x), " is not [N, C, H, W]");
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  return reshape(expand(reshape(x, {N, C, H, 1, W, 1}), {N, C, H, k, W, k}), {N, C, H * k, W * k});
}

Embedding::Embedding(int64_t num, int64_t dim, Generator& gen, DType dtype)
    : weight(param("weight", randn({num, dim}, gen, dtype))) {}
Tensor Embedding::operator()(const Tensor& index) const {
  Shape s = index.shape();
  s.push_back(weight.dim(1));
  return reshape(index_select(weight, 0, reshape(index, {-1})), s);
}

// ---- attention ----
MultiHeadSelfAttention::MultiHeadSelfAttention(int64_t d, int64_t h, Generator& gen, DType dtype)
    : dim(d),
      heads(h),
      q(child("q", std::make_unique<Linear>(d, d, gen, LayerOptions{.dtype = dtype}))),
      k(child("k", std::make_unique<Linear>(d, d, gen, LayerOptions{.dtype = dtype}))),
      v(child("v", std::make_unique<Linear>(d, d, gen, LayerOptions{.dtype = dtype}))),
      out(child("out", std::make_unique<Linear>(d, d, gen, LayerOptions{.dtype = dtype}))) {
  if (d % h)
    fail<ValueError>("MultiHeadSelfAttention: dim ", d, " is not divisible by ", h, " heads");
}
// Attn(x) = concat_h softmax(Q_h K_h^T / sqrt(d_h)) V_h, then the output projection
Tensor MultiHeadSelfAttention::operator()(const Tensor& x) const {
  if (x.rank() != 3 || x.dim(2) != dim)
    fail<ShapeError>("MultiHeadSelfAttention(", dim, "): input ", describe(x), " is not [B, T, ",
                     dim, "]");
  const int64_t B = x.dim(0), T = x.dim(1), dh = dim / heads;
  auto split = [&](const Tensor& t) {
    return permute(reshape(t, {B, T, heads, dh}), {0, 2, 1, 3});
  };  // [B,h,T,dh]
  const Tensor Q = split(q(x)), K = split(k(x)), V = split(v(x));
  const Tensor attn = softmax(matmul(Q, K.mT()) * (1.0 / std::sqrt(double(dh))), -1);  // [B,h,T,T]
  const Tensor y = reshape(permute(matmul(attn, V), {0, 2, 1, 3}), {B, T, dim});
  return out(y);
}

TransformerEncoderLayer::TransformerEncoderLayer(int64_t d, int64_t h, int64_t ff, Generator& gen,
                                                 double p, Activation a, DType dtype)
    : attn(child("attn", std::make_unique<MultiHeadSelfAttention>(d, h, gen, dtype))),
      ff1(child("ff1", std::make_unique<Linear>(d, ff, gen, LayerOptions{.dtype = dtype}))),
      ff2(child("ff2", std::make_unique<Linear>(ff, d, gen, LayerOptions{.dtype = dtype}))),
      norm1(child("norm1", std::make_unique<LayerNorm>(d, 1e-5, dtype))),
      norm2(child("norm2", std::make_unique<LayerNorm>(d, 1e-5, dtype))),
      drop(child("drop", std::make_unique<Dropout>(p, gen))),
      act(a) {}
// x = LN1(x + Drop(Attn(x)));  x = LN2(x + Drop(W2 act(W1 x)))
Tensor TransformerEncoderLayer::operator()(const Tensor& x) const {
  const Tensor h = norm1(x + drop(attn(x)));
  return norm2(h + drop(ff2(activate(act, ff1(h)))));
}

}  // namespace sg::nn
