// CSDI's denoiser eps_theta (Tashiro et al. 2021; spec/math.md section 5.2): a DiffWave-like
// stack of residual layers over a [B, K, L] table (K features, L time points), each layer a
// temporal transformer along L and a feature transformer along K, conditioned on side
// information (sinusoidal time embedding, learned feature embedding, the conditioning mask) and
// on the diffusion step n in {0, ..., N-1}.
//
//   sg::Generator gen(0);
//   sg::nn::CsdiNet net(/*features=*/4, {.layers = 4, .channels = 64}, gen);
//   sg::Tensor in = sg::nn::csdi_input(x0, x_n, cond_mask);   // [B, 2, K, L]
//   sg::Tensor eps = net(in, cond_mask, steps);              // [B, K, L], steps int64 [B]
//
// Internally the activations are channels-last [B, K, L, C], so CSDI's 1x1 convolutions are
// Linear layers over the last axis and the temporal transformer sees [B*K, L, C] without a copy.
#pragma once
#include <utility>
#include <vector>

#include "nn/layers.hpp"

namespace sg::nn {

struct CsdiOptions {
  int64_t layers = 4;              // residual layers
  int64_t channels = 64;           // C
  int64_t heads = 8;               // attention heads (must divide channels)
  int64_t ff_dim = 64;             // transformer feed-forward width
  int64_t steps = 50;              // N, diffusion steps (rows of the step-embedding table)
  int64_t step_embed_dim = 128;    // diffusion-step embedding (sin/cos halves, even)
  int64_t time_embed_dim = 128;    // sinusoidal embedding of the time index l (even)
  int64_t feature_embed_dim = 16;  // learned embedding of the feature index k
  double dropout = 0.0;            // transformer dropout (torch's layer default, CSDI's, is 0.1)
  DType dtype = DType::f32;
};

// [cond * x0 ; (1 - cond) * x_n] stacked on axis 1: [B, K, L] x3 -> [B, 2, K, L]. cond is bool
// or 0/1 float; a select, so the first channel is exactly 0 off the conditioning set whatever x0
// holds there (and the second exactly 0 on it).
Tensor csdi_input(const Tensor& x0, const Tensor& x_noisy, const Tensor& cond_mask);

// One residual layer: y = x + W_d e(n); y = FeatTr(TimeTr(y)); y = W_mid y + W_side side;
// y = sigmoid(y_gate) * tanh(y_filter); (res, skip) = W_out y; returns ((x + res)/sqrt 2, skip).
class CsdiResidualLayer : public Module {
 public:
  CsdiResidualLayer(int64_t side_dim, const CsdiOptions& o, Generator& gen);
  // x [B, K, L, C], side [B, K, L, side_dim], step_emb [B, step_embed_dim]
  std::pair<Tensor, Tensor> operator()(const Tensor& x, const Tensor& side,
                                       const Tensor& step_emb) const;
  int64_t channels;
  Linear &step_proj, &side_proj, &mid_proj, &out_proj;
  TransformerEncoderLayer &time_layer, &feature_layer;
};

class CsdiNet : public Module {
 public:
  CsdiNet(int64_t features, CsdiOptions o, Generator& gen);
  // input [B, 2, K, L], cond_mask [B, K, L] (bool or 0/1), step int64 [B] in [0, N) -> [B, K, L]
  Tensor operator()(const Tensor& input, const Tensor& cond_mask, const Tensor& step) const;
  // [B, K, L, time_embed_dim + feature_embed_dim + 1]: (sin/cos of l, E_feature[k], cond[b,k,l])
  Tensor side_info(const Tensor& cond_mask) const;
  // [B, step_embed_dim]: silu(W2 silu(W1 [sin(n 10^(4j/(h-1))), cos(...)]_{j<h})), h = dim/2
  Tensor step_embedding(const Tensor& step) const;
  int64_t side_dim() const { return o_.time_embed_dim + o_.feature_embed_dim + 1; }
  const CsdiOptions& options() const { return o_; }
  int64_t features;
  Linear &input_proj, &step1, &step2, &out1, &out2;
  Embedding& feature_embed;
  std::vector<CsdiResidualLayer*> blocks;
  Tensor& step_table;  // buffer [N, step_embed_dim]

 private:
  CsdiOptions o_;
};

}  // namespace sg::nn
