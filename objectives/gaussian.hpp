// Gaussian data N(mu, Sigma) under a linear SDE, in closed form: the workhorse of the identity
// catalogue. All marginals are Gaussian, q_t = N(alpha mu, alpha^2 Sigma + std^2 I), and share
// Sigma's eigenvectors, so scores, densities and the probability-flow map are exact.
//
//   sg::obj::GaussianData G(mu, Sigma);          // float64 tensors [D], [D, D]
//   auto s = G.score(x, t, sde);                 // grad log q_t(x), t: [B]
//
// Results lie on their argument x's device (the [D] and [D, D] constants are copied there when
// they live elsewhere); sample() draws on mu's device unless given one.
#pragma once
#include "autodiff/core/rng.hpp"
#include "autodiff/core/tensor.hpp"
#include "sde/sde.hpp"

namespace sg::obj {

class GaussianData {
 public:
  GaussianData(const Tensor& mu, const Tensor& Sigma);  // Sigma symmetric positive definite
  // The spec's test case G: D = 2, mu = (1, -0.5), Sigma = [[1, 0.6], [0.6, 2]].
  static GaussianData case_g();
  int64_t dims() const { return mu_.numel(); }
  const Tensor& mu() const { return mu_; }
  Tensor sample(int64_t n, Generator& gen) const;  // from q_0, on mu's device
  Tensor sample(int64_t n, Generator& gen, Device device) const;
  Tensor score(const Tensor& x, const Tensor& t, const Sde& sde) const;        // grad log q_t(x)
  Tensor log_density(const Tensor& x, const Tensor& t, const Sde& sde) const;  // log q_t(x), [B]
  Tensor score0(const Tensor& x) const;                                        // grad log q_0
  Tensor log_density0(const Tensor& x) const;                                  // log q_0, [B]
  // The probability-flow ODE's exact map from time s to time t of points x ([B, D]).
  Tensor flow(const Tensor& x, double s, double t, const Sde& sde) const;
  double entropy() const;  // H(q_0) = ½ log det(2 pi e Sigma)

 private:
  struct Constants {
    Tensor mu, V, lambda;
  };
  Constants on(Device d) const;  // mu_, V_, lambda_ on d
  // per-eigendirection variances alpha^2 lambda + std^2 at times t ([B] -> [B, D]), on t's device
  Tensor variances(const Tensor& t, const Sde& sde, Tensor* alpha) const;
  Tensor mu_, V_, lambda_;  // Sigma = V diag(lambda) V^T
};

}  // namespace sg::obj
