// The op table's checks: one or more rows per primitive (and rows for composites), each a small
// function over float64 inputs of stated shapes and domain, with the derivative order to
// check. The test suites (gradcheck of every order, JVP, coverage of the op list) and
// `scoregrad verify` run over it.
#pragma once
#include <string>
#include <vector>

#include "autodiff/ops/op_def.hpp"
#include "autodiff/sg.hpp"
#include "autodiff/verify/gradcheck.hpp"

namespace sg::verify {

struct OpCase {
  OpId op;  // OpId::count for composite rows
  std::string name;
  std::vector<Shape> shapes;  // one per input
  MultiFn f;
  double lo = -2, hi = 2;  // inputs drawn uniformly from [lo, hi]
  int order = 2;           // highest derivative order checked
  bool differentiable = true;
  bool has_jvp = true;  // custom ops have no forward-mode rule
};

const std::vector<OpCase>& op_cases();
std::vector<Tensor> make_inputs(const OpCase& c, uint64_t seed);
// The row's gradient check to its order (VJP and, where the op has one, JVP), on inputs from
// make_inputs(c, 11), with the suite's tolerances (atol 1e-7, rtol 1e-5).
GradcheckReport check_op_case(const OpCase& c);

}  // namespace sg::verify
