// Statistical checks of stochastic estimators: is the mean of an estimator equal to a known
// value, or to the mean of another estimator, within a stated number of standard errors?
// Estimators may return tensors: every element is checked (the report names the worst).
//
//   auto check = sg::mean_equals([&](sg::Generator& g) { return hutchinson_trace(A, g); },
//                                exact, {.samples = 20000, .sigmas = 4});
//   std::cout << check;   // estimate, reference, standard error, z, verdict
#pragma once
#include <functional>
#include <iosfwd>
#include <string>

#include "autodiff/core/rng.hpp"
#include "autodiff/core/tensor.hpp"

namespace sg {

struct MeanCheckOptions {
  int samples = 1000;   // independent calls of the estimator
  double sigmas = 4.0;  // pass if |estimate - reference| <= sigmas * standard error
  uint64_t seed = 0;
};

struct MeanCheck {
  std::string name;
  double estimate = 0;  // of the worst element
  double reference = 0;
  double std_error = 0;  // of (estimate - reference)
  double variance = 0;   // per-sample variance of the estimator (worst element)
  double z = 0;          // (estimate - reference) / std_error, largest in magnitude
  int64_t elements = 1;
  int samples = 0;
  double sigmas = 0;
  bool pass = false;
};
std::ostream& operator<<(std::ostream& os, const MeanCheck& c);

using Estimator = std::function<Tensor(Generator&)>;
// E[estimator] == reference (a tensor of the estimator's shape, or a scalar).
MeanCheck mean_equals(const Estimator& est, const Tensor& reference, MeanCheckOptions o = {},
                      std::string name = "mean_equals");
MeanCheck mean_equals(const Estimator& est, double reference, MeanCheckOptions o = {},
                      std::string name = "mean_equals");
// E[a] == E[b], each call of a and b drawing from its own stream (independent samples).
MeanCheck means_equal(const Estimator& a, const Estimator& b, MeanCheckOptions o = {},
                      std::string name = "means_equal");

}  // namespace sg
