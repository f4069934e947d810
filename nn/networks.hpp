// The networks the mission needs, all differentiable to second order:
// - time conditioning: Gaussian Fourier features and sinusoidal embeddings of a continuous t,
//   FiLM (scale-and-shift) conditioning;
// - ScoreModel: s_theta(x, t), with MlpScoreNet for low-dimensional data and UNet for 8x8 and
//   28x28 images;
// - EnergyNet: scalar E_theta(x, t) whose score is -dE/dx;
// - CnfDynamics: FFJORD-style concat-squash layers f(t, z).
//
//   sg::nn::MlpScoreNet s(2, {.hidden = 128, .layers = 3}, gen);
//   auto score = s(x, t);                 // x [B, 2], t [B]
#pragma once
#include <memory>
#include <vector>

#include "nn/layers.hpp"

namespace sg::nn {

// [B] -> [B, 2m]: [sin(2 pi t W), cos(2 pi t W)], W ~ N(0, scale^2) fixed (a buffer).
class GaussianFourierFeatures : public Module {
 public:
  GaussianFourierFeatures(int64_t dim, double scale, Generator& gen, DType dtype = DType::f32);
  Tensor operator()(const Tensor& t) const;
  Tensor& W;
};
// [B] -> [B, dim]: transformer-style sin/cos of t at geometric frequencies up to max_period.
Tensor sinusoidal_embedding(const Tensor& t, int64_t dim, double max_period = 10000.0);
// FiLM: h * (1 + scale(c)) + shift(c), with scale and shift from one Linear on the condition.
class FiLM : public Module {
 public:
  FiLM(int64_t cond_dim, int64_t features, Generator& gen, DType dtype = DType::f32);
  // h: [B, F, ...] (features on axis 1), c: [B, cond_dim]
  Tensor operator()(const Tensor& h, const Tensor& c) const;
  Linear& proj;
  int64_t features;
};

class ScoreModel : public Module {
 public:
  virtual Tensor operator()(const Tensor& x, const Tensor& t) const = 0;  // t: [B]
};

struct MlpScoreOptions {
  int64_t hidden = 128;
  int64_t layers = 3;      // hidden layers
  int64_t embed_dim = 16;  // Fourier features of t (2 * embed_dim / 2)
  double fourier_scale = 16.0;
  Activation act = Activation::silu;
  DType dtype = DType::f32;
};
// s(x, t) = MLP([x, emb(t)]) with a zero-initialised output layer. hidden >= 1, layers >= 1,
// embed_dim even and >= 2, fourier_scale finite and >= 0 (ValueError naming the option).
class MlpScoreNet : public ScoreModel {
 public:
  MlpScoreNet(int64_t dim, MlpScoreOptions o, Generator& gen);
  Tensor operator()(const Tensor& x, const Tensor& t) const override;
  GaussianFourierFeatures& embed;
  Mlp& mlp;
};

struct UNetOptions {
  int64_t channels = 32;                      // base width
  std::vector<int64_t> multipliers = {1, 2};  // one level per entry; each but the last halves H, W
  int64_t groups = 8;                         // GroupNorm groups
  bool attention = false;                     // self-attention at the lowest resolution
  double dropout = 0.0;
  DType dtype = DType::f32;
};
// Residual block: GN-SiLU-Conv3 + Linear(temb) then GN-SiLU-Dropout-Conv3, with a 1x1 skip
// (`groups` must divide both `in` and `out`).
class ResBlock : public Module {
 public:
  ResBlock(int64_t in, int64_t out, int64_t temb_dim, int64_t groups, double dropout,
           Generator& gen, DType dtype);
  Tensor operator()(const Tensor& x, const Tensor& temb) const;
  GroupNorm &norm1, &norm2;
  Conv2d &conv1, &conv2;
  Linear& temb_proj;
  Dropout& drop;
  Conv2d* skip = nullptr;
};
// A small U-Net score network for [B, C, H, W] images (8x8 digits, 28x28). channels >= 1, every
// multiplier >= 1, groups must divide every level's width channels x multiplier, dropout in
// [0, 1) (ValueError naming the option).
class UNet : public ScoreModel {
 public:
  UNet(int64_t in_channels, UNetOptions o, Generator& gen);
  Tensor operator()(const Tensor& x, const Tensor& t) const override;

 private:
  UNetOptions o_;
  GaussianFourierFeatures* fourier_;
  Linear *temb1_, *temb2_;
  Conv2d* in_conv_;
  std::vector<ResBlock*> down_, up_;
  ResBlock *mid1_, *mid2_;
  MultiHeadSelfAttention* attn_ = nullptr;
  GroupNorm* out_norm_;
  Conv2d* out_conv_;
};

// E(x, t) = MLP([x, emb(t)]) -> scalar per sample; score(x, t) = -dE/dx (create_graph when
// grad mode is on, so DSM on the energy trains through the input gradient).
class EnergyNet : public Module {
 public:
  EnergyNet(int64_t dim, MlpScoreOptions o, Generator& gen);
  Tensor energy(const Tensor& x, const Tensor& t) const;  // [B]
  Tensor score(const Tensor& x, const Tensor& t) const;   // [B, dim]
  GaussianFourierFeatures& embed;
  Mlp& mlp;
};

// FFJORD concat-squash layer: y = (x W + b) * sigmoid(t g + c) + t h.
class ConcatSquashLinear : public Module {
 public:
  ConcatSquashLinear(int64_t in, int64_t out, Generator& gen, DType dtype = DType::f32);
  Tensor operator()(const Tensor& t, const Tensor& x) const;  // t: scalar tensor or [B]
  Linear &layer, &gate, &hyper_bias;
};
// CNF dynamics f(t, z): concat-squash layers with an activation between them.
class CnfDynamics : public Module {
 public:
  CnfDynamics(int64_t dim, std::vector<int64_t> hidden, Activation act, Generator& gen,
              DType dtype = DType::f32);
  Tensor operator()(const Tensor& t, const Tensor& z) const;
  std::vector<ConcatSquashLinear*> layers;
  Activation act;
};

}  // namespace sg::nn
