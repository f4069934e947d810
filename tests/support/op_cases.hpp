// The op test table: one or more rows per primitive (and rows for composites), each a small
// function over float64 inputs of stated shapes and domain, with the derivative order to
// check. Generic suites (gradcheck of every order, JVP, coverage of the op list) run over it.
#pragma once
#include <string>
#include <vector>

#include "autodiff/ops/op_def.hpp"
#include "autodiff/sg.hpp"

namespace sg::test {

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

}  // namespace sg::test
