// Huang, Lim & Courville's importance-sampled time (formulas in time_sampler.hpp).
#include "objectives/time_sampler.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <typeinfo>

#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"

namespace sg::obj {
namespace {

constexpr const char* kName = "HuangTimeSampler";
constexpr int kNodes = 16;

// Gauss-Legendre nodes and weights on [-1, 1]: Newton on P_n from Chebyshev-like guesses.
struct GaussLegendre {
  std::array<double, kNodes> x{}, w{};
};
const GaussLegendre& gauss_legendre() {
  static const GaussLegendre g = [] {
    GaussLegendre r;
    for (int i = 0; i < kNodes; ++i) {
      double z = std::cos(M_PI * (i + 0.75) / (kNodes + 0.5)), dp = 1;
      for (int it = 0; it < 100; ++it) {
        double p0 = 1, p1 = z;  // P_{k-1}, P_k by (k+1) P_{k+1} = (2k+1) z P_k - k P_{k-1}
        for (int k = 1; k < kNodes; ++k) {
          const double p2 = ((2 * k + 1) * z * p1 - k * p0) / (k + 1);
          p0 = p1;
          p1 = p2;
        }
        dp = kNodes * (z * p1 - p0) / (z * z - 1);  // P_n' = n (z P_n - P_{n-1}) / (z^2 - 1)
        const double dz = p1 / dp;
        z -= dz;
        if (std::abs(dz) <= 1e-17) break;
      }
      r.x[i] = z;
      r.w[i] = 2 / ((1 - z * z) * dp * dp);  // w_i = 2 / ((1 - x_i^2) P_n'(x_i)^2)
    }
    return r;
  }();
  return g;
}

// B(t) = b0 t + (b1 - b0) t^2 / 2, and its inverse t = 2B / (b0 + sqrt(b0^2 + 2 (b1 - b0) B)).
double integral_beta(double b0, double b1, double t) { return t * (b0 + 0.5 * (b1 - b0) * t); }
double time_of_integral(double b0, double b1, double B) {
  return 2 * B / (b0 + std::sqrt(b0 * b0 + 2 * (b1 - b0) * B));
}
double softplus(double v) { return v > 0 ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v)); }

void check_number(const char* method, const char* field, double v) {
  if (std::isnan(v))
    fail<ValueError>(kName, "::", method, ": ", field, " must be a number, got nan");
}

}  // namespace

HuangTimeSampler::HuangTimeSampler(const Sde& sde, double t_eps)
    : sde_(&sde), T_(sde.T()), t_eps_(t_eps) {
  if (!(std::isfinite(t_eps) && t_eps > 0 && t_eps < T_))
    fail<ValueError>(kName, ": t_eps must lie in (0, ", T_, "), got ", t_eps);
  if (typeid(sde) == typeid(VpSde) || typeid(sde) == typeid(SubVpSde)) {
    const auto& vp = static_cast<const VpSde&>(sde);
    kind_ = typeid(sde) == typeid(VpSde) ? Kind::vp : Kind::subvp;
    b0_ = vp.beta_min();
    b1_ = vp.beta_max();
    r_eps_ = rate(t_eps);
    R_eps_ = integral({t_eps})[0];  // integral() is R(t) - R_eps_, R_eps_ still 0 here
    Z_ = r_eps_ * t_eps + integral({T_})[0];
  } else if (typeid(sde) == typeid(VeSde)) {
    kind_ = Kind::ve;
    ve_rate_ = rates({T_})[0];  // g^2 / sigma^2 = 2 ln(s1/s0) at every t
    r_eps_ = ve_rate_;
    R_eps_ = ve_rate_ * t_eps;  // R(t) = r t
    Z_ = ve_rate_ * T_;
  } else {
    kind_ = Kind::quadrature;
    r_eps_ = rates({t_eps})[0];
    build_table();
    Z_ = r_eps_ * t_eps + cum_.back();
  }
  if (!(std::isfinite(r_eps_) && r_eps_ > 0 && std::isfinite(Z_) && Z_ > 0))
    fail<ValueError>(kName, ": g^2/std^2 of sde '", sde.name(),
                     "' is not finite and positive on [t_eps, T] (r(t_eps) = ", r_eps_,
                     ", Z = ", Z_, ")");
}

