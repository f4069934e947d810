// Statistical checks of stochastic estimators, each with its standard error and a verdict:
//   - mean_equals / means_equal: E[X] equals a known value, or E[X] = E[Y] from independent
//     samples;
//   - variance_equals: Var[X] equals a known value (standard error from the fourth moment);
//   - paired_compare: X and Y drawn with common random numbers (both from the same generator
//     state each sample): E[X - Y] = 0 with the paired standard error, plus both variances and
//     their ratio with its delta-method standard error ("is Y's variance lower?").
// Estimators may return tensors: every element is checked and reported (`elements`); the
// summary fields describe the element with the largest |z|.
//
//   auto check = sg::mean_equals([&](sg::Generator& g) { return hutchinson_trace(A, g); },
//                                exact, {.samples = 20000, .sigmas = 4});
//   std::cout << check;   // estimate, reference, standard error, z, verdict, every element
#pragma once
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "autodiff/core/rng.hpp"
#include "autodiff/core/tensor.hpp"

namespace sg {

struct MeanCheckOptions {
  int samples = 1000;   // independent calls of the estimator
  double sigmas = 4.0;  // pass if |estimate - reference| <= sigmas * standard error
  uint64_t seed = 0;
};

// One element of a check.
struct ElementCheck {
  double estimate = 0, reference = 0, std_error = 0, z = 0;
  bool pass = false;
};

struct MeanCheck {
  std::string name;
  std::vector<ElementCheck> per_element;  // every element, in row-major order
  int64_t failed = 0;                     // elements with |z| > sigmas
  double estimate = 0;                    // of the worst element
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
// Var[est] == reference, elementwise: the sample variance s^2 against the reference with
// standard error sqrt((m4 - s^4 (n-3)/(n-1)) / n), m4 the fourth central moment.
MeanCheck variance_equals(const Estimator& est, const Tensor& reference, MeanCheckOptions o = {},
                          std::string name = "variance_equals");
MeanCheck variance_equals(const Estimator& est, double reference, MeanCheckOptions o = {},
                          std::string name = "variance_equals");

// Two estimators of the same quantity compared on common random numbers.
struct PairedCheck {
  std::string name;
  MeanCheck difference;  // E[a - b] == 0 with the paired standard error
  // Per element: Var[a], Var[b], log(Var[b] / Var[a]) and its standard error (delta method on
  // the paired samples). log_ratio > 0: b is noisier than a.
  std::vector<double> var_a, var_b, log_ratio, log_ratio_se;
  // Verdict of the variance comparison for every element: b's variance is larger than a's
  // by more than `sigmas` standard errors (a reduces the variance).
  bool a_less_noisy = false;
  int samples = 0;
  double sigmas = 0;
};
std::ostream& operator<<(std::ostream& os, const PairedCheck& c);
PairedCheck paired_compare(const Estimator& a, const Estimator& b, MeanCheckOptions o = {},
                           std::string name = "paired_compare");

}  // namespace sg
