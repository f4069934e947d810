// Noise schedules of Variational Diffusion Models (Kingma, Salimans, Poole & Ho 2021), as
// modules: gamma(t) = -log SNR(t), increasing on [0, 1], with
//   sigma_t^2 = sigmoid(gamma(t)),  alpha_t^2 = sigmoid(-gamma(t)),  SNR(t) = e^{-gamma(t)}.
// Owns the fixed linear, learned scalar, monotone-network and learned-endpoint schedules, the map
// from a VP SDE's beta schedule to gamma, gamma'(t) by forward mode, and the monotonicity check.
//
//   sg::obj::MonotoneNetSchedule gamma({.gamma_min = -13.3, .gamma_max = 5.0}, gen);
//   auto [g, dg] = sg::obj::gamma_and_derivative(gamma, t);   // gamma(t), gamma'(t) (JVP)
//
// A schedule's parameters live on the module's dtype and device (Module::to); t must match them.
// Every schedule maps t of any shape to gamma of the same shape.
#pragma once
#include <string>
#include <utility>

#include "autodiff/core/error.hpp"
#include "autodiff/core/rng.hpp"
#include "nn/module.hpp"
#include "sde/sde.hpp"

namespace sg::obj {

// An invalid schedule configuration: names the schedule ("fixed", "learned_scalar", ...) and the
// field ("gamma_min", "features", ...).
struct ScheduleError : ValueError {
  ScheduleError(std::string schedule_name, std::string field_name, const std::string& message);
  std::string schedule, field;
};

struct ScheduleRange {
  double gamma_min = -13.3;  // gamma(0) at initialisation (SNR_max = e^{13.3})
  double gamma_max = 5.0;    // gamma(1) at initialisation (alpha_1^2 = sigmoid(-5) = 0.0067)
};

class NoiseSchedule : public nn::Module {
 public:
  virtual std::string name() const = 0;
  // gamma(t), t in [0, 1] of any shape; the result has t's shape.
  virtual Tensor operator()(const Tensor& t) const = 0;
  // gamma(0) and gamma(1) as 0-d tensors of `like`'s dtype and device (default: evaluated).
  virtual std::pair<Tensor, Tensor> endpoints(const Tensor& like) const;
  // True for a parameter (by its dotted name) that only shapes gamma between its endpoints: the
  // continuous VLB does not depend on it in expectation, so it may be trained on the diffusion
  // estimator's variance instead (see vdm.hpp). Default: none.
  virtual bool is_interior(const std::string& parameter_name) const;
  // The configured range, also the normalisation of the network's gamma conditioning.
  double gamma_min() const { return range_.gamma_min; }
  double gamma_max() const { return range_.gamma_max; }