// g^2 / std^2 through the SDE's own tensors (quadrature and VE).
std::vector<double> HuangTimeSampler::rates(const std::vector<double>& t) const {
  if (t.empty()) return {};
  NoGradGuard off;
  const Tensor tt = from_vector(t, {static_cast<int64_t>(t.size())}, DType::f64);
  const Tensor g = sde_->diffusion(tt), sd = sde_->marginal(tt).second;
  return (g * g / (sd * sd)).to_vector();
}

double HuangTimeSampler::rate(double t) const {
  switch (kind_) {
    case Kind::vp: {  // beta / (1 - e^-B)
      const double B = integral_beta(b0_, b1_, t);
      return (b0_ + (b1_ - b0_) * t) / -std::expm1(-B);
    }
    case Kind::subvp: {  // beta (1 - e^-2B) / (1 - e^-B)^2 = beta (1 + e^-B) / (1 - e^-B)
      const double B = integral_beta(b0_, b1_, t);
      return (b0_ + (b1_ - b0_) * t) * (1 + std::exp(-B)) / -std::expm1(-B);
    }
    case Kind::ve:
      return ve_rate_;
    case Kind::quadrature:
      break;
  }
  return rates({t})[0];
}

// Quadrature: panels uniform in w = log t, int r dt = int r(e^w) e^w dw, 16-point Gauss-Legendre
// per panel; the panel count doubles until the total moves by under 1e-14 relative.
void HuangTimeSampler::build_table() {
  const GaussLegendre& gl = gauss_legendre();
  const double w0 = std::log(t_eps_), w1 = std::log(T_);
  double previous = NAN;
  for (int64_t M = 32; M <= (int64_t{1} << 16); M *= 2) {
    std::vector<double> nodes;
    nodes.reserve(M * kNodes);
    const double h = (w1 - w0) / double(M);
    for (int64_t k = 0; k < M; ++k)
      for (int j = 0; j < kNodes; ++j)
        nodes.push_back(std::exp(w0 + h * (double(k) + 0.5 * (1 + gl.x[j]))));
    const std::vector<double> r = rates(nodes);
    edges_.assign(M + 1, 0.0);
    cum_.assign(M + 1, 0.0);
    for (int64_t k = 0; k <= M; ++k) edges_[k] = k == M ? w1 : w0 + h * double(k);
    for (int64_t k = 0; k < M; ++k) {
      double s = 0;
      for (int j = 0; j < kNodes; ++j) s += gl.w[j] * r[k * kNodes + j] * nodes[k * kNodes + j];
      cum_[k + 1] = cum_[k] + 0.5 * h * s;
    }
    if (!std::isfinite(cum_[M])) break;
    if (std::abs(cum_[M] - previous) <= 1e-14 * std::abs(cum_[M])) return;
    previous = cum_[M];
  }
  fail<ValueError>(kName, ": the quadrature of g^2/std^2 over [t_eps, T] of sde '", sde_->name(),
                   "' did not converge (last total ", cum_.back(), ")");
}

// R(t) - R(t_eps) for t in [t_eps, T].
std::vector<double> HuangTimeSampler::integral(const std::vector<double>& t) const {
  std::vector<double> out(t.size());
  if (kind_ != Kind::quadrature) {
    for (std::size_t i = 0; i < t.size(); ++i) {
      const double B = integral_beta(b0_, b1_, t[i]);
      double R = 0;
      if (kind_ == Kind::vp) R = B + std::log(-std::expm1(-B));         // log(e^B - 1)
      if (kind_ == Kind::subvp) R = B + 2 * std::log(-std::expm1(-B));  // 2 log(2 sinh(B/2))
      if (kind_ == Kind::ve) R = ve_rate_ * t[i];
      out[i] = R - R_eps_;
    }
    return out;
  }
  // cum_[k] + int_{edge k}^{log t} r(e^w) e^w dw, one batched evaluation of the SDE.
  const GaussLegendre& gl = gauss_legendre();
  std::vector<int64_t> panel(t.size());
  std::vector<double> nodes;
  nodes.reserve(t.size() * kNodes);
  const int64_t M = static_cast<int64_t>(edges_.size()) - 1;
  for (std::size_t i = 0; i < t.size(); ++i) {
    const double w = std::log(t[i]);
    panel[i] = std::clamp<int64_t>(
        std::upper_bound(edges_.begin(), edges_.end(), w) - edges_.begin() - 1, 0, M - 1);
    const double a = edges_[panel[i]];
    for (int j = 0; j < kNodes; ++j) nodes.push_back(std::exp(a + 0.5 * (w - a) * (1 + gl.x[j])));
  }
  const std::vector<double> r = rates(nodes);
  for (std::size_t i = 0; i < t.size(); ++i) {
    double s = 0;
    for (int j = 0; j < kNodes; ++j) s += gl.w[j] * r[i * kNodes + j] * nodes[i * kNodes + j];
    out[i] = cum_[panel[i]] + 0.5 * (std::log(t[i]) - edges_[panel[i]]) * s;
  }
  return out;
}

