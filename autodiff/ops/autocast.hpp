// Mixed precision: the autocast policy and loss scaling (docs/design.md, "Mixed precision").
//
//   sg::AutocastGuard guard(sg::DType::bf16);   // this thread, until the guard's scope ends
//   sg::Tensor y = net(x);                       // GEMMs and convolutions in bfloat16
//
// Under an AutocastGuard(H), H = bf16 or f16, on the thread that holds it:
//   to H        matmul, conv2d, conv_transpose2d (and what calls them: nn::Linear, Conv2d,
//               attention): float32 operands are cast to H, the product is H (float32
//               accumulation inside).
//   to float32  mean, var, logsumexp, softmax, log_softmax (and what is built on them: the
//               losses, layer and group normalisation): H operands are cast up, the result is
//               float32.
//   unchanged   every other op runs in its operands' dtype. A 2-byte tensor meeting a float32
//               (float64) one is promoted to float32 (float64), under autocast or not, so a
//               half GEMM followed by a float32 bias add gives float32.
// float64 tensors are never cast (as PyTorch's autocast). Parameters are not touched: they stay
// float32 (the master weights) and receive float32 gradients through the recorded casts.
// Derivative rules do not autocast: a backward pass, at any order, runs in the dtypes its forward
// recorded. exp, log and the other elementwise primitives keep their operands' dtype (their
// rules call them, and a rule must return its input's dtype); on a 2-byte dtype they compute in
// float32 and round once.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "autodiff/core/tensor.hpp"

namespace sg {

class AutocastGuard {
 public:
  // half: DType::bf16 or DType::f16 (DTypeError otherwise); enabled = false is a no-op guard.
  explicit AutocastGuard(DType half, bool enabled = true);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  std::optional<DType> prev_;
};
// The half dtype of the innermost active guard on this thread, if any.
std::optional<DType> autocast_dtype();

// Loss scaling for float16 (as PyTorch's GradScaler): the loss is multiplied by a scale S
// before differentiation so that small gradients do not underflow float16's range (smallest
// subnormal 6e-8); the gradients are divided by S before the step. A step whose gradients hold
// an inf or NaN is skipped and S halves; after `growth_interval` finite steps in a row S doubles.
struct GradScalerOptions {
  double init_scale = 65536.0;  // 2^16
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
  bool enabled = true;  // false: scale 1, every step taken (the same code path without scaling)
};
class GradScaler {
 public:
  explicit GradScaler(GradScalerOptions o = {});
  // loss * S (S is a power of two by default, so the multiplication is exact).
  Tensor scale(const Tensor& loss) const;
  // Divides each gradient by S (in its own dtype) and says whether all of them are finite.
  // Undefined gradients are skipped.
  bool unscale(std::vector<Tensor>& grads) const;
  // Records a step's outcome and updates S; returns `finite` (whether to apply the step).
  bool update(bool finite);
  // unscale then update: true when the caller should apply the (unscaled) gradients.
  bool step(std::vector<Tensor>& grads) { return update(unscale(grads)); }
  double get_scale() const { return scale_; }
  int64_t skipped_steps() const { return skipped_; }

 private:
  GradScalerOptions o_;
  double scale_;
  int64_t good_ = 0, skipped_ = 0;
};

namespace detail {
// The autocast hooks the ops call: x cast to the active half dtype (float32 x only) or, for the
// float32 list, a half x cast to float32; x itself when no guard is active.
Tensor autocast_to_half(const Tensor& x);
bool autocast_active();
}  // namespace detail

}  // namespace sg
