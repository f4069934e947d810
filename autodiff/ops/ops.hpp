// The public tensor operations. Primitives (op_list.hpp) are recorded on the tape and carry
// derivative rules; everything else here is a composite of primitives, so every derivative
// order of a composite comes from its parts.
//
//   auto y = sg::softplus(sg::matmul(x, w) + b);
//   auto l = sg::mean(sg::square(y - target));
#pragma once
#include <memory>
#include <vector>

#include "autodiff/core/rng.hpp"
#include "autodiff/core/tensor.hpp"
#include "autodiff/ops/autocast.hpp"  // AutocastGuard, GradScaler

namespace sg {

// ---- creation (never recorded) ----
Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = {});
Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = {});
Tensor ones(const Shape& shape, DType dtype = DType::f32, Device device = {});
Tensor full(const Shape& shape, double value, DType dtype = DType::f32, Device device = {});
Tensor scalar(double value, DType dtype = DType::f32, Device device = {});
Tensor zeros_like(const Tensor& x);
Tensor ones_like(const Tensor& x);
Tensor full_like(const Tensor& x, double value);
Tensor arange(int64_t n, DType dtype = DType::i64, Device device = {});
Tensor arange(double start, double stop, double step, DType dtype = DType::f32, Device device = {});
Tensor linspace(double start, double stop, int64_t n, DType dtype = DType::f32, Device device = {});
Tensor eye(int64_t n, DType dtype = DType::f32, Device device = {});
Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype = DType::f32,
                   Device device = {});
Tensor from_indices(const std::vector<int64_t>& values, const Shape& shape, Device device = {});

// ---- random (counter-based Philox; see core/rng.hpp) ----
Tensor rand(const Shape& shape, Generator& gen, DType dtype = DType::f32, Device device = {});
Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::f32, Device device = {});
Tensor rademacher(const Shape& shape, Generator& gen, DType dtype = DType::f32, Device device = {});
Tensor bernoulli(const Shape& shape, double p, Generator& gen, DType dtype = DType::f32,
                 Device device = {});
Tensor randn_like(const Tensor& x, Generator& gen);
Tensor rand_like(const Tensor& x, Generator& gen);
Tensor rademacher_like(const Tensor& x, Generator& gen);

