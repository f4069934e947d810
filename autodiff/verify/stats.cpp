// Mean checks with standard errors: Welford accumulation per element, then a z-score.
#include "autodiff/verify/stats.hpp"

#include <cmath>
#include <iomanip>
#include <ostream>
#include <vector>

#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"

namespace sg {
namespace {

struct Moments {
  std::vector<double> mean, m2;
  int n = 0;
  void add(const std::vector<double>& v) {
    if (mean.empty()) mean.assign(v.size(), 0.0), m2.assign(v.size(), 0.0);
    if (v.size() != mean.size())
      fail<ShapeError>("mean check: estimator changed its number of elements");
    ++n;
    for (std::size_t i = 0; i < v.size(); ++i) {
      const double d = v[i] - mean[i];
      mean[i] += d / n;
      m2[i] += d * (v[i] - mean[i]);
    }
  }
  double var(std::size_t i) const { return n > 1 ? m2[i] / (n - 1) : 0.0; }
};

Moments run(const Estimator& est, int samples, Generator& gen) {
  // Grad mode is left as it is: estimators may differentiate (divergences, score matching).
  Moments m;
  for (int s = 0; s < samples; ++s) m.add(est(gen).to_vector());
  return m;
}

MeanCheck verdict(std::string name, const Moments& a, const Moments* b,
                  const std::vector<double>& ref, const MeanCheckOptions& o) {
  MeanCheck c;
  c.name = std::move(name);
  c.samples = o.samples;
  c.sigmas = o.sigmas;
  c.elements = static_cast<int64_t>(a.mean.size());
  double worst = -1;
  for (std::size_t i = 0; i < a.mean.size(); ++i) {
    const double r = b ? b->mean[i] : ref.size() == 1 ? ref[0] : ref[i];
    double var_diff = a.var(i) / a.n + (b ? b->var(i) / b->n : 0.0);
    const double se = std::sqrt(var_diff);
    const double diff = a.mean[i] - r;
    const double z = se > 0 ? diff / se : (diff == 0 ? 0.0 : INFINITY);
    if (std::abs(z) > worst) {
      worst = std::abs(z);
      c.estimate = a.mean[i];
      c.reference = r;
      c.std_error = se;
      c.variance = a.var(i);
      c.z = z;
    }
  }
  c.pass = worst <= o.sigmas;
  return c;
}

}  // namespace

MeanCheck mean_equals(const Estimator& est, const Tensor& reference, MeanCheckOptions o,
                      std::string name) {
  Generator gen(o.seed);
  const Moments m = run(est, o.samples, gen);
  const std::vector<double> ref = reference.to_vector();
  if (ref.size() != 1 && ref.size() != m.mean.size())
    fail<ShapeError>(name, ": reference ", describe(reference), " does not match the estimator's ",
                     m.mean.size(), " elements");
  return verdict(std::move(name), m, nullptr, ref, o);
}
MeanCheck mean_equals(const Estimator& est, double reference, MeanCheckOptions o,
                      std::string name) {
  return mean_equals(est, scalar(reference, DType::f64), o, std::move(name));
}
MeanCheck means_equal(const Estimator& a, const Estimator& b, MeanCheckOptions o,
                      std::string name) {
  Generator ga(o.seed), gb(o.seed ^ 0x5bd1e995u);
  const Moments ma = run(a, o.samples, ga), mb = run(b, o.samples, gb);
  if (ma.mean.size() != mb.mean.size())
    fail<ShapeError>(name, ": the two estimators differ in size");
  return verdict(std::move(name), ma, &mb, {}, o);
}

std::ostream& operator<<(std::ostream& os, const MeanCheck& c) {
  return os << std::setprecision(6) << c.name << ": estimate " << c.estimate << ", reference "
            << c.reference << ", std error " << c.std_error << ", z " << std::setprecision(3) << c.z
            << " (limit " << c.sigmas << ", " << c.samples << " samples, " << c.elements
            << " elements) " << (c.pass ? "pass" : "FAIL");
}

}  // namespace sg
