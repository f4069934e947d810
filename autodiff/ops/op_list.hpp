// The list of primitive ops: every op the tape can record. Adding one touches three places:
// this list, its block in the family file (ops_*.cpp), and one row in autodiff/verify/op_cases.cpp.
// An elementwise primitive is one line of SG_UNARY_OPS / SG_BINARY_OPS, which also makes it a
// backend op (UnaryOp / BinaryOp in backend/functors.hpp, run by its functor fn::Functor on
// CPU and CUDA); it then needs its functor, its block and its test row.
#pragma once
#include <cstdint>

// X(name, Functor, takes_integers): the OpId and the UnaryOp are both `name`; fn::Functor
// (backend/functors.hpp) computes it; takes_integers: also defined on int64 (else float only).
#define SG_UNARY_OPS(X)           \
  X(neg, Neg, true)               \
  X(exp, Exp, false)              \
  X(log, Log, false)              \
  X(log1p, Log1p, false)          \
  X(expm1, Expm1, false)          \
  X(sqrt, Sqrt, false)            \
  X(rsqrt, Rsqrt, false)          \
  X(abs, Abs, true)               \
  X(sign, Sign, true)             \
  X(sin, Sin, false)              \
  X(cos, Cos, false)              \
  X(tanh, Tanh, false)            \
  X(sigmoid, Sigmoid, false)      \
  X(erf, Erf, false)              \
  X(silu, Silu, false)            \
  X(silu_grad, SiluGrad, false)   \
  X(silu_grad2, SiluGrad2, false) \
  X(pow_scalar, PowScalar, false) /* x^p, p = attrs.scalar */
// Binary arithmetic with broadcasting, same form: OpId and BinaryOp `name`.
#define SG_BINARY_OPS(X)    \
  X(add, Add, true)         \
  X(sub, Sub, true)         \
  X(mul, Mul, true)         \
  X(div, Div, true)         \
  X(pow, Pow, false)        \
  X(maximum, Maximum, true) \
  X(minimum, Minimum, true)
// Comparisons: BinaryOp values (bool results) that all record as the one primitive `compare`.
#define SG_COMPARE_OPS(X) \
  X(eq, Eq, true)         \
  X(ne, Ne, true)         \
  X(lt, Lt, true)         \
  X(le, Le, true)         \
  X(gt, Gt, true)         \
  X(ge, Ge, true)

namespace sg {

enum class OpId : uint8_t {
// clang-format off
  // elementwise unary, binary and selection (ops_elementwise.cpp)
#define SG_OP_ID(name, Functor, integers) name,
  SG_UNARY_OPS(SG_OP_ID)
  SG_BINARY_OPS(SG_OP_ID)
#undef SG_OP_ID
  // clang-format on
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