 protected:
  // Validates the range (finite, gamma_min < gamma_max; ScheduleError naming `schedule_name`).
  NoiseSchedule(const std::string& schedule_name, ScheduleRange r);
  ScheduleRange range_;
};

// gamma = gamma_min + (gamma_max - gamma_min) t; no parameters.
class FixedLinearSchedule : public NoiseSchedule {
 public:
  explicit FixedLinearSchedule(ScheduleRange r = {});
  std::string name() const override { return "fixed"; }
  Tensor operator()(const Tensor& t) const override;
};

// gamma = b + |w| t, initialised at b = gamma_min, w = gamma_max - gamma_min.
class LearnedScalarSchedule : public NoiseSchedule {
 public:
  explicit LearnedScalarSchedule(ScheduleRange r = {}, DType dtype = DType::f32);
  std::string name() const override { return "learned_scalar"; }
  Tensor operator()(const Tensor& t) const override;
  Tensor &b, &w;
};

// Dense layer with a non-negative kernel: y = x |W| + b (W: [in, out]); increasing in x.
class DenseMonotone : public nn::Module {
 public:
  DenseMonotone(Tensor weight, Tensor bias);  // bias undefined: none
  Tensor operator()(const Tensor& x) const;
  Tensor& weight;
  Tensor* bias = nullptr;
};

struct MonotoneNetOptions {
  ScheduleRange range;
  int64_t features = 1024;  // width of the hidden monotone layer
  double init_std = 0.01;   // N(0, init_std^2) for the hidden and output kernels
  DType dtype = DType::f32;
};
// The monotone network body h(t) = l1(t) + l3(phi(l2(2t - 1))) / features, phi(h) =
// 2 (sigmoid(h) - 1/2): l1 1 -> 1 (init W = l1_weight, bias l1_bias when `l1_has_bias`), l2
// 1 -> features with bias (init W ~ N(0, init_std^2), b = 0), l3 features -> 1 without bias
// (W ~ N(0, init_std^2)). Increasing for any parameters (|W| everywhere, phi increasing);
// strictly when l1's W != 0.
class MonotoneNet : public nn::Module {
 public:
  MonotoneNet(double l1_weight, bool l1_has_bias, double l1_bias, const MonotoneNetOptions& o,
              Generator& gen);
  Tensor operator()(const Tensor& t) const;  // t of any shape
  DenseMonotone &l1, &l2, &l3;
  int64_t features;
};

// The public VDM code's learnable_nnet: gamma = h(t) with l1 initialised at W = gamma_max -
// gamma_min, b = gamma_min (parameters "net.l1.weight", "net.l1.bias", "net.l2.*", "net.l3.*").
// Its endpoints are entangled with its shape: every parameter follows the VLB.
class MonotoneNetSchedule : public NoiseSchedule {
 public:
  MonotoneNetSchedule(MonotoneNetOptions o, Generator& gen);
  std::string name() const override { return "monotone_net"; }
  Tensor operator()(const Tensor& t) const override;
  MonotoneNet& net;
};

// The paper's form, endpoints as their own parameters:
//   gamma(t) = gamma_0 + |delta| s(t),  s(t) = (h(t) - h(0)) / (h(1) - h(0)),
// h a MonotoneNet without l1 bias (it cancels), init W = 1, so s(t) = t + O(init_std^2) at the
// start. s(0) = 0 and s(1) = 1 for every h, so gamma(0) = gamma_0 and gamma(1) = gamma_0 +
// |delta| (gamma_1 > gamma_0 by construction) while h's parameters ("shape.*", the interior)
// only move gamma between them. Initialised at gamma_0 = gamma_min, delta = gamma_max -
// gamma_min.
class LearnedEndpointsSchedule : public NoiseSchedule {
 public:
  LearnedEndpointsSchedule(MonotoneNetOptions o, Generator& gen);
  std::string name() const override { return "learned_endpoints"; }
  Tensor operator()(const Tensor& t) const override;
  std::pair<Tensor, Tensor> endpoints(const Tensor& like) const override;
  bool is_interior(const std::string& parameter_name) const override;
  Tensor normalised_shape(const Tensor& t) const;  // s(t)
  Tensor &gamma_0, &delta;
  MonotoneNet& shape;
};

// The VP SDE on the VDM time axis: alpha_t^2 = e^{-B(t)} = sigmoid(-gamma(t)) gives
//   gamma(t) = log(e^{B(t)} - 1) = B + log(-expm1(-B)),  B(t) = int_0^t beta,
// exact for t > 0 (gamma -> -inf as t -> 0).
Tensor vp_gamma(const VpSde& sde, const Tensor& t);
// The same as a schedule, flat below t_eps (gamma(t) = vp_gamma(max(t, t_eps)), so gamma(0) is
// finite and gamma' = 0 on [0, t_eps)): same time axis as the VP model truncated at t_eps.
// t_eps in (0, 1) (ScheduleError field "t_eps"); no parameters.
class VpSchedule : public NoiseSchedule {
 public:
  explicit VpSchedule(const VpSde& sde, double t_eps = 1e-5);
  std::string name() const override { return "vp"; }
  Tensor operator()(const Tensor& t) const override;
  double t_eps;

 private:
  VpSde sde_;
};

// gamma(t) and gamma'(t) for t of any shape: gamma' by one JVP (forward mode, tangent ones) of
// the schedule. Both keep their reverse-mode history (gamma' is differentiable in the schedule's
// parameters), so a loss on gamma' trains the schedule.
std::pair<Tensor, Tensor> gamma_and_derivative(const NoiseSchedule& schedule, const Tensor& t);

// The dtype and device of a schedule's parameters (float64 on the CPU when it has none).
std::pair<DType, Device> schedule_placement(const NoiseSchedule& schedule);

// ScheduleError (field "monotone") unless gamma is non-decreasing on `points` equally spaced
// times of [0, 1] and gamma(0) < gamma(1) (a check for configurations and loaded checkpoints).
void check_monotone(const NoiseSchedule& schedule, int64_t points = 1001);

}  // namespace sg::obj