// ---- elementwise unary ----
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor log1p(const Tensor& x);
Tensor expm1(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor erf(const Tensor& x);
Tensor pow(const Tensor& x, double p);
Tensor square(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor silu(const Tensor& x);       // x sigma(x), one fused primitive
Tensor silu_grad(const Tensor& x);  // silu'(x) = sigma(x) (1 + x (1 - sigma(x))), one pass
// silu''(x) = s (1 - s) (2 + x (1 - 2 s)), s = sigma(x), one pass (Hessians of SiLU networks)
Tensor silu_grad2(const Tensor& x);
Tensor softplus(const Tensor& x);
Tensor log_sigmoid(const Tensor& x);
Tensor elu(const Tensor& x, double alpha = 1.0);
Tensor gelu(const Tensor& x, bool tanh_approximation = false);
Tensor clamp(const Tensor& x, double lo, double hi);

// ---- elementwise binary, with NumPy broadcasting ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, double b);

Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);
Tensor operator<(const Tensor& a, const Tensor& b);
Tensor operator>(const Tensor& a, const Tensor& b);
Tensor operator<=(const Tensor& a, const Tensor& b);
Tensor operator>=(const Tensor& a, const Tensor& b);
Tensor operator<(const Tensor& a, double b);
Tensor operator>(const Tensor& a, double b);
Tensor operator<=(const Tensor& a, double b);
Tensor operator>=(const Tensor& a, double b);

// ---- reductions over `axes` (empty = all), optionally keeping reduced axes as size 1 ----
Tensor sum(const Tensor& x, const Shape& axes = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const Shape& axes = {}, bool keepdim = false);
Tensor max(const Tensor& x, const Shape& axes = {}, bool keepdim = false);
Tensor min(const Tensor& x, const Shape& axes = {}, bool keepdim = false);
Tensor logsumexp(const Tensor& x, const Shape& axes = {}, bool keepdim = false);
// Variance with `correction` subtracted from the count (1 = unbiased, 0 = population).
Tensor var(const Tensor& x, const Shape& axes = {}, int64_t correction = 1, bool keepdim = false);
Tensor softmax(const Tensor& x, int64_t axis = -1);
Tensor log_softmax(const Tensor& x, int64_t axis = -1);
// The axes of one sample of a batch [B, ...]: 1 .. rank-1.
Shape sample_axes(const Tensor& x);
// Sums x down to `shape` (the inverse of broadcasting), the engine's cotangent reduction.
Tensor sum_to(const Tensor& x, const Shape& shape);

// ---- linear algebra ----
// Batched matmul: [..., m, k] x [..., k, n] with broadcast batch axes; 1-D operands are
// treated as a row (lhs) or a column (rhs) vector and that axis is dropped, as in NumPy.
Tensor matmul(const Tensor& a, const Tensor& b);
// 2-D convolution (cross-correlation, as in PyTorch) of x [N, C, H, W] with w [O, C, kh, kw],
// zero padding, no bias:  y[n, o, h, w] = sum_{c,i,j} w[o, c, i, j] x[n, c, s h + i - p, s w + j -
// p]
Tensor conv2d(const Tensor& x, const Tensor& w, int64_t stride = 1, int64_t padding = 0);
// Its adjoint in x (the transposed convolution): g [N, O, Ho, Wo] with the same w onto an input
// of extent height x width (which fixes the output padding when stride > 1).
Tensor conv_transpose2d(const Tensor& g, const Tensor& w, int64_t stride, int64_t padding,
                        int64_t height, int64_t width);
// Its adjoint in w:  dw[o, c, i, j] = sum_{n,h,w} g[n, o, h, w] x[n, c, s h + i - p, s w + j - p]
Tensor conv2d_weight_grad(const Tensor& x, const Tensor& g, int64_t kernel_h, int64_t kernel_w,
                          int64_t stride, int64_t padding);

// ---- shape and movement (views where free) ----
Tensor reshape(const Tensor& x, const Shape& shape);  // one extent may be -1
Tensor permute(const Tensor& x, const Shape& perm);
Tensor transpose(const Tensor& x, int64_t a = -2, int64_t b = -1);
Tensor expand(const Tensor& x, const Shape& shape);
Tensor squeeze(const Tensor& x, int64_t axis);
Tensor unsqueeze(const Tensor& x, int64_t axis);
Tensor flatten(const Tensor& x, int64_t start_axis = 0);
Tensor slice(const Tensor& x, int64_t axis, int64_t start, int64_t stop, int64_t step = 1);
Tensor select(const Tensor& x, int64_t axis, int64_t index);  // drops the axis
Tensor concat(const std::vector<Tensor>& xs, int64_t axis = 0);
Tensor stack(const std::vector<Tensor>& xs, int64_t axis = 0);
Tensor index_select(const Tensor& x, int64_t axis, const Tensor& index);  // index: 1-D int64
Tensor gather(const Tensor& x, int64_t axis, const Tensor& index);
Tensor scatter_add(const Tensor& base, int64_t axis, const Tensor& index, const Tensor& src);
// Constant padding: before[d] and after[d] elements on axis d.
Tensor pad(const Tensor& x, const Shape& before, const Shape& after, double value = 0.0);
Tensor one_hot(const Tensor& index, int64_t classes, DType dtype = DType::f32);
Tensor cast(const Tensor& x, DType dtype);
Tensor contiguous(const Tensor& x);
Tensor to_device(const Tensor& x, Device device);

// ---- custom derivative rules ----
struct CustomRule;  // op_def.hpp
// `value` recorded as a function of `inputs` whose VJP is `rule` (computed once per cotangent).
Tensor custom_op(const std::vector<Tensor>& inputs, const Tensor& value,
                 std::shared_ptr<const CustomRule> rule);

}  // namespace sg