// t with R(t) - R(t_eps) = v: closed forms, or safeguarded Newton in log t on the quadrature.
std::vector<double> HuangTimeSampler::inverse_integral(const std::vector<double>& v) const {
  std::vector<double> t(v.size());
  if (kind_ != Kind::quadrature) {
    for (std::size_t i = 0; i < v.size(); ++i) {
      const double R = v[i] + R_eps_;
      if (kind_ == Kind::ve) {
        t[i] = R / ve_rate_;
      } else {
        // VP: B = log(1 + e^R); sub-VP: B = 2 asinh(e^{R/2} / 2) (B = R where e^{R/2} overflows)
        const double B =
            kind_ == Kind::vp ? softplus(R) : (R > 1400 ? R : 2 * std::asinh(std::exp(R / 2) / 2));
        t[i] = time_of_integral(b0_, b1_, B);
      }
      t[i] = std::clamp(t[i], t_eps_, T_);
    }
    return t;
  }
  const int64_t M = static_cast<int64_t>(edges_.size()) - 1;
  std::vector<double> w(v.size()), lo(v.size()), hi(v.size());
  std::vector<std::size_t> active;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const int64_t k = std::clamp<int64_t>(
        std::upper_bound(cum_.begin(), cum_.end(), v[i]) - cum_.begin() - 1, 0, M - 1);
    lo[i] = edges_[k];
    hi[i] = edges_[k + 1];
    const double frac = std::clamp((v[i] - cum_[k]) / (cum_[k + 1] - cum_[k]), 0.0, 1.0);
    w[i] = lo[i] + frac * (hi[i] - lo[i]);
    active.push_back(i);
  }
  const double f_tol = 1e-15 * std::max(1.0, cum_.back());  // the quadrature's own rounding
  for (int it = 0; it < 100 && !active.empty(); ++it) {
    std::vector<double> ti(active.size());
    for (std::size_t a = 0; a < active.size(); ++a) ti[a] = std::exp(w[active[a]]);
    const std::vector<double> G = integral(ti), r = rates(ti);
    std::vector<std::size_t> still;
    for (std::size_t a = 0; a < active.size(); ++a) {
      const std::size_t i = active[a];
      const double f = G[a] - v[i];        // G increasing in w, dG/dw = r(t) t
      if (std::abs(f) <= f_tol) continue;  // |dF| <= 1e-15: rounding level
      (f > 0 ? hi[i] : lo[i]) = w[i];
      double next = w[i] - f / (r[a] * ti[a]);
      if (!(next > lo[i] && next < hi[i])) next = 0.5 * (lo[i] + hi[i]);
      const double tol = 4e-16 * std::max(1.0, std::abs(w[i]));
      const bool done = std::abs(next - w[i]) <= tol || hi[i] - lo[i] <= tol;
      w[i] = next;
      if (!done) still.push_back(i);
    }
    active.swap(still);
  }
  for (std::size_t i = 0; i < v.size(); ++i) t[i] = std::clamp(std::exp(w[i]), t_eps_, T_);
  return t;
}

namespace {
// Elementwise x -> y where `each` settles an element in closed form (returns true, writes y) or
// leaves it, with a key, to `batch`: one batched call for the rest (the quadrature's SDE calls).
template <class Each, class Batch>
std::vector<double> by_piece(const std::vector<double>& x, Each each, Batch batch) {
  std::vector<double> y(x.size(), 0.0), keys;
  std::vector<std::size_t> where;
  for (std::size_t i = 0; i < x.size(); ++i) {
    double key = 0;
    if (!each(x[i], y[i], key)) keys.push_back(key), where.push_back(i);
  }
  const std::vector<double> rest = batch(keys);
  for (std::size_t a = 0; a < where.size(); ++a) y[where[a]] = rest[a];
  return y;
}
}  // namespace

