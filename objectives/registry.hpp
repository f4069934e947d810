// The objective registry: every training objective by name, built-in or registered by a
// researcher, with one signature, so the benchmarks, the tests and the command line treat a
// new objective exactly like the built-in ones. Each declares the settings it honours; any
// other setting changed from its default is refused (OptionError), never silently ignored.
//
//   sg::obj::register_objective({"my-ssm", "SSM with P sphere projections", true,
//     [](const sg::obj::TimeScoreFn& s, const sg::Tensor& x, sg::Generator& g,
//        const sg::obj::ObjectiveConfig& c) {
//       return sg::obj::sliced_in_time(s, x, g, c, [&](const sg::obj::ScoreFn& st,
//                                                      const sg::Tensor& xt) {
//         return sg::obj::ssm_per_sample(
//             st, xt, g, {.projection = sg::obj::Projection::sphere, .projections =
//             c.projections});
//       });
//     },
//     {{"t_eps"}, {"weighting"}, {"time_sampling"}, {"projections"}}});
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "objectives/objectives.hpp"
#include "objectives/vdm.hpp"

namespace sg::obj {

// The noise schedules of objective "vdm" (objectives/vdm_schedule.hpp), by their names.
enum class VdmSchedule { fixed, learned_scalar, monotone_net, learned_endpoints, vp };
const char* name_of(VdmSchedule s);
VdmSchedule vdm_schedule_from_name(const std::string& name);  // OptionError "schedule" if unknown
const char* name_of(ScheduleGradient g);
ScheduleGradient schedule_gradient_from_name(const std::string& name);  // OptionError

struct ObjectiveConfig {
  const Sde* sde = nullptr;  // required by every time-conditioned objective
  double t_eps = 1e-5;
  double fd_eps = 0.1;  // finite-difference radius
  int projections = 1;
  Projection projection = Projection::rademacher;
  Weighting weighting = Weighting::variance;
  TimeSampling sampling = TimeSampling::uniform;
  // vdm: the schedule to build (make_vdm_schedule) and the loss's options (vdm_options).
  VdmSchedule schedule = VdmSchedule::learned_endpoints;
  double gamma_min = -13.3, gamma_max = 5.0;  // the schedule's range at initialisation
  int64_t levels = 256;                       // the data's levels (the digits: 17)
  int64_t timesteps = 0;                      // 0: continuous time
  bool antithetic = true;
  bool fourier_features = false;
  ScheduleGradient schedule_gradient = ScheduleGradient::automatic;
  // The schedule module the vdm loss uses (required by vdm; owned and trained by the caller).
  NoiseSchedule* noise_schedule = nullptr;
};

using Objective = std::function<Tensor(const TimeScoreFn& s, const Tensor& x, Generator& gen,
                                       const ObjectiveConfig& cfg)>;

// A setting of ObjectiveConfig that an objective honours, by name: "t_eps", "fd_eps",
// "projections", "projection", "weighting", "time_sampling", or vdm's "schedule", "gamma_min",
// "gamma_max", "levels", "timesteps", "antithetic", "fourier_features", "schedule_gradient" (the
// `sde` is always needed; vdm needs the `noise_schedule` too),
// with, for a choice, the values the objective supports (empty: all of them).
struct ObjectiveOption {
  std::string name;
  std::vector<std::string> values;
};

struct ObjectiveInfo {
  std::string name;
  std::string description;
  bool second_order;  // differentiates the model inside the loss (needs a double-backward graph)
  Objective fn;
  // The settings the objective honours. Any other setting must keep ObjectiveConfig{}'s default:
  // the registry's fn refuses a configuration it would silently ignore (see check_config).
  std::vector<ObjectiveOption> options;
};

// The settings' names in ObjectiveConfig order, and a setting's value as text ("sphere", "1e-05").
const std::vector<std::string>& objective_option_names();
std::string option_value(const ObjectiveConfig& cfg, const std::string& option);

// A configuration an objective does not honour; `option` names the setting.
struct OptionError : ValueError {
  OptionError(std::string option_name, const std::string& message);
  std::string option;
};
// Refuses (OptionError) a setting `info` does not declare that differs from ObjectiveConfig{}'s
// default, a choice outside the values it declares, and out-of-range values: t_eps in (0, T),
// fd_eps finite and > 0, projections >= 1, gamma_min < gamma_max (both finite), levels >= 2,
// timesteps >= 0. The registry's objectives run it on every call.
void check_config(const ObjectiveInfo& info, const ObjectiveConfig& cfg);

// Adds (or replaces) an objective; returns its position. Its fn is wrapped to call
// check_config first.
std::size_t register_objective(ObjectiveInfo info);
const ObjectiveInfo& find_objective(const std::string& name);  // ValueError listing the names
std::vector<std::string> objective_names();

// Objective "vdm" (the negative VLB in nats per example, objectives/vdm.hpp): s is the network
// net(z, c) behind the base-measure skip, x the data's integer levels. Its fn returns the loss,
// whose gradient trains every schedule parameter on the VLB; a training loop that wants the
// variance-minimising schedule gradient calls vdm_value_and_grad with vdm_options(cfg).
// The schedule cfg names (range gamma_min..gamma_max; vp: the VP SDE cfg.sde with t_eps 1e-5),
// its monotone networks' weights drawn from gen; OptionError naming "schedule", "gamma_min" or
// "gamma_max" for what the schedule refuses (vp without a VpSde, gamma_min >= gamma_max).
std::unique_ptr<NoiseSchedule> make_vdm_schedule(const ObjectiveConfig& cfg, Generator& gen);
VdmOptions vdm_options(const ObjectiveConfig& cfg);

// A per-sample objective J applied to the perturbed data of an SDE, weighted over time:
//   (1 / (T - t_eps)) int_{t_eps}^T lambda(t) E J(s(., t), x_t) dt,
// lambda = std(t)^2 (cfg.weighting variance) or g(t)^2 (likelihood); t uniform on [t_eps, T], or
// importance-sampled from q ~ g^2 / std^2 (cfg.sampling, as dsm_sde: each term divided by
// q(t) (T - t_eps)). The built-in ssm, ssm-vr, ism and fd-ssm are this with their per-sample
// estimators.
Tensor sliced_in_time(
    const TimeScoreFn& s, const Tensor& x, Generator& gen, const ObjectiveConfig& cfg,
    const std::function<Tensor(const ScoreFn& st, const Tensor& xt)>& per_sample_objective);

}  // namespace sg::obj
