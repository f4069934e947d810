// The objective registry: every training objective by name, built-in or registered by a
// researcher, with one signature, so the benchmarks, the tests and the command line treat a
// new objective exactly like the built-in ones.
//
//   sg::obj::register_objective({"my-ssm", "SSM with 4 sphere projections", true,
//     [](const sg::obj::TimeScoreFn& s, const sg::Tensor& x, sg::Generator& g, const
//     sg::obj::ObjectiveConfig& c) {
//       return sg::obj::sliced_in_time(s, x, g, c, [&](const sg::obj::ScoreFn& st, const
//       sg::Tensor& xt) {
//         return sg::obj::ssm_per_sample(st, xt, g, {.projection = sg::obj::Projection::sphere,
//         .projections = 4});
//       });
//     }});
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "objectives/objectives.hpp"

namespace sg::obj {

struct ObjectiveConfig {
  const Sde* sde = nullptr;  // required by every time-conditioned objective
  double t_eps = 1e-5;
  double fd_eps = 0.1;  // finite-difference radius
  int projections = 1;
  Projection projection = Projection::rademacher;
  Weighting weighting = Weighting::variance;
  TimeSampling sampling = TimeSampling::uniform;
};

using Objective = std::function<Tensor(const TimeScoreFn& s, const Tensor& x, Generator& gen,
                                       const ObjectiveConfig& cfg)>;

struct ObjectiveInfo {
  std::string name;
  std::string description;
  bool second_order;  // differentiates the model inside the loss (needs a double-backward graph)
  Objective fn;
};

// Adds (or replaces) an objective; returns its position.
std::size_t register_objective(ObjectiveInfo info);
const ObjectiveInfo& find_objective(const std::string& name);  // ValueError listing the names
std::vector<std::string> objective_names();

// A per-sample objective J applied to the perturbed data of an SDE at t ~ U(t_eps, T), weighted
// by lambda(t) = std(t)^2:  E_t std^2 J(s(., t), x_t).  The built-in ssm, ssm-vr, ism and fd-ssm
// are this with their per-sample estimators.
Tensor sliced_in_time(
    const TimeScoreFn& s, const Tensor& x, Generator& gen, const ObjectiveConfig& cfg,
    const std::function<Tensor(const ScoreFn& st, const Tensor& xt)>& per_sample_objective);

}  // namespace sg::obj
