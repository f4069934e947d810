// Mean, variance and paired checks with standard errors: moments accumulated per element
// (Welford's update for the mean and M2, Pebay's for M3 and M4), then z-scores.
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
  std::vector<double> mean, m2, m3, m4;  // central moment sums
  int n = 0;
  void add(const std::vector<double>& v) {
    if (mean.empty()) {
      mean.assign(v.size(), 0.0);
      m2 = m3 = m4 = mean;
    }
    if (v.size() != mean.size())
      fail<ShapeError>("mean check: estimator changed its number of elements");
    const double n1 = n;
    ++n;
    const double nn = n;
    for (std::size_t i = 0; i < v.size(); ++i) {
      const double d = v[i] - mean[i], dn = d / nn, dn2 = dn * dn, t = d * dn * n1;
      mean[i] += dn;
      m4[i] += t * dn2 * (nn * nn - 3 * nn + 3) + 6 * dn2 * m2[i] - 4 * dn * m3[i];
      m3[i] += t * dn * (nn - 2) - 3 * dn * m2[i];
      m2[i] += t;
    }
  }
  double var(std::size_t i) const { return n > 1 ? m2[i] / (n - 1) : 0.0; }
  // Standard error of the sample variance (large-sample, from the fourth central moment).
  double var_se(std::size_t i) const {
    if (n < 4) return INFINITY;
    const double s2 = var(i), mu4 = m4[i] / n;
    return std::sqrt(std::max(0.0, (mu4 - s2 * s2 * (n - 3.0) / (n - 1.0)) / n));
  }
};

Moments run(const Estimator& est, int samples, Generator& gen) {
  // Grad mode is left as it is: estimators may differentiate (divergences, score matching).
  Moments m;
  for (int s = 0; s < samples; ++s) m.add(est(gen).to_vector());
  return m;
}

// One z-score per element; the summary fields are the worst element's.
MeanCheck summarize(std::string name, std::vector<ElementCheck> elems,
                    const std::vector<double>& var, const MeanCheckOptions& o) {
  MeanCheck c;
  c.name = std::move(name);
  c.samples = o.samples;
  c.sigmas = o.sigmas;
  c.elements = static_cast<int64_t>(elems.size());
  double worst = -1;
  for (std::size_t i = 0; i < elems.size(); ++i) {
    ElementCheck& e = elems[i];
    const double diff = e.estimate - e.reference;
    e.z = e.std_error > 0 ? diff / e.std_error : (diff == 0 ? 0.0 : INFINITY);
    if (std::isnan(e.z)) e.z = INFINITY;  // a NaN estimate never passes
    e.pass = std::abs(e.z) <= o.sigmas;
    c.failed += e.pass ? 0 : 1;
    if (std::abs(e.z) > worst) {
      worst = std::abs(e.z);
      c.estimate = e.estimate;
      c.reference = e.reference;
      c.std_error = e.std_error;
      c.variance = var[i];
      c.z = e.z;
    }
  }
  c.pass = c.failed == 0 && !elems.empty();
  c.per_element = std::move(elems);
  return c;
}

MeanCheck verdict(std::string name, const Moments& a, const Moments* b,
                  const std::vector<double>& ref, const MeanCheckOptions& o) {
  std::vector<ElementCheck> elems(a.mean.size());
  std::vector<double> var(a.mean.size());
  for (std::size_t i = 0; i < a.mean.size(); ++i) {
    const double r = b ? b->mean[i] : ref.size() == 1 ? ref[0] : ref[i];
    elems[i] = {a.mean[i], r, std::sqrt(a.var(i) / a.n + (b ? b->var(i) / b->n : 0.0))};
    var[i] = a.var(i);
  }
  return summarize(std::move(name), std::move(elems), var, o);
}

std::vector<double> reference_values(const std::string& name, const Tensor& reference,
                                     std::size_t elements) {
  const std::vector<double> ref = reference.to_vector();
  if (ref.size() != 1 && ref.size() != elements)
    fail<ShapeError>(name, ": reference ", describe(reference), " does not match the estimator's ",
                     elements, " elements");
  return ref;
}

void check_samples(const std::string& name, const MeanCheckOptions& o, int at_least) {
  if (o.samples < at_least)
    fail<ValueError>(name, ": needs at least ", at_least, " samples, got ", o.samples);
  if (!(o.sigmas > 0)) fail<ValueError>(name, ": sigmas must be > 0, got ", o.sigmas);
}

}  // namespace

MeanCheck mean_equals(const Estimator& est, const Tensor& reference, MeanCheckOptions o,
                      std::string name) {
  check_samples(name, o, 2);
  Generator gen(o.seed);
  const Moments m = run(est, o.samples, gen);
  const std::vector<double> ref = reference_values(name, reference, m.mean.size());
  return verdict(std::move(name), m, nullptr, ref, o);
}
MeanCheck mean_equals(const Estimator& est, double reference, MeanCheckOptions o,
                      std::string name) {
  return mean_equals(est, scalar(reference, DType::f64), o, std::move(name));
}
MeanCheck means_equal(const Estimator& a, const Estimator& b, MeanCheckOptions o,
                      std::string name) {
  check_samples(name, o, 2);
  Generator ga(o.seed), gb(o.seed ^ 0x5bd1e995u);
  const Moments ma = run(a, o.samples, ga), mb = run(b, o.samples, gb);
  if (ma.mean.size() != mb.mean.size())
    fail<ShapeError>(name, ": the two estimators differ in size");
  return verdict(std::move(name), ma, &mb, {}, o);
}

