// Time embeddings and the score, energy and CNF networks (see networks.hpp).
#include "nn/networks.hpp"

#include <cmath>

#include "autodiff/ops/ops.hpp"
#include "autodiff/transforms/transforms.hpp"

namespace sg::nn {
namespace {
// t as [B] for a batch of B (a scalar t is shared by the batch).
Tensor batch_times(const Tensor& t, int64_t B) {
  if (t.rank() == 0) return expand(reshape(t, {1}), {B});
  if (t.rank() != 1 || t.dim(0) != B)
    fail<ShapeError>("time: t ", describe(t), " is neither a scalar nor [", B, "]");
  return t;
}
// [dim + embed, hidden x layers, out]: an MLP over [x, emb(t)]
std::vector<int64_t> conditioned_widths(int64_t dim, const MlpScoreOptions& o, int64_t out) {
  std::vector<int64_t> w = {dim + o.embed_dim};
  for (int64_t i = 0; i < o.layers; ++i) w.push_back(o.hidden);
  w.push_back(out);
  return w;
}
}  // namespace

GaussianFourierFeatures::GaussianFourierFeatures(int64_t dim, double scale, Generator& gen,
                                                 DType dtype)
    : W(buffer("W", randn({dim / 2}, gen, dtype) * scale)) {
  if (dim % 2) fail<ValueError>("GaussianFourierFeatures: dim ", dim, " must be even");
}
// [sin(2 pi t W), cos(2 pi t W)]
Tensor GaussianFourierFeatures::operator()(const Tensor& t) const {
  const Tensor p = unsqueeze(t, -1) * unsqueeze(W, 0) * (2 * M_PI);
  return concat({sin(p), cos(p)}, -1);
}

// [cos(t f_k), sin(t f_k)], f_k = max_period^(-k / half), k < half
Tensor sinusoidal_embedding(const Tensor& t, int64_t dim, double max_period) {
  const int64_t half = dim / 2;
  const Tensor f = exp(arange(0, double(half), 1, t.dtype(), t.device()) *
                       (-std::log(max_period) / double(half)));
  const Tensor a = unsqueeze(t, -1) * unsqueeze(f, 0);
  Tensor e = concat({cos(a), sin(a)}, -1);
  if (dim % 2) e = pad(e, {0, 0}, {0, 1});
  return e;
}

FiLM::FiLM(int64_t cond_dim, int64_t f, Generator& gen, DType dtype)
    : proj(
          child("proj", std::make_unique<Linear>(cond_dim, 2 * f, gen,
                                                 LayerOptions{.zero_init = true, .dtype = dtype}))),
      features(f) {}
// h (1 + scale(c)) + shift(c)
Tensor FiLM::operator()(const Tensor& h, const Tensor& c) const {
  const Tensor ss = proj(c);
  Shape s = Shape::filled(h.rank(), 1);
  s[0] = h.dim(0);
  s[1] = features;
  const Tensor scale = reshape(slice(ss, 1, 0, features), s),
               shift = reshape(slice(ss, 1, features, 2 * features), s);
  return h * (scale + 1.0) + shift;
}

// ---- MLP score network ----
namespace {
const MlpScoreOptions& checked(const MlpScoreOptions& o, const char* who) {
  if (o.hidden < 1) fail<ValueError>(who, ": hidden must be >= 1, got ", o.hidden);
  if (o.layers < 1) fail<ValueError>(who, ": layers must be >= 1, got ", o.layers);
  if (o.embed_dim < 2 || o.embed_dim % 2)
    fail<ValueError>(who, ": embed_dim must be even and >= 2, got ", o.embed_dim);
  if (!(std::isfinite(o.fourier_scale) && o.fourier_scale >= 0))
    fail<ValueError>(who, ": fourier_scale must be finite and >= 0, got ", o.fourier_scale);
  return o;
}
}  // namespace

MlpScoreNet::MlpScoreNet(int64_t dim, MlpScoreOptions o, Generator& gen)
    : embed(
          child("embed", std::make_unique<GaussianFourierFeatures>(
                             checked(o, "MlpScoreNet").embed_dim, o.fourier_scale, gen, o.dtype))),
      mlp(child("mlp", std::make_unique<Mlp>(conditioned_widths(dim, o, dim), o.act, gen,
                                             LayerOptions{.dtype = o.dtype},
                                             /*zero_init_last=*/true))) {}
Tensor MlpScoreNet::operator()(const Tensor& x, const Tensor& t) const {
  return mlp(concat({x, embed(batch_times(t, x.dim(0)))}, -1));
}

// ---- U-Net ----
ResBlock::ResBlock(int64_t in, int64_t out, int64_t temb_dim, int64_t groups, double p,
                   Generator& gen, DType dtype)
    : norm1(child("norm1", std::make_unique<GroupNorm>(groups, in, 1e-5, dtype))),
      norm2(child("norm2", std::make_unique<GroupNorm>(groups, out, 1e-5, dtype))),
      conv1(child("conv1", std::make_unique<Conv2d>(in, out, 3, gen,
                                                    ConvOptions{.padding = 1, .dtype = dtype}))),
      conv2(child("conv2", std::make_unique<Conv2d>(
                               out, out, 3, gen,
                               ConvOptions{.padding = 1, .zero_init = true, .dtype = dtype}))),
      temb_proj(child("temb_proj",
                      std::make_unique<Linear>(temb_dim, out, gen, LayerOptions{.dtype = dtype}))),
      drop(child("drop", std::make_unique<Dropout>(p, gen))) {
  if (in != out)
    skip = &child("skip", std::make_unique<Conv2d>(in, out, 1, gen, ConvOptions{.dtype = dtype}));
}
// h = conv1(silu(gn1(x))) + W silu(temb);  out = skip(x) + conv2(drop(silu(gn2(h))))
Tensor ResBlock::operator()(const Tensor& x, const Tensor& temb) const {
  Tensor h = conv1(silu(norm1(x)));
  h = h + reshape(temb_proj(silu(temb)), {h.dim(0), h.dim(1), 1, 1});
  h = conv2(drop(silu(norm2(h))));
  return (skip ? (*skip)(x) : x) + h;
}

namespace {
// The U-Net's options, each refused by name: GroupNorm's groups must divide every level's
// width (it used to fall back silently to gcd(groups, width), e.g. 7 groups on 32 channels
// became 1).
void check_unet_options(int64_t in_c, const UNetOptions& o) {
  if (in_c < 1) fail<ValueError>("UNet: in_channels must be >= 1, got ", in_c);
  if (o.channels < 1) fail<ValueError>("UNet: channels must be >= 1, got ", o.channels);
  if (o.multipliers.empty()) fail<ValueError>("UNet: multipliers must not be empty");
  for (int64_t m : o.multipliers)
    if (m < 1) fail<ValueError>("UNet: every entry of multipliers must be >= 1, got ", m);
  if (o.groups < 1) fail<ValueError>("UNet: groups must be >= 1, got ", o.groups);
  for (int64_t m : o.multipliers)
    if ((o.channels * m) % o.groups)
      fail<ValueError>("UNet: groups (", o.groups, ") must divide every level's width channels x ",
                       "multiplier, but ", o.channels, " x ", m, " = ", o.channels * m, " is not ",
                       "divisible by ", o.groups);
  if (!(o.dropout >= 0 && o.dropout < 1))
    fail<ValueError>("UNet: dropout must lie in [0, 1), got ", o.dropout);
}
}  // namespace

UNet::UNet(int64_t in_c, UNetOptions o, Generator& gen) : o_(o) {
  check_unet_options(in_c, o);
  const int64_t ch = o.channels, temb = 4 * ch, L = static_cast<int64_t>(o.multipliers.size());
  fourier_ = &child("fourier", std::make_unique<GaussianFourierFeatures>(ch, 16.0, gen, o.dtype));
  temb1_ = &child("temb1", std::make_unique<Linear>(ch, temb, gen, LayerOptions{.dtype = o.dtype}));
  temb2_ =
      &child("temb2", std::make_unique<Linear>(temb, temb, gen, LayerOptions{.dtype = o.dtype}));
  in_conv_ = &child("in_conv", std::make_unique<Conv2d>(
                                   in_c, ch, 3, gen, ConvOptions{.padding = 1, .dtype = o.dtype}));
  auto width = [&](int64_t l) { return ch * o.multipliers[static_cast<std::size_t>(l)]; };
  for (int64_t l = 0; l < L; ++l)
    down_.push_back(&child("down." + std::to_string(l),
                           std::make_unique<ResBlock>(l == 0 ? ch : width(l - 1), width(l), temb,
                                                      o.groups, o.dropout, gen, o.dtype)));
  mid1_ = &child("mid1", std::make_unique<ResBlock>(width(L - 1), width(L - 1), temb, o.groups,
                                                    o.dropout, gen, o.dtype));
  if (o.attention)
    attn_ = &child("attn", std::make_unique<MultiHeadSelfAttention>(
                               width(L - 1), width(L - 1) % 4 ? 1 : 4, gen, o.dtype));
  mid2_ = &child("mid2", std::make_unique<ResBlock>(width(L - 1), width(L - 1), temb, o.groups,
                                                    o.dropout, gen, o.dtype));
  up_.resize(static_cast<std::size_t>(L));
  for (int64_t l = L - 1; l >= 0; --l)
    up_[static_cast<std::size_t>(l)] =
        &child("up." + std::to_string(l),
               std::make_unique<ResBlock>((l == L - 1 ? width(L - 1) : width(l + 1)) + width(l),
                                          width(l), temb, o.groups, o.dropout, gen, o.dtype));
  out_norm_ = &child("out_norm", std::make_unique<GroupNorm>(o.groups, width(0), 1e-5, o.dtype));
  out_conv_ = &child(
      "out_conv",
      std::make_unique<Conv2d>(width(0), in_c, 3, gen,
                               ConvOptions{.padding = 1, .zero_init = true, .dtype = o.dtype}));
}

Tensor UNet::operator()(const Tensor& x, const Tensor& t) const {
  const int64_t L = static_cast<int64_t>(down_.size());
  for (int64_t l = 0; l + 1 < L; ++l)
    if ((x.dim(2) >> l) % 2 || (x.dim(3) >> l) % 2)
      fail<ShapeError>("UNet: input ", describe(x), " cannot be halved ", L - 1, " times");
  const Tensor temb = (*temb2_)(silu((*temb1_)((*fourier_)(batch_times(t, x.dim(0))))));
  Tensor h = (*in_conv_)(x);
  std::vector<Tensor> skips;
  for (int64_t l = 0; l < L; ++l) {
    h = (*down_[static_cast<std::size_t>(l)])(h, temb);
    skips.push_back(h);
    if (l + 1 < L) h = avg_pool2d(h, 2);
  }
  h = (*mid1_)(h, temb);
  if (attn_) {
    const int64_t B = h.dim(0), C = h.dim(1), H = h.dim(2), W = h.dim(3);
    const Tensor seq = permute(reshape(h, {B, C, H * W}), {0, 2, 1});
    h = h + reshape(permute((*attn_)(seq), {0, 2, 1}), {B, C, H, W});
  }
  h = (*mid2_)(h, temb);
  for (int64_t l = L - 1; l >= 0; --l) {
    h = (*up_[static_cast<std::size_t>(l)])(concat({h, skips[static_cast<std::size_t>(l)]}, 1),
                                            temb);
    if (l > 0) h = upsample_nearest2d(h, 2);
  }
  return (*out_conv_)(silu((*out_norm_)(h)));
}

// ---- energy network ----
EnergyNet::EnergyNet(int64_t dim, MlpScoreOptions o, Generator& gen)
    : embed(child("embed", std::make_unique<GaussianFourierFeatures>(o.embed_dim, o.fourier_scale,
                                                                     gen, o.dtype))),
      mlp(child("mlp", std::make_unique<Mlp>(conditioned_widths(dim, o, 1), o.act, gen,
                                             LayerOptions{.dtype = o.dtype}))) {}
Tensor EnergyNet::energy(const Tensor& x, const Tensor& t) const {
  return reshape(mlp(concat({x, embed(batch_times(t, x.dim(0)))}, -1)), {x.dim(0)});
}
// s(x, t) = -dE/dx (samples are independent, so the gradient of the sum is per sample)
Tensor EnergyNet::score(const Tensor& x, const Tensor& t) const {
  return -grad([&](const Tensor& z) { return sum(energy(z, t)); }, x);
}

// ---- CNF dynamics ----
ConcatSquashLinear::ConcatSquashLinear(int64_t in, int64_t out, Generator& gen, DType dtype)
    : layer(child("layer", std::make_unique<Linear>(in, out, gen, LayerOptions{.dtype = dtype}))),
      gate(child("gate", std::make_unique<Linear>(1, out, gen, LayerOptions{.dtype = dtype}))),
      hyper_bias(child(
          "hyper_bias",
          std::make_unique<Linear>(1, out, gen, LayerOptions{.bias = false, .dtype = dtype}))) {}
// y = layer(x) sigmoid(gate(t)) + hyper_bias(t)
Tensor ConcatSquashLinear::operator()(const Tensor& t, const Tensor& x) const {
  const Tensor tt = t.rank() == 0 ? reshape(t, {1, 1}) : reshape(t, {-1, 1});
  return layer(x) * sigmoid(gate(tt)) + hyper_bias(tt);
}
CnfDynamics::CnfDynamics(int64_t dim, std::vector<int64_t> hidden, Activation a, Generator& gen,
                         DType dtype)
    : act(a) {
  std::vector<int64_t> w = {dim};
  w.insert(w.end(), hidden.begin(), hidden.end());
  w.push_back(dim);
  for (std::size_t i = 0; i + 1 < w.size(); ++i)
    layers.push_back(&child("layers." + std::to_string(i),
                            std::make_unique<ConcatSquashLinear>(w[i], w[i + 1], gen, dtype)));
}
Tensor CnfDynamics::operator()(const Tensor& t, const Tensor& z) const {
  Tensor h = z;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    h = (*layers[i])(t, h);
    if (i + 1 < layers.size()) h = activate(act, h);
  }
  return h;
}

}  // namespace sg::nn
