// Closed forms for Gaussian data under linear SDEs (see gaussian.hpp).
#include "objectives/gaussian.hpp"

#include <Eigen/Eigenvalues>
#include <cmath>

#include "autodiff/ops/ops.hpp"

namespace sg::obj {

GaussianData::GaussianData(const Tensor& mu, const Tensor& Sigma) : mu_(mu.to(DType::f64)) {
  const int64_t D = mu.numel();
  if (!(Sigma.shape() == Shape({D, D})))
    fail<ShapeError>("GaussianData: Sigma ", describe(Sigma), " for mu ", describe(mu));
  const std::vector<double> s = Sigma.to_vector();
  Eigen::MatrixXd S(D, D);
  for (int64_t i = 0; i < D; ++i)
    for (int64_t j = 0; j < D; ++j) S(i, j) = s[static_cast<std::size_t>(i * D + j)];
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(S);
  if (es.info() != Eigen::Success || es.eigenvalues().minCoeff() <= 0)
    fail<ValueError>("GaussianData: Sigma is not symmetric positive definite");
  std::vector<double> v(static_cast<std::size_t>(D * D)), l(static_cast<std::size_t>(D));
  for (int64_t i = 0; i < D; ++i) {
    l[static_cast<std::size_t>(i)] = es.eigenvalues()(i);
    for (int64_t j = 0; j < D; ++j)
      v[static_cast<std::size_t>(i * D + j)] = es.eigenvectors()(i, j);
  }
  V_ = from_vector(v, {D, D}, DType::f64, mu.device());
  lambda_ = from_vector(l, {D}, DType::f64, mu.device());
}
GaussianData::Constants GaussianData::on(Device d) const {
  if (d == mu_.device()) return {mu_, V_, lambda_};
  return {mu_.to(d), V_.to(d), lambda_.to(d)};
}
GaussianData GaussianData::case_g() {
  return GaussianData(from_vector({1.0, -0.5}, {2}, DType::f64),
                      from_vector({1.0, 0.6, 0.6, 2.0}, {2, 2}, DType::f64));
}

Tensor GaussianData::sample(int64_t n, Generator& gen) const {
  return sample(n, gen, mu_.device());
}
Tensor GaussianData::sample(int64_t n, Generator& gen, Device device) const {
  // x = mu + (z sqrt(lambda)) V^T
  const Constants c = on(device);
  return matmul(randn({n, dims()}, gen, DType::f64, device) * sqrt(c.lambda), c.V.mT()) + c.mu;
}
Tensor GaussianData::variances(const Tensor& t, const Sde& sde, Tensor* alpha) const {
  const auto [a, sd] = sde.marginal(t.to(DType::f64));
  if (alpha) *alpha = a;
  return unsqueeze(a * a, -1) * on(t.device()).lambda + unsqueeze(sd * sd, -1);
}
// -(x - alpha mu) Sigma_t^-1, in the eigenbasis
Tensor GaussianData::score(const Tensor& x, const Tensor& t, const Sde& sde) const {
  const Constants c = on(x.device());
  Tensor a;
  const Tensor var = variances(t, sde, &a);
  const Tensor d = matmul(x.to(DType::f64) - unsqueeze(a, -1) * c.mu, c.V);
  return (-matmul(d / var, c.V.mT())).to(x.dtype());
}
Tensor GaussianData::log_density(const Tensor& x, const Tensor& t, const Sde& sde) const {
  const Constants c = on(x.device());
  Tensor a;
  const Tensor var = variances(t, sde, &a);
  const Tensor d = matmul(x.to(DType::f64) - unsqueeze(a, -1) * c.mu, c.V);
  return sum(d * d / var + log(var * (2 * M_PI)), {1}) * -0.5;
}
Tensor GaussianData::score0(const Tensor& x) const {
  const Constants c = on(x.device());
  return (-matmul(matmul(x.to(DType::f64) - c.mu, c.V) / c.lambda, c.V.mT())).to(x.dtype());
}
Tensor GaussianData::log_density0(const Tensor& x) const {
  const Constants c = on(x.device());
  const Tensor d = matmul(x.to(DType::f64) - c.mu, c.V);
  return sum(d * d / c.lambda + log(c.lambda * (2 * M_PI)), {1}) * -0.5;
}
// x_t = m_t + (x_s - m_s) V diag(sqrt(var_t / var_s)) V^T
Tensor GaussianData::flow(const Tensor& x, double s, double t, const Sde& sde) const {
  const Constants c = on(x.device());
  Tensor as, at;
  const Tensor vs = variances(full({1}, s, DType::f64, x.device()), sde, &as),
               vt = variances(full({1}, t, DType::f64, x.device()), sde, &at);
  const Tensor d = matmul(x.to(DType::f64) - c.mu * as.item(), c.V) * sqrt(vt / vs);
  return matmul(d, c.V.mT()) + c.mu * at.item();
}
double GaussianData::entropy() const {
  return 0.5 * sum(log(lambda_ * (2 * M_PI * std::exp(1.0)))).item();
}

}  // namespace sg::obj