MeanCheck variance_equals(const Estimator& est, const Tensor& reference, MeanCheckOptions o,
                          std::string name) {
  check_samples(name, o, 4);
  Generator gen(o.seed);
  const Moments m = run(est, o.samples, gen);
  const std::vector<double> ref = reference_values(name, reference, m.mean.size());
  std::vector<ElementCheck> elems(m.mean.size());
  std::vector<double> var(m.mean.size());
  for (std::size_t i = 0; i < m.mean.size(); ++i) {
    elems[i] = {m.var(i), ref.size() == 1 ? ref[0] : ref[i], m.var_se(i)};
    var[i] = m.var(i);
  }
  return summarize(std::move(name), std::move(elems), var, o);
}
MeanCheck variance_equals(const Estimator& est, double reference, MeanCheckOptions o,
                          std::string name) {
  return variance_equals(est, scalar(reference, DType::f64), o, std::move(name));
}

PairedCheck paired_compare(const Estimator& a, const Estimator& b, MeanCheckOptions o,
                           std::string name) {
  check_samples(name, o, 4);
  Generator gen(o.seed);
  Moments ma, mb, md;
  std::vector<std::vector<double>> xa, xb;  // kept for the variance ratio's second pass
  for (int s = 0; s < o.samples; ++s) {
    const Generator common = gen.split();
    Generator ga = common, gb = common;
    std::vector<double> va = a(ga).to_vector(), vb = b(gb).to_vector();
    if (va.size() != vb.size()) fail<ShapeError>(name, ": the two estimators differ in size");
    std::vector<double> d(va.size());
    for (std::size_t i = 0; i < va.size(); ++i) d[i] = va[i] - vb[i];
    ma.add(va);
    mb.add(vb);
    md.add(d);
    xa.push_back(std::move(va));
    xb.push_back(std::move(vb));
  }
  PairedCheck c;
  c.name = name;
  c.samples = o.samples;
  c.sigmas = o.sigmas;
  c.difference = verdict(name + " (paired difference)", md, nullptr, {0.0}, o);
  const std::size_t E = ma.mean.size();
  const double n = o.samples;
  c.a_less_noisy = E > 0;
  for (std::size_t i = 0; i < E; ++i) {
    const double va = ma.var(i), vb = mb.var(i);
    // u = (a - mean a)^2 / va, w = (b - mean b)^2 / vb; log(vb/va) has variance
    // Var(w - u) / n to first order.
    double mean_u = 0, mean_w = 0;
    std::vector<double> g(xa.size());
    for (std::size_t s = 0; s < xa.size(); ++s) {
      const double da = xa[s][i] - ma.mean[i], db = xb[s][i] - mb.mean[i];
      const double u = va > 0 ? da * da / va : 0, w = vb > 0 ? db * db / vb : 0;
      g[s] = w - u;
      mean_u += u / n;
      mean_w += w / n;
    }
    double var_g = 0;
    const double mean_g = mean_w - mean_u;
    for (double x : g) var_g += (x - mean_g) * (x - mean_g) / (n - 1);
    const double lr = std::log(vb / va), se = std::sqrt(var_g / n);
    c.var_a.push_back(va);
    c.var_b.push_back(vb);
    c.log_ratio.push_back(lr);
    c.log_ratio_se.push_back(se);
    c.a_less_noisy &= std::isfinite(lr) && lr > o.sigmas * se;
  }
  return c;
}

std::ostream& operator<<(std::ostream& os, const MeanCheck& c) {
  os << std::setprecision(6) << c.name << ": estimate " << c.estimate << ", reference "
     << c.reference << ", std error " << c.std_error << ", z " << std::setprecision(3) << c.z
     << " (limit " << c.sigmas << ", " << c.samples << " samples, " << c.elements << " elements, "
     << c.failed << " outside) " << (c.pass ? "pass" : "FAIL");
  if (c.per_element.size() > 1) {
    os << std::setprecision(6);
    for (std::size_t i = 0; i < c.per_element.size(); ++i) {
      const ElementCheck& e = c.per_element[i];
      os << "\n  [" << i << "] estimate " << e.estimate << ", reference " << e.reference
         << ", std error " << e.std_error << ", z " << std::setprecision(3) << e.z
         << std::setprecision(6) << (e.pass ? "" : "  FAIL");
    }
  }
  return os;
}
std::ostream& operator<<(std::ostream& os, const PairedCheck& c) {
  os << c.difference;
  for (std::size_t i = 0; i < c.var_a.size(); ++i)
    os << "\n  [" << i << "] variance a " << std::setprecision(6) << c.var_a[i] << ", b "
       << c.var_b[i] << ", log(b/a) " << c.log_ratio[i] << " +- " << c.log_ratio_se[i];
  return os << "\n  " << c.name
            << ": a has lower variance than b: " << (c.a_less_noisy ? "yes" : "not shown");
}

}  // namespace sg