std::vector<double> HuangTimeSampler::density(const std::vector<double>& t) const {
  const auto each = [&](double x, double& q, double& key) {
    check_number("density", "t", x);
    if (x < 0 || x > T_) return true;                              // q = 0 outside [0, T]
    if (x < t_eps_) return q = r_eps_ / Z_, true;                  // flat below t_eps
    if (kind_ != Kind::quadrature) return q = rate(x) / Z_, true;  // g^2 / std^2 / Z
    return key = x, false;
  };
  return by_piece(t, each, [&](const std::vector<double>& x) {
    std::vector<double> r = rates(x);
    for (double& v : r) v /= Z_;
    return r;
  });
}

std::vector<double> HuangTimeSampler::cdf(const std::vector<double>& t) const {
  const auto each = [&](double x, double& F, double& key) {
    check_number("cdf", "t", x);
    if (x <= 0) return true;
    if (x >= T_) return F = 1, true;
    if (x <= t_eps_) return F = r_eps_ * x / Z_, true;  // r(t_eps) t / Z
    return key = x, false;
  };
  return by_piece(t, each, [&](const std::vector<double>& x) {
    std::vector<double> R = integral(x);  // (r(t_eps) t_eps + R(t) - R(t_eps)) / Z
    for (double& v : R) v = std::min(1.0, (r_eps_ * t_eps_ + v) / Z_);
    return R;
  });
}

std::vector<double> HuangTimeSampler::inverse_cdf(const std::vector<double>& u) const {
  const double flat = r_eps_ * t_eps_;  // Z F(t_eps)
  const auto each = [&](double x, double& t, double& key) {
    if (!(x >= 0 && x <= 1))
      fail<ValueError>(kName, "::inverse_cdf: u must lie in [0, 1], got ", x);
    if (x == 1) return t = T_, true;  // F^-1(1) = T, not T up to rounding
    if (x * Z_ <= flat) return t = std::min(x * Z_ / r_eps_, t_eps_), true;  // u Z / r(t_eps)
    return key = x * Z_ - flat, false;  // R(t) - R(t_eps) = u Z - r(t_eps) t_eps
  };
  return by_piece(u, each, [&](const std::vector<double>& v) { return inverse_integral(v); });
}

double HuangTimeSampler::density(double t) const { return density(std::vector<double>{t})[0]; }
double HuangTimeSampler::cdf(double t) const { return cdf(std::vector<double>{t})[0]; }
double HuangTimeSampler::inverse_cdf(double u) const {
  return inverse_cdf(std::vector<double>{u})[0];
}

namespace {
template <class F>
Tensor elementwise(const Tensor& t, F f) {
  return from_vector(f(t.to_vector()), t.shape(), t.dtype(), t.device());
}
}  // namespace
Tensor HuangTimeSampler::density(const Tensor& t) const {
  return elementwise(t, [&](const std::vector<double>& v) { return density(v); });
}
Tensor HuangTimeSampler::cdf(const Tensor& t) const {
  return elementwise(t, [&](const std::vector<double>& v) { return cdf(v); });
}
Tensor HuangTimeSampler::inverse_cdf(const Tensor& u) const {
  return elementwise(u, [&](const std::vector<double>& v) { return inverse_cdf(v); });
}

std::pair<Tensor, Tensor> HuangTimeSampler::sample(int64_t n, Generator& gen, DType dtype,
                                                   Device device) const {
  return sample_between(0, T_, n, gen, dtype, device);
}

std::pair<Tensor, Tensor> HuangTimeSampler::sample_between(double lo, double hi, int64_t n,
                                                           Generator& gen, DType dtype,
                                                           Device device) const {
  if (n < 0) fail<ValueError>(kName, "::sample: n must be >= 0, got ", n);
  if (!(lo >= 0 && lo < T_))
    fail<ValueError>(kName, "::sample: lo must lie in [0, ", T_, "), got ", lo);
  if (!(hi > lo && hi <= T_))
    fail<ValueError>(kName, "::sample: hi must lie in (lo, ", T_, "] = (", lo, ", ", T_, "], got ",
                     hi);
  const double F_lo = cdf(lo), mass = cdf(hi) - F_lo;
  std::vector<double> u = rand({n}, gen, DType::f64).to_vector();  // host draws, any device
  for (double& x : u) x = std::min(1.0, F_lo + x * mass);          // F(lo) + u (F(hi) - F(lo))
  std::vector<double> t = inverse_cdf(u);
  for (double& x : t) x = std::clamp(x, lo, hi);
  std::vector<double> q = density(t);
  for (double& x : q) x /= mass;  // q(t) / (F(hi) - F(lo))
  const Shape shape{n};
  return {from_vector(t, shape, dtype, device), from_vector(q, shape, dtype, device)};
}

}  // namespace sg::obj
