// The list of primitive ops: every op the tape can record. Adding one touches three places:
// this list, its block in the family file (ops_*.cpp), and one row in autodiff/verify/op_cases.cpp.
#pragma once
#include <cstdint>

namespace sg {

enum class OpId : uint8_t {
  // elementwise unary (ops_elementwise.cpp)
  neg,
  exp,
  log,
  log1p,
  expm1,
  sqrt,
  rsqrt,
  abs,
  sign,
  sin,
  cos,
  tanh,
  sigmoid,
  erf,
  silu,
  silu_grad,
  silu_grad2,
  pow_scalar,
  // elementwise binary and selection (ops_elementwise.cpp)
  add,
  sub,
  mul,
  div,
  pow,
  maximum,
  minimum,
  compare,
  where,
  // reductions (ops_reduce.cpp)
  sum,
  max,
  min,
  // linear algebra (ops_linalg.cpp)
  matmul,
  conv2d,
  conv_transpose2d,
  conv2d_weight_grad,
  // movement and indexing (ops_shape.cpp, ops_index.cpp)
  reshape,
  permute,
  expand,
  slice,
  pad,
  concat,
  index_select,
  gather,
  scatter_add,
  cast,
  copy,
  to_device,
  // a value with a caller-supplied VJP (ops_custom.cpp): adjoint ODE solves, fused kernels
  custom,
  count
};
inline constexpr int kOpCount = static_cast<int>(OpId::count);

}  // namespace sg
