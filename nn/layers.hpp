// Layers for score networks, each a Module whose forward is a composition of differentiable
// ops (so every layer is differentiable to any order: score matching differentiates a
// network's input Jacobian with respect to its parameters).
//
//   sg::Generator gen(0);
//   sg::nn::Linear fc(2, 64, gen);                 // y = x W + b, W: [in, out]
//   sg::nn::Conv2d conv(1, 16, 3, gen, {.padding = 1});
//   auto y = sg::silu(fc(x));
#pragma once
#include <memory>
#include <vector>

#include "autodiff/core/rng.hpp"
#include "nn/module.hpp"

namespace sg::nn {

enum class Activation { identity, relu, silu, tanh, softplus, gelu, elu, sigmoid };
Tensor activate(Activation a, const Tensor& x);
Activation activation_from_name(const std::string& name);

struct LayerOptions {
  bool bias = true;
  bool zero_init = false;  // zero weights and bias (output layers of residual/score nets)
  DType dtype = DType::f32;
};

// y = x W + b with W [in, out]; initialised like PyTorch (U(+-1/sqrt(in))).
class Linear : public Module {
 public:
  Linear(int64_t in, int64_t out, Generator& gen, LayerOptions o = {});
  Tensor operator()(const Tensor& x) const;
  int64_t in_features, out_features;
  Tensor& weight;
  Tensor* bias = nullptr;
};

// Linear layers with an activation between them (none after the last).
class Mlp : public Module {
 public:
  Mlp(const std::vector<int64_t>& widths, Activation act, Generator& gen, LayerOptions o = {},
      bool zero_init_last = false);
  Tensor operator()(const Tensor& x) const;
  std::vector<Linear*> layers;
  Activation act;
};

// Normalises over the last axis: (x - mean) / sqrt(var + eps) * weight + bias.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-5, DType dtype = DType::f32);
  Tensor operator()(const Tensor& x) const;
  double eps;
  Tensor &weight, &bias;
};

// x: [N, C, ...]; statistics over each group of C/G channels and all spatial positions.
class GroupNorm : public Module {
 public:
  GroupNorm(int64_t groups, int64_t channels, double eps = 1e-5, DType dtype = DType::f32);
  Tensor operator()(const Tensor& x) const;
  int64_t groups, channels;
  double eps;
  Tensor &weight, &bias;
};

// Zeroes each element with probability p in training mode (scaling the rest by 1/(1-p)).
class Dropout : public Module {
 public:
  Dropout(double p, Generator& gen);
  Tensor operator()(const Tensor& x) const;
  double p;
  Generator* gen;
};

struct ConvOptions {
  int64_t stride = 1;
  int64_t padding = 0;
  bool bias = true;
  bool zero_init = false;
  DType dtype = DType::f32;
};
// 2-D convolution over [N, C, H, W] (the conv2d op: oneDNN for float32 on the CPU, im2col +
// GEMM otherwise) plus a bias; weight [out, in, k, k].
class Conv2d : public Module {
 public:
  Conv2d(int64_t in, int64_t out, int64_t kernel, Generator& gen, ConvOptions o = {});
  Tensor operator()(const Tensor& x) const;
  int64_t in_channels, out_channels, kernel, stride, padding;
  Tensor& weight;
  Tensor* bias = nullptr;
};
// Patches of x [N, C, H, W] as [N, C*k*k, Ho*Wo] (zero padding) by an index_select: im2col as a
// composite, the tests' independent oracle for the conv2d op.
Tensor unfold2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding);

Tensor avg_pool2d(const Tensor& x, int64_t k);          // [N,C,H,W] -> [N,C,H/k,W/k]
Tensor upsample_nearest2d(const Tensor& x, int64_t k);  // [N,C,H,W] -> [N,C,kH,kW]

// Rows of a [num, dim] table selected by int64 indices of any shape.
class Embedding : public Module {
 public:
  Embedding(int64_t num, int64_t dim, Generator& gen, DType dtype = DType::f32);
  Tensor operator()(const Tensor& index) const;
  Tensor& weight;
};

// Multi-head self-attention over x [B, T, D]: softmax(Q K^T / sqrt(D/h)) V per head.
class MultiHeadSelfAttention : public Module {
 public:
  MultiHeadSelfAttention(int64_t dim, int64_t heads, Generator& gen, DType dtype = DType::f32);
  Tensor operator()(const Tensor& x) const;
  int64_t dim, heads;
  Linear &q, &k, &v, &out;
};

// Transformer encoder layer (post-norm, as torch.nn.TransformerEncoderLayer's default):
// x = LN(x + Attn(x)); x = LN(x + FF(x)), FF = Linear-act-Linear.
class TransformerEncoderLayer : public Module {
 public:
  TransformerEncoderLayer(int64_t dim, int64_t heads, int64_t ff_dim, Generator& gen,
                          double dropout = 0.0, Activation act = Activation::gelu,
                          DType dtype = DType::f32);
  Tensor operator()(const Tensor& x) const;
  MultiHeadSelfAttention& attn;
  Linear &ff1, &ff2;
  LayerNorm &norm1, &norm2;
  Dropout& drop;
  Activation act;
};

}  // namespace sg::nn
