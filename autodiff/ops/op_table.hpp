// Internal: the per-family blocks of the op table and the helpers shared by their rows.
#pragma once
#include <span>

#include "autodiff/ops/op_def.hpp"
#include "autodiff/ops/ops.hpp"

namespace sg {

std::span<const OpDef> elementwise_ops();
std::span<const OpDef> reduce_ops();
std::span<const OpDef> linalg_ops();
std::span<const OpDef> shape_ops();
std::span<const OpDef> index_ops();
std::span<const OpDef> custom_ops();

// A VJP/JVP for ops with a diagonal Jacobian: both are `g * D(c)` with D the derivative.
template <Tensor (*D)(const RuleCtx&)>
Tensor diag_rule(const RuleCtx& c, int, const Tensor& g) {
  return g * D(c);
}
// Rules of ops that are linear in input i: VJP/JVP return the op's adjoint/itself of g.
Tensor no_grad_rule(const RuleCtx&, int, const Tensor&);  // returns undefined (zero)
Tensor fresh(const Meta& m);                              // uninitialised output of `m`
// ValueError naming the first value of x that has no value in `to` (float NaN, infinities or
// out of range to int64); the cast kernels themselves saturate (functors.hpp, convert).
void check_cast_values(const Tensor& x, DType to);

}  // namespace sg
