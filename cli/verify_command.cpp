// `scoregrad verify`: the identity catalogue (objectives/identities.hpp) and the op table's
// gradient checks of every order (autodiff/verify/op_cases.hpp), printed as tables.
#include <cstdio>
#include <iostream>

#include "autodiff/ops/op_def.hpp"
#include "autodiff/verify/op_cases.hpp"
#include "cli/commands.hpp"
#include "objectives/identities.hpp"

namespace sg::cli {

int run_verify(const VerifyOptions& o) {
  int failures = 0, rows = 0;
  if (o.ops) {
    std::printf("%-28s %5s %6s %12s %12s  %s\n", "op table row", "order", "checks", "max abs err",
                "max rel err", "verdict");
    for (const auto& c : verify::op_cases()) {
      if (!c.differentiable || c.name.find(o.filter) == std::string::npos) continue;
      const GradcheckReport r = verify::check_op_case(c);
      double abs_err = 0, rel_err = 0;
      for (int k = 1; k <= c.order; ++k) {
        abs_err = std::max(abs_err, r.max_abs_err(k));
        rel_err = std::max(rel_err, r.max_rel_err(k));
      }
      ++rows;
      if (!r.ok()) ++failures;
      std::printf("%-28s %5d %6zu %12.2e %12.2e  %s\n", c.name.c_str(), c.order, r.rows.size(),
                  abs_err, rel_err, r.ok() ? "ok" : "FAIL");
    }
    std::printf("\n");
  }
  if (o.identities) {
    const auto results = obj::run_identities(o.filter);
    obj::print_identity_table(std::cout, results);
    for (const auto& r : results) {
      ++rows;
      if (!r.pass) ++failures;
    }
  }
  std::printf("\n%d checks, %d failed\n", rows, failures);
  if (rows == 0) {
    std::fprintf(stderr, "verify: nothing matches the filter \"%s\"\n", o.filter.c_str());
    return 2;
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace sg::cli
