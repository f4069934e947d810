// Gradient verification as a feature: gradcheck(f, inputs, {.order = k}) checks derivatives of
// every order up to k against central differences in float64, without forming a Jacobian:
// the dot-product test <c, J t> (finite differences) = <J^T c, t> (VJP) = <c, J t> (JVP), with
// random t and c. Order k > 1 checks the order-1 test on F_k = the gradient of <c, F_{k-1}>,
// computed with create_graph, so each order exercises the rules of the order below.
//
//   auto report = sg::gradcheck([](const std::vector<sg::Tensor>& v) { return sg::tanh(v[0]) *
//   v[1]; },
//                               {a, b}, {.order = 2});
//   std::cout << report;   // one row per order, input and check; report.ok()
#pragma once
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "autodiff/core/tensor.hpp"

namespace sg {

using MultiFn = std::function<Tensor(const std::vector<Tensor>&)>;

struct GradcheckOptions {
  int order = 1;
  double eps = 1e-6;   // central-difference step
  double atol = 1e-8;  // pass if |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|)
  double rtol = 1e-6;
  uint64_t seed = 0;  // random directions t and c
  bool check_jvp = true;
};

struct GradcheckRow {
  int order;
  int input;
  std::string check;  // "vjp" or "jvp"
  double analytic;
  double numeric;
  double abs_err;
  double rel_err;
  bool pass;
};

struct GradcheckReport {
  std::vector<GradcheckRow> rows;
  bool ok() const;
  double max_abs_err(int order) const;
  double max_rel_err(int order) const;
};
std::ostream& operator<<(std::ostream& os, const GradcheckReport& r);

GradcheckReport gradcheck(const MultiFn& f, const std::vector<Tensor>& inputs,
                          GradcheckOptions opts = {});

}  // namespace sg
