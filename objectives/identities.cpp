// The built-in identities (score matching, Hutchinson, SSM, FD-SSM, DSM), on the Gaussian test
// case G of the spec (D = 2, mu = (1, -0.5), Sigma = [[1, 0.6], [0.6, 2]]) unless stated.
#include "objectives/identities.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <mutex>
#include <ostream>
#include <sstream>

#include "autodiff/sg.hpp"
#include "objectives/objectives.hpp"

namespace sg::obj {

std::vector<Identity> elbo_identities();  // identities_elbo.cpp
std::vector<Identity> ode_identities();   // identities_ode.cpp
std::vector<Identity> vdm_identities();   // identities_vdm.cpp

IdentityResult deterministic(std::string name, std::string statement, double est, double ref,
                             double tol) {
  return {std::move(name), std::move(statement),      est, ref, 0.0, tol,
          false,           std::abs(est - ref) <= tol};
}
IdentityResult mean_within(std::string name, std::string statement, const std::vector<double>& v,
                           double ref, double sigmas) {
  double m = 0, m2 = 0;
  for (double x : v) m += x;
  m /= double(v.size());
  for (double x : v) m2 += (x - m) * (x - m);
  const double se = std::sqrt(m2 / double(v.size() - 1) / double(v.size()));
  return {std::move(name),
          std::move(statement),
          m,
          ref,
          se,
          sigmas,
          true,
          std::abs(m - ref) <= sigmas * se};
}

namespace {

constexpr DType f64 = DType::f64;
const double kMu[2] = {1.0, -0.5};
const double kSigma[4] = {1.0, 0.6, 0.6, 2.0};

Tensor mat(const double* v, int64_t r, int64_t c) {
  return from_vector(std::vector<double>(v, v + r * c), {r, c}, f64);
}
Tensor mu() { return from_vector({kMu[0], kMu[1]}, {2}, f64); }
// Inverse of a 2x2 matrix given row-major.
Tensor inv2(const Tensor& m) {
  const auto a = m.to_vector();
  const double det = a[0] * a[3] - a[1] * a[2];
  return from_vector({a[3] / det, -a[1] / det, -a[2] / det, a[0] / det}, {2, 2}, f64);
}
Tensor sigma_plus(double s2) { return mat(kSigma, 2, 2) + eye(2, f64) * s2; }
// x = mu + L z, L the Cholesky factor of Sigma + s2 I
Tensor sample_gaussian(int64_t n, Generator& g, double s2 = 0) {
  const auto S = sigma_plus(s2).to_vector();
  const double l00 = std::sqrt(S[0]), l10 = S[2] / l00, l11 = std::sqrt(S[3] - l10 * l10);
  const Tensor L = from_vector({l00, 0, l10, l11}, {2, 2}, f64);
  return matmul(randn({n, 2}, g, f64), L.mT()) + mu();
}
// grad log N(x; mu, Sigma + s2 I) = -(x - mu) (Sigma + s2 I)^-1
Tensor gaussian_score(const Tensor& x, double s2 = 0) {
  return -matmul(x - mu(), inv2(sigma_plus(s2)));
}

// A nonlinear score model s(x) = -(x - b) A^T + c tanh(x W), parameters drawn from a seed.
struct Model {
  Tensor A, b, c, W;
  explicit Model(uint64_t seed) {
    Generator g(seed);
    A = (eye(2, f64) + randn({2, 2}, g, f64) * 0.3).requires_grad_();
    b = randn({2}, g, f64).requires_grad_();
    c = (randn({2}, g, f64) * 0.5).requires_grad_();
    W = randn({2, 2}, g, f64).requires_grad_();
  }
  std::vector<Tensor> params() const { return {A, b, c, W}; }
  Tensor operator()(const Tensor& x) const {
    return -matmul(x - b, A.mT()) + c * tanh(matmul(x, W));
  }
};
std::vector<double> flat_grads(const Tensor& loss, const std::vector<Tensor>& ps) {
  std::vector<double> out;
  for (const Tensor& g : grad(loss, ps)) {
    auto v = g.to_vector();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}
// Worst component of a vector-valued mean against zero, from K independent batch estimates.
IdentityResult vector_zero(std::string name, std::string statement,
                           const std::vector<std::vector<double>>& batches, double sigmas = 4.0) {
  IdentityResult worst;
  double worst_z = -1;
  for (std::size_t j = 0; j < batches[0].size(); ++j) {
    std::vector<double> col;
    for (const auto& b : batches) col.push_back(b[j]);
    IdentityResult r = mean_within(name, statement, col, 0.0, sigmas);
    const double z = r.std_error > 0 ? std::abs(r.estimate) / r.std_error : 0;
    if (z > worst_z) worst_z = z, worst = r;
  }
  return worst;
}

std::vector<IdentityResult> hyvarinen() {
  std::vector<IdentityResult> rows;
  Generator g(101);
  const double half_tr = 0.5 * sum(inv2(mat(kSigma, 2, 2)) * eye(2, f64)).item();
  for (uint64_t seed : {1, 2}) {
    const Model m(seed);
    const Tensor x = sample_gaussian(20000, g);
    const Tensor ism = implicit_sm_per_sample(m, x);
    const Tensor r = m(x) - gaussian_score(x);
    const Tensor esm = per_sample(r * r) * 0.5;
    rows.push_back(
        mean_within("hyvarinen: ISM - ESM is constant (theta " + std::to_string(seed) + ")",
                    "E[ISM - ESM] = -1/2 E|grad log p|^2 = -1/2 tr Sigma^-1",
                    (ism - esm).to_vector(), -half_tr));
  }
  {
    const Model m(3);
    std::vector<std::vector<double>> diffs;
    for (int k = 0; k < 20; ++k) {
      const Tensor x = sample_gaussian(2000, g);
      const auto gi = flat_grads(implicit_sm(m, x), m.params());
      const auto ge = flat_grads(explicit_sm(m, x, gaussian_score(x)), m.params());
      std::vector<double> d(gi.size());
      for (std::size_t j = 0; j < d.size(); ++j) d[j] = gi[j] - ge[j];
      diffs.push_back(d);
    }
    rows.push_back(vector_zero("hyvarinen: parameter gradients agree",
                               "E[d ISM/d theta - d ESM/d theta] = 0 (worst component)", diffs));
  }
  {
    // Linear score s(x) = -(x - b) A^T: J_ISM = 1/2 [tr(A Sigma A^T) + |A (mu - b)|^2] - tr A
    Generator pg(7);
    const Tensor A = eye(2, f64) * 0.8 + randn({2, 2}, pg, f64) * 0.2, b = randn({2}, pg, f64);
    const Tensor S = mat(kSigma, 2, 2);
    const Tensor Amb = matmul(A, mu() - b);
    const double closed =
        0.5 * (sum(matmul(matmul(A, S), A.mT()) * eye(2, f64)).item() + sum(Amb * Amb).item()) -
        sum(A * eye(2, f64)).item();
    const auto s = [&](const Tensor& x) { return -matmul(x - b, A.mT()); };
    rows.push_back(mean_within("hyvarinen: closed form for a linear score",
                               "J_ISM = 1/2 [tr(A Sigma A^T) + |A (mu - b)|^2] - tr A",
                               implicit_sm_per_sample(s, sample_gaussian(20000, g)).to_vector(),
                               closed));
  }
  return rows;
}

std::vector<IdentityResult> vincent() {
  std::vector<IdentityResult> rows;
  Generator g(202);
  const double sigma = 0.5, s2 = sigma * sigma;
  const double constant = 2.0 / (2 * s2) - 0.5 * sum(inv2(sigma_plus(s2)) * eye(2, f64)).item();
  for (uint64_t seed : {1, 2}) {
    const Model m(seed);
    const Tensor x = sample_gaussian(20000, g), z = randn_like(x, g);
    const Tensor xn = x + z * sigma;
    const Tensor rd = m(xn) + z / sigma, re = m(xn) - gaussian_score(xn, s2);
    const Tensor d = (per_sample(rd * rd) - per_sample(re * re)) * 0.5;
    rows.push_back(
        mean_within("vincent: DSM - ESM_sigma is constant (theta " + std::to_string(seed) + ")",
                    "E[DSM - ESM on q_sigma] = D/(2 sigma^2) - 1/2 tr (Sigma + sigma^2 I)^-1",
                    d.to_vector(), constant));
  }
  const Model m(3);
  std::vector<std::vector<double>> diffs;
  for (int k = 0; k < 20; ++k) {
    const Tensor x = sample_gaussian(2000, g), z = randn_like(x, g);
    const auto gd = flat_grads(dsm_with(m, x, sigma, z, 0.0), m.params());
    const Tensor xn = x + z * sigma;
    const auto ge = flat_grads(explicit_sm(m, xn, gaussian_score(xn, s2)), m.params());
    std::vector<double> d(gd.size());
    for (std::size_t j = 0; j < d.size(); ++j) d[j] = gd[j] - ge[j];
    diffs.push_back(d);
  }
  rows.push_back(vector_zero("vincent: parameter gradients agree",
                             "E[d DSM/d theta - d ESM_sigma/d theta] = 0 (worst component)",
                             diffs));
  return rows;
}

std::vector<IdentityResult> hutchinson() {
  std::vector<IdentityResult> rows;
  const double a[16] = {1.0, 0.5, -0.3, 0.2,  0.1,  -2.0, 0.4, 0.0,
                        0.7, 0.3, 0.5,  -0.6, -0.2, 0.9,  0.1, 1.5};
  const Tensor A = mat(a, 4, 4);
  const Tensor As = (A + A.mT()) * 0.5;
  const double tr = sum(A * eye(4, f64)).item(), fro = sum(As * As).item(),
               diag = sum(square(A * eye(4, f64))).item();
  for (bool gaussian : {true, false}) {
    Generator g(gaussian ? 31 : 32);
    const int64_t n = 200000;
    const Tensor v = gaussian ? randn({n, 4}, g, f64) : rademacher({n, 4}, g, f64);
    const std::vector<double> est = sum(matmul(v, A.mT()) * v, {1}).to_vector();  // v^T A v
    const std::string kind = gaussian ? "gaussian" : "rademacher";
    rows.push_back(
        mean_within("hutchinson: unbiased (" + kind + ")", "E[v^T A v] = tr A", est, tr));
    // variance against its closed form, with the standard error of a sample variance
    double m = 0;
    for (double e : est) m += e;
    m /= double(n);
    std::vector<double> sq(est.size());
    for (std::size_t i = 0; i < est.size(); ++i) sq[i] = (est[i] - m) * (est[i] - m);
    const double expect = gaussian ? 2 * fro : 2 * (fro - diag);
    rows.push_back(mean_within("hutchinson: variance (" + kind + ")",
                               gaussian ? "Var = 2 |A_s|_F^2" : "Var = 2 (|A_s|_F^2 - sum A_ii^2)",
                               sq, expect));
  }
  return rows;
}

std::vector<IdentityResult> sliced() {
  std::vector<IdentityResult> rows;
  Generator g(303);
  const Model m(4);
  const Tensor x = sample_gaussian(8, g);
  NoGradGuard values_only;
  const Tensor ism = implicit_sm_per_sample(m, x);
  const int K = 4000;
  struct Case {
    const char* name;
    Projection p;
    bool vr;
    double scale;
  } cases[] = {{"ssm (gaussian)", Projection::gaussian, false, 1.0},
               {"ssm (rademacher)", Projection::rademacher, false, 1.0},
               {"ssm (unit sphere) = ISM / D", Projection::sphere, false, 0.5},
               {"ssm-vr (gaussian)", Projection::gaussian, true, 1.0},
               {"ssm-vr (rademacher)", Projection::rademacher, true, 1.0}};
  for (const Case& c : cases) {
    // Sample mean of ssm over K projections per sample, for the sample with the worst z.
    // K projections per sample, each evaluated on its own copy of the batch so that every
    // projection's value is kept (for the standard error).
    const Tensor v = draw_projections(c.p, x, K, g);
    const Tensor xk = reshape(expand(unsqueeze(x, 0), {K, 8, 2}), {K * 8, 2});
    const Tensor vals = reshape(ssm_per_sample_with(m, xk, reshape(v, {K * 8, 2}), c.vr), {K, 8});
    IdentityResult worst;
    double wz = -1;
    for (int i = 0; i < 8; ++i) {
      IdentityResult r =
          mean_within(std::string("sliced: ") + c.name, "E_v[SSM] = ISM (times E[v v^T])",
                      select(vals, 1, i).to_vector(), ism.to_vector()[i] * c.scale);
      const double z = std::abs(r.estimate - r.reference) / r.std_error;
      if (z > wz) wz = z, worst = r;
    }
    rows.push_back(worst);
  }
  return rows;
}

// Quadratic energy E(x) = 1/2 (x - b)^T Q (x - b): every FD expansion is exact.
std::vector<IdentityResult> fd_ssm() {
  std::vector<IdentityResult> rows;
  Generator g(404);
  const double q[4] = {1.5, 0.4, 0.4, 0.8};
  const Tensor Q = mat(q, 2, 2), b = from_vector({0.3, -0.2}, {2}, f64);
  const EnergyFn E = [&](const Tensor& x) { return sum(matmul(x - b, Q) * (x - b), {1}) * 0.5; };
  const ScoreFn s = [&](const Tensor& x) { return -matmul(x - b, Q); };
  const Tensor x = sample_gaussian(16, g);
  const Tensor u = draw_projection(Projection::sphere, x, g);
  const double ssm_u = ssm_with(s, x, u).item();
  for (double eps : {1e-3, 0.1, 1.0}) {
    rows.push_back(deterministic(
        "fd-ssm: exact for a quadratic energy (eps " + std::to_string(eps).substr(0, 5) + ")",
        "FD-SSM(E, eps u) = D SSM(-grad E, u)", fd_ssm_energy_with(E, x, u * eps).item(),
        2.0 * ssm_u, 1e-12 * std::max(1.0, std::abs(ssm_u)) / (eps * eps)));
  }
  // The score-network (VR) form on a linear score: 1/2 |s|^2 + D u^T (ds/dx) u exactly.
  const double vr =
      (mean(per_sample(s(x) * s(x)) * 0.5) +
       2.0 * (ssm_with(s, x, u) - mean(per_sample(s(x) * u) * per_sample(s(x) * u) * 0.5)))
          .item();
  rows.push_back(deterministic("fd-ssm: exact for a linear score network (eps 0.1)",
                               "FD-SSM_VR(s, eps u) = 1/2|s|^2 + D u^T J u",
                               fd_ssm_score_with(s, x, u * 0.1).item(), vr, 1e-9));
  // Smooth non-quadratic energy: the error falls as eps^2.
  // log cosh x = softplus(2x) - x - log 2
  const EnergyFn E2 = [](const Tensor& x) {
    return sum(softplus(x * 2.0) - x + x * x * x * x * 0.1 + x * 0.3, {1});
  };
  const ScoreFn s2 = score_of_energy(E2);
  const double exact = 2.0 * ssm_with(s2, x, u).item();
  std::vector<double> errs, epss = {0.2, 0.1, 0.05};
  for (double eps : epss)
    errs.push_back(std::abs(fd_ssm_energy_with(E2, x, u * eps).item() - exact));
  const double slope =
      (std::log(errs[0]) - std::log(errs[2])) / (std::log(epss[0]) - std::log(epss[2]));
  rows.push_back(deterministic("fd-ssm: converges at O(eps^2) (non-quadratic)",
                               "slope of log|FD-SSM - D SSM| vs log eps = 2", slope, 2.0, 0.15));
  return rows;
}

// Solves H d = -g for a small dense system (Gaussian elimination with partial pivoting).
std::vector<double> newton_step(std::vector<double> H, std::vector<double> g) {
  const std::size_t n = g.size();
  for (std::size_t c = 0; c < n; ++c) {
    std::size_t p = c;
    for (std::size_t r = c + 1; r < n; ++r)
      if (std::abs(H[r * n + c]) > std::abs(H[p * n + c])) p = r;
    for (std::size_t k = 0; k < n; ++k) std::swap(H[c * n + k], H[p * n + k]);
    std::swap(g[c], g[p]);
    for (std::size_t r = c + 1; r < n; ++r) {
      const double f = H[r * n + c] / H[c * n + c];
      for (std::size_t k = c; k < n; ++k) H[r * n + k] -= f * H[c * n + k];
      g[r] -= f * g[c];
    }
  }
  std::vector<double> d(n);
  for (std::size_t i = n; i-- > 0;) {
    double acc = -g[i];
    for (std::size_t k = i + 1; k < n; ++k) acc -= H[i * n + k] * d[k];
    d[i] = acc / H[i * n + i];
  }
  return d;
}

std::vector<IdentityResult> dsm_minimiser() {
  // Linear model s(x) = -x A^T + c; DSM is quadratic in theta = (A, c), so one Newton step from
  // anywhere lands on the minimiser of the sample objective.
  Generator g(505);
  const double sigma = 0.5;
  const Tensor x = sample_gaussian(400000, g), z = randn_like(x, g);
  auto loss = [&](const Tensor& theta) {
    const Tensor A = reshape(slice(theta, 0, 0, 4), {2, 2}), c = slice(theta, 0, 4, 6);
    return dsm_with([&](const Tensor& u) { return -matmul(u, A.mT()) + c; }, x, sigma, z, 0.0);
  };
  const Tensor theta0 = zeros({6}, f64);
  const auto gvec = grad(loss, theta0).to_vector();
  const auto H = hessian(loss, theta0).to_vector();
  const std::vector<double> d = newton_step(H, gvec);
  const Tensor A = from_vector({d[0], d[1], d[2], d[3]}, {2, 2}, f64),
               c = from_vector({d[4], d[5]}, {2}, f64);
  const Tensor A_true = inv2(sigma_plus(sigma * sigma));
  const Tensor b = matmul(inv2(A), c);  // s = -(x - b) A^T  =>  c = A b
  return {
      deterministic("dsm: minimiser is the noisy score (A)",
                    "argmin DSM: A = (Sigma + sigma^2 I)^-1 (max abs error)",
                    max(abs(A - A_true)).item(), 0.0, 0.01),
      deterministic("dsm: minimiser is the noisy score (b)", "argmin DSM: b = mu (max abs error)",
                    max(abs(b - mu())).item(), 0.0, 0.01)};
}

std::vector<Identity> builtin_identities() {
  std::vector<Identity> ids = {{"hyvarinen", hyvarinen},   {"vincent", vincent},
                               {"hutchinson", hutchinson}, {"sliced", sliced},
                               {"fd-ssm", fd_ssm},         {"dsm-minimiser", dsm_minimiser}};
  for (Identity& id : elbo_identities()) ids.push_back(std::move(id));
  for (Identity& id : ode_identities()) ids.push_back(std::move(id));
  for (Identity& id : vdm_identities()) ids.push_back(std::move(id));
  return ids;
}
struct Catalogue {
  std::mutex m;
  std::vector<Identity> items = builtin_identities();
};
Catalogue& catalogue() {
  static Catalogue c;
  return c;
}

}  // namespace

void register_identity(Identity id) {
  std::lock_guard lock(catalogue().m);
  catalogue().items.push_back(std::move(id));
}
const std::vector<Identity>& identities() { return catalogue().items; }

std::vector<IdentityResult> run_identities(const std::string& filter) {
  std::vector<IdentityResult> rows;
  for (const Identity& id : identities()) {
    if (!filter.empty() && id.name.find(filter) == std::string::npos) continue;
    for (IdentityResult& r : id.run()) rows.push_back(std::move(r));
  }
  return rows;
}

void print_identity_table(std::ostream& os, const std::vector<IdentityResult>& rows) {
  os << std::left << std::setw(58) << "identity" << std::right << std::setw(15) << "estimate"
     << std::setw(15) << "reference" << std::setw(11) << "std err" << std::setw(16) << "tolerance"
     << "  verdict\n";
  int failed = 0;
  for (const IdentityResult& r : rows) {
    std::ostringstream tol;
    if (r.statistical) {
      tol << r.tolerance << " s.e.";
    } else {
      tol << std::setprecision(2) << r.tolerance << " abs";
    }
    os << std::left << std::setw(58) << r.name.substr(0, 57) << std::right << std::setprecision(8)
       << std::setw(15) << r.estimate << std::setw(15) << r.reference << std::setprecision(3)
       << std::setw(11) << r.std_error << std::setw(16) << tol.str() << "  "
       << (r.pass ? "pass" : "FAIL") << "\n";
    failed += !r.pass;
  }
  os << rows.size() - failed << " passed, " << failed << " failed\n";
}

}  // namespace sg::obj
