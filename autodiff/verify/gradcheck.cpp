// gradcheck: the dot-product test at every order, against central differences.
#include "autodiff/verify/gradcheck.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <ostream>

#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"
#include "autodiff/tape/forward.hpp"
#include "autodiff/transforms/transforms.hpp"

namespace sg {
namespace {

double dot(const Tensor& a, const Tensor& b) { return sum(a.detach() * b.detach()).item(); }

// F_{k}(xs) = flattened concatenation of d<c, F_{k-1}(xs)>/dxs (create_graph).
MultiFn next_order(MultiFn f, Tensor c) {
  return [f = std::move(f), c = std::move(c)](const std::vector<Tensor>& xs) {
    EnableGradGuard on;
    std::vector<Tensor> tracked;
    for (const Tensor& x : xs) tracked.push_back(detail::track(x));  // keeps jvp tangents
    const Tensor y = f(tracked);
    const std::vector<Tensor> gs =
        grad({y}, tracked, {c}, {.create_graph = true, .allow_unused = true});
    std::vector<Tensor> flat;
    for (const Tensor& g : gs) flat.push_back(reshape(g, {-1}));
    return concat(flat, 0);
  };
}

}  // namespace

GradcheckReport gradcheck(const MultiFn& f0, const std::vector<Tensor>& inputs,
                          GradcheckOptions o) {
  for (const Tensor& x : inputs)
    if (x.dtype() != DType::f64)
      fail<DTypeError>("gradcheck: inputs must be float64, got ", describe(x));
  Generator gen(o.seed);
  GradcheckReport report;
  MultiFn f = f0;
  std::vector<Tensor> xs;
  for (const Tensor& x : inputs) xs.push_back(x.detach());
  for (int order = 1; order <= o.order; ++order) {
    // Output shape at this order, and a random cotangent for it.
    Tensor y0;
    {
      NoGradGuard off;
      y0 = f(xs);
    }
    const Tensor c = randn_like(y0, gen);
    std::vector<Tensor> ts;
    for (const Tensor& x : xs) ts.push_back(randn_like(x, gen));
    // VJP of <c, f> at xs.
    std::vector<Tensor> vjps;
    {
      EnableGradGuard on;
      std::vector<Tensor> tracked;
      for (const Tensor& x : xs) tracked.push_back(x.detach().requires_grad_());
      const Tensor y = f(tracked);
      if (y.requires_grad()) {
        vjps = grad({y}, tracked, {c}, {.allow_unused = true});
      } else {
        for (const Tensor& x : xs) vjps.push_back(zeros_like(x));
      }
    }
    for (std::size_t i = 0; i < xs.size(); ++i) {
      auto shifted = [&](double h) {
        std::vector<Tensor> p = xs;
        p[i] = xs[i] + ts[i] * h;
        NoGradGuard off;
        return dot(c, f(p));
      };
      const double numeric = (shifted(o.eps) - shifted(-o.eps)) / (2 * o.eps);
      auto row = [&](const char* check, double analytic) {
        const double err = std::abs(analytic - numeric),
                     scale = std::max(std::abs(analytic), std::abs(numeric));
        report.rows.push_back({order, static_cast<int>(i), check, analytic, numeric, err,
                               scale > 0 ? err / scale : 0.0, err <= o.atol + o.rtol * scale});
      };
      row("vjp", dot(vjps[i], ts[i]));
      if (o.check_jvp) {
        DualLevel level;
        std::vector<Tensor> p = xs;
        p[i] = level.make_dual(xs[i], ts[i]);
        const Tensor y = f(p);
        row("jvp", dot(c, level.tangent(y)));
      }
    }
    if (order < o.order) f = next_order(f, c);
  }
  return report;
}

bool GradcheckReport::ok() const {
  return std::all_of(rows.begin(), rows.end(), [](const GradcheckRow& r) { return r.pass; });
}
double GradcheckReport::max_abs_err(int order) const {
  double m = 0;
  for (const auto& r : rows)
    if (r.order == order) m = std::max(m, r.abs_err);
  return m;
}
double GradcheckReport::max_rel_err(int order) const {
  double m = 0;
  for (const auto& r : rows)
    if (r.order == order) m = std::max(m, r.rel_err);
  return m;
}
std::ostream& operator<<(std::ostream& os, const GradcheckReport& r) {
  os << "order input check      analytic         numeric     abs err   rel err  verdict\n";
  for (const auto& w : r.rows) {
    os << std::setw(5) << w.order << std::setw(6) << w.input << std::setw(6) << w.check
       << std::setw(16) << std::setprecision(9) << w.analytic << std::setw(16) << w.numeric
       << std::setw(12) << std::setprecision(2) << w.abs_err << std::setw(10) << w.rel_err << "  "
       << (w.pass ? "pass" : "FAIL") << "\n";
  }
  return os << (r.ok() ? "gradcheck: pass" : "gradcheck: FAIL") << "\n";
}

}  // namespace sg
