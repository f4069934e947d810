// The op table's checks: one or more rows per primitive (and rows for composites), each a small
// function over float64 inputs of stated shapes and domain, with the derivative order to
// check. The test suites (gradcheck of every order, JVP, coverage of the op list) and
// `scoregrad verify` run over it.
//
// Special-point rows (JAX's per-op special inputs) pin the edges instead: an elementwise
// function at fixed points (0, -0, +-tiny, subnormals, ties, +-inf where defined, huge values,
// float32 extremes, the kinks and switch points of every composite), where every partial
// derivative up to `order` is compared with its closed form (or its documented convention
// at a kink) by reverse mode (grad of grad) and by forward mode (nested jvp).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "autodiff/ops/op_def.hpp"
#include "autodiff/sg.hpp"
#include "autodiff/verify/gradcheck.hpp"

namespace sg::verify {

inline constexpr double kAnyFinite = -1.7976931348623157e308;  // "any finite value"

struct OpCase {
  OpId op;  // OpId::count for composite rows
  std::string name;
  std::vector<Shape> shapes;  // one per input
  MultiFn f;
  double lo = -2, hi = 2;  // inputs drawn uniformly from [lo, hi]
  int order = 2;           // highest derivative order checked
  bool differentiable = true;
  bool has_jvp = true;  // custom ops have no forward-mode rule
  // Special-point rows: points[p][i] is input i at point p (each input is a 1-D tensor over
  // the points, of `dtype`, and f is elementwise); exact(point, wrt) is the partial
  // derivative of f by the inputs listed in wrt (sorted; empty: f itself), or kAnyFinite
  // where f is singular and the engine's convention depends on the order of differentiation.
  std::vector<std::vector<double>> points;
  std::function<double(const std::vector<double>& point, const std::vector<int>& wrt)> exact;
  DType dtype = DType::f64;
  bool special() const { return !points.empty(); }
};

const std::vector<OpCase>& op_cases();
// Random inputs in [lo, hi] of the row's shapes; a special-point row's inputs are its points.
std::vector<Tensor> make_inputs(const OpCase& c, uint64_t seed);
// The row's gradient check to its order (VJP and, where the op has one, JVP), on inputs from
// make_inputs(c, 11), with the suite's tolerances (atol 1e-7, rtol 1e-5). A special-point row
// reports one line per point, partial derivative and mode, its reference in `numeric`
// (tolerance rtol 1e-10 in float64, 1e-5 in float32; an infinity must match exactly and NaN
// never passes unless the reference is NaN).
GradcheckReport check_op_case(const OpCase& c);

}  // namespace sg::verify
