// The objective registry and the built-in objectives: dsm, ssm, ssm-vr, ism, fd-ssm, elbo, vdm.
#include "objectives/registry.hpp"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <sstream>

#include "autodiff/ops/ops.hpp"
#include "objectives/elbo.hpp"

namespace sg::obj {
namespace {

std::vector<ObjectiveInfo> builtins();

const char* name_of(Projection p) {
  return p == Projection::gaussian ? "gaussian" : p == Projection::sphere ? "sphere" : "rademacher";
}
const char* name_of(Weighting w) { return w == Weighting::likelihood ? "likelihood" : "variance"; }
const char* name_of(TimeSampling t) {
  return t == TimeSampling::importance ? "importance" : "uniform";
}
const char* bool_name(bool b) { return b ? "true" : "false"; }
constexpr VdmSchedule kSchedules[] = {VdmSchedule::fixed, VdmSchedule::learned_scalar,
                                      VdmSchedule::monotone_net, VdmSchedule::learned_endpoints,
                                      VdmSchedule::vp};
constexpr ScheduleGradient kScheduleGradients[] = {
    ScheduleGradient::automatic, ScheduleGradient::vlb, ScheduleGradient::variance};
// The value of `E` named `name` among `all`, or an OptionError naming `option` and the choices.
template <class E, std::size_t N>
E from_name(const E (&all)[N], const std::string& name, const char* option) {
  std::string list;
  for (E e : all) {
    if (name == name_of(e)) return e;
    list += (list.empty() ? "" : ", ") + std::string(name_of(e));
  }
  throw OptionError(option, cat("unknown ", option, " '", name, "' (", list, ")"));
}
std::string number(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// The objective with its fn checking the configuration first.
ObjectiveInfo checked(ObjectiveInfo info) {
  info.fn = [inner = std::move(info.fn),
             self = ObjectiveInfo{info.name, "", info.second_order, {}, info.options}](
                const TimeScoreFn& s, const Tensor& x, Generator& g, const ObjectiveConfig& c) {
    check_config(self, c);
    return inner(s, x, g, c);
  };
  return info;
}

struct Registry {
  std::mutex m;
  std::vector<ObjectiveInfo> items = builtins();
};
Registry& registry() {
  static Registry r;
  return r;
}
const Sde& need_sde(const ObjectiveConfig& c, const char* name) {
  if (!c.sde) fail<ValueError>("objective ", name, ": the configuration has no SDE");
  return *c.sde;
}

// Every time-conditioned objective honours these; ssm and ssm-vr add their projections.
std::vector<ObjectiveOption> in_time(std::vector<ObjectiveOption> more = {}) {
  std::vector<ObjectiveOption> o = {{"t_eps", {}}, {"weighting", {}}, {"time_sampling", {}}};
  o.insert(o.end(), more.begin(), more.end());
  return o;
}

std::vector<ObjectiveInfo> builtins() {
  std::vector<ObjectiveInfo> list = {
      {"dsm", "denoising score matching over the SDE (weighting and time sampling from the config)",
       false,
       [](const TimeScoreFn& s, const Tensor& x, Generator& g, const ObjectiveConfig& c) {
         return dsm_sde(s, need_sde(c, "dsm"), x, g,
                        {.weighting = c.weighting, .sampling = c.sampling, .t_eps = c.t_eps});
       },
       in_time()},
      {"ssm", "sliced score matching on perturbed data", true,
       [](const TimeScoreFn& s, const Tensor& x, Generator& g, const ObjectiveConfig& c) {
         return sliced_in_time(s, x, g, c, [&](const ScoreFn& st, const Tensor& xt) {
           return ssm_per_sample(st, xt, g,
                                 {.projection = c.projection, .projections = c.projections});
         });
       },
       in_time({{"projection", {}}, {"projections", {}}})},
      // The variance-reduced form needs E[v v^T] = I: no sphere projections (refused, where they
      // used to be replaced by Gaussian ones without a word).
      {"ssm-vr", "sliced score matching, variance-reduced, on perturbed data", true,
       [](const TimeScoreFn& s, const Tensor& x, Generator& g, const ObjectiveConfig& c) {
         return sliced_in_time(s, x, g, c, [&](const ScoreFn& st, const Tensor& xt) {
           return ssm_per_sample(st, xt, g,
                                 {.projection = c.projection,
                                  .projections = c.projections,
                                  .variance_reduced = true});
         });
       },
       in_time({{"projection", {"rademacher", "gaussian"}}, {"projections", {}}})},
      {"ism", "implicit (Hyvarinen) score matching with the exact trace, on perturbed data", true,
       [](const TimeScoreFn& s, const Tensor& x, Generator& g, const ObjectiveConfig& c) {
         return sliced_in_time(s, x, g, c, [&](const ScoreFn& st, const Tensor& xt) {
           return implicit_sm_per_sample(st, xt);
         });
       },
       in_time()},
      {"fd-ssm",
       "finite-difference sliced score matching (score network, VR form), on perturbed data", false,
       [](const TimeScoreFn& s, const Tensor& x, Generator& g, const ObjectiveConfig& c) {
         return sliced_in_time(s, x, g, c, [&](const ScoreFn& st, const Tensor& xt) {
           return fd_ssm_score_per_sample(st, xt, g, c.fd_eps);
         });
       },
       in_time({{"fd_eps", {}}})},
      // -ELBO / D of the plug-in reverse SDE, denoising form (likelihood-weighted DSM up to a
      // constant): the bound is trained directly, in nats per dimension. Its weighting is the
      // likelihood's by definition.
      {"elbo",
       "negative ELBO of the plug-in reverse SDE per dimension (denoising form)",
       false,
       [](const TimeScoreFn& s, const Tensor& x, Generator& g, const ObjectiveConfig& c) {
         const double dims = static_cast<double>(x.numel() / x.dim(0));
         return -mean(elbo_denoising(need_sde(c, "elbo"), s, x, g,
                                     {.t_eps = c.t_eps, .sampling = c.sampling})) /
                dims;
       },
       {{"t_eps", {}}, {"time_sampling", {}}}},
      // The negative VLB of discrete data (Kingma et al. 2021), nats per example: s is the
      // network behind the base-measure skip, x the data's levels, cfg.noise_schedule the
      // schedule (make_vdm_schedule).
      {"vdm",
       "variational diffusion model: negative VLB of discrete data (nats per example) with a "
       "learned noise schedule",
       false,
       [](const TimeScoreFn& s, const Tensor& x, Generator& g, const ObjectiveConfig& c) {
         if (!c.noise_schedule)
           fail<ValueError>(
               "objective vdm: the configuration has no noise schedule (build one "
               "with make_vdm_schedule)");
         return vdm_loss(*c.noise_schedule, s, x, g, vdm_options(c));
       },
       {{"schedule", {}},
        {"gamma_min", {}},
        {"gamma_max", {}},
        {"levels", {}},
        {"timesteps", {}},
        {"antithetic", {}},
        {"fourier_features", {}},
        {"schedule_gradient", {}}}},
  };
  for (ObjectiveInfo& info : list) info = checked(std::move(info));
  return list;
}

}  // namespace

const char* name_of(VdmSchedule s) {
  switch (s) {
    case VdmSchedule::fixed:
      return "fixed";
    case VdmSchedule::learned_scalar:
      return "learned_scalar";
    case VdmSchedule::monotone_net:
      return "monotone_net";
    case VdmSchedule::vp:
      return "vp";
    case VdmSchedule::learned_endpoints:
      break;
  }
  return "learned_endpoints";
}
VdmSchedule vdm_schedule_from_name(const std::string& name) {
  return from_name(kSchedules, name, "schedule");
}
const char* name_of(ScheduleGradient g) {
  return g == ScheduleGradient::vlb        ? "vlb"
         : g == ScheduleGradient::variance ? "variance"
                                           : "automatic";
}
ScheduleGradient schedule_gradient_from_name(const std::string& name) {
  return from_name(kScheduleGradients, name, "schedule_gradient");
}

std::unique_ptr<NoiseSchedule> make_vdm_schedule(const ObjectiveConfig& c, Generator& gen) {
  const ScheduleRange range{c.gamma_min, c.gamma_max};
  const MonotoneNetOptions net{.range = range};
  try {
    switch (c.schedule) {
      case VdmSchedule::fixed:
        return std::make_unique<FixedLinearSchedule>(range);
      case VdmSchedule::learned_scalar:
        return std::make_unique<LearnedScalarSchedule>(range);
      case VdmSchedule::monotone_net:
        return std::make_unique<MonotoneNetSchedule>(net, gen);
      case VdmSchedule::learned_endpoints:
        return std::make_unique<LearnedEndpointsSchedule>(net, gen);
      case VdmSchedule::vp:
        break;
    }
  } catch (const ScheduleError& e) {
    throw OptionError(e.field, e.what());
  }
  // The VP SDE's own range: gamma_min / gamma_max do not apply (check_config keeps them at
  // their defaults for this schedule).
  const auto* vp = dynamic_cast<const VpSde*>(c.sde);
  if (!vp || dynamic_cast<const SubVpSde*>(c.sde))
    throw OptionError("schedule", cat("schedule vp maps the VP SDE's beta schedule to gamma: it "
                                      "needs the SDE vp, got ",
                                      c.sde ? c.sde->name() : std::string("none")));
  return std::make_unique<VpSchedule>(*vp);
}

VdmOptions vdm_options(const ObjectiveConfig& c) {
  return {.levels = c.levels,
          .timesteps = c.timesteps,
          .antithetic = c.antithetic,
          .fourier_features = c.fourier_features,
          .schedule_gradient = c.schedule_gradient};
}

const std::vector<std::string>& objective_option_names() {
  static const std::vector<std::string> names = {
      "t_eps",         "fd_eps",     "projections",      "projection",       "weighting",
      "time_sampling", "schedule",   "gamma_min",        "gamma_max",        "levels",
      "timesteps",     "antithetic", "fourier_features", "schedule_gradient"};
  return names;
}

std::string option_value(const ObjectiveConfig& c, const std::string& option) {
  if (option == "t_eps") return number(c.t_eps);
  if (option == "fd_eps") return number(c.fd_eps);
  if (option == "projections") return std::to_string(c.projections);
  if (option == "projection") return name_of(c.projection);
  if (option == "weighting") return name_of(c.weighting);
  if (option == "time_sampling") return name_of(c.sampling);
  if (option == "schedule") return name_of(c.schedule);
  if (option == "gamma_min") return number(c.gamma_min);
  if (option == "gamma_max") return number(c.gamma_max);
  if (option == "levels") return std::to_string(c.levels);
  if (option == "timesteps") return std::to_string(c.timesteps);
  if (option == "antithetic") return bool_name(c.antithetic);
  if (option == "fourier_features") return bool_name(c.fourier_features);
  if (option == "schedule_gradient") return name_of(c.schedule_gradient);
  fail<ValueError>("unknown objective setting '", option, "'");
}

OptionError::OptionError(std::string option_name, const std::string& message)
    : ValueError(message), option(std::move(option_name)) {}

void check_config(const ObjectiveInfo& info, const ObjectiveConfig& c) {
  const std::string who = "objective '" + info.name + "': ";
  auto refuse = [&](const std::string& option, const std::string& why) {
    throw OptionError(option, who + option + " = " + option_value(c, option) + " " + why);
  };
  const double T = c.sde ? c.sde->T() : 1.0;
  if (!(c.t_eps > 0 && c.t_eps < T)) refuse("t_eps", "must lie in (0, T)");
  if (!(std::isfinite(c.fd_eps) && c.fd_eps > 0)) refuse("fd_eps", "must be finite and > 0");
  if (c.projections < 1) refuse("projections", "must be >= 1");
  if (!std::isfinite(c.gamma_min)) refuse("gamma_min", "must be finite");
  if (!std::isfinite(c.gamma_max)) refuse("gamma_max", "must be finite");
  if (!(c.gamma_min < c.gamma_max))
    refuse("gamma_min", "must be below gamma_max = " + number(c.gamma_max) + " (gamma increases)");
  if (c.levels < 2) refuse("levels", "must be >= 2");
  if (c.timesteps < 0) refuse("timesteps", "must be >= 0 (0: continuous time)");
  // Only learned_endpoints has an interior to train on the variance (in continuous time);
  // fixed and vp have no parameters to train at all.
  const bool learned = c.schedule != VdmSchedule::fixed && c.schedule != VdmSchedule::vp;
  if (c.schedule_gradient != ScheduleGradient::automatic && !learned)
    refuse("schedule_gradient", "has nothing to train: schedule " +
                                    std::string(name_of(c.schedule)) + " has no parameters");
  if (c.schedule_gradient == ScheduleGradient::variance) {
    if (c.schedule != VdmSchedule::learned_endpoints)
      refuse("schedule_gradient",
             "needs schedule learned_endpoints (the only schedule whose "
             "interior is apart from its endpoints)");
    if (c.timesteps != 0)
      refuse("schedule_gradient",
             "needs continuous time (timesteps = 0): in discrete time the "
             "schedule's interior changes the VLB");
  }
  // The vp schedule takes its range from the SDE: a range set beside it would be ignored.
  if (c.schedule == VdmSchedule::vp)
    for (const char* o : {"gamma_min", "gamma_max"})
      if (option_value(c, o) != option_value(ObjectiveConfig{}, o))
        refuse(o,
               "is not used by schedule vp (its range is the VP SDE's); leave it at its "
               "default " +
                   option_value(ObjectiveConfig{}, o));
  const ObjectiveConfig defaults;
  std::string used;
  for (const ObjectiveOption& o : info.options) used += (used.empty() ? "" : ", ") + o.name;
  for (const std::string& option : objective_option_names()) {
    const auto it = std::find_if(info.options.begin(), info.options.end(),
                                 [&](const ObjectiveOption& o) { return o.name == option; });
    const std::string value = option_value(c, option);
    if (it == info.options.end()) {
      if (value != option_value(defaults, option))
        refuse(option, "is not used by this objective (it uses " +
                           (used.empty() ? std::string("none of the settings") : used) +
                           "); leave it at its default " + option_value(defaults, option));
    } else if (!it->values.empty() &&
               std::find(it->values.begin(), it->values.end(), value) == it->values.end()) {
      std::string list;
      for (const std::string& v : it->values) list += (list.empty() ? "" : ", ") + v;
      refuse(option, "is not supported by this objective (choose from " + list + ")");
    }
  }
}

std::size_t register_objective(ObjectiveInfo info) {
  info = checked(std::move(info));
  Registry& r = registry();
  std::lock_guard lock(r.m);
  for (std::size_t i = 0; i < r.items.size(); ++i)
    if (r.items[i].name == info.name) {
      r.items[i] = std::move(info);
      return i;
    }
  r.items.push_back(std::move(info));
  return r.items.size() - 1;
}

const ObjectiveInfo& find_objective(const std::string& name) {
  Registry& r = registry();
  std::lock_guard lock(r.m);
  std::string names;
  for (const ObjectiveInfo& i : r.items) {
    if (i.name == name) return i;
    names += (names.empty() ? "" : ", ") + i.name;
  }
  fail<ValueError>("unknown objective '", name, "' (", names, ")");
}

std::vector<std::string> objective_names() {
  Registry& r = registry();
  std::lock_guard lock(r.m);
  std::vector<std::string> out;
  for (const ObjectiveInfo& i : r.items) out.push_back(i.name);
  return out;
}

// (1 / (T - t_eps)) int lambda(t) E J(s(., t), x_t) dt, t uniform or importance-sampled
Tensor sliced_in_time(const TimeScoreFn& s, const Tensor& x, Generator& gen,
                      const ObjectiveConfig& cfg,
                      const std::function<Tensor(const ScoreFn&, const Tensor&)>& J) {
  const Sde& sde = need_sde(cfg, "sliced_in_time");
  if (!(cfg.t_eps >= 0 && cfg.t_eps < sde.T()))
    fail<ValueError>("sliced_in_time: t_eps must lie in [0, ", sde.T(), "), got ", cfg.t_eps);
  const int64_t B = x.dim(0);
  Tensor t, importance;  // importance: 1 / (q(t) (T - t_eps)) for importance-sampled t
  if (cfg.sampling == TimeSampling::uniform) {
    t = rand({B}, gen, x.dtype(), x.device()) * (sde.T() - cfg.t_eps) + cfg.t_eps;
  } else {
    Tensor q;
    std::tie(t, q) = sample_importance_time(sde, B, cfg.t_eps, gen, x.dtype(), x.device());
    importance = 1.0 / (q * (sde.T() - cfg.t_eps));
  }
  const Tensor xt = sde.perturb(x, t, randn_like(x, gen));
  const Tensor std = sde.marginal(t).second;
  // Batched estimators may evaluate s on a multiple of the batch (projections, FD shifts):
  // t is tiled to match.
  const ScoreFn st = [&](const Tensor& z) {
    const int64_t reps = z.dim(0) / B;
    return s(z, reps == 1 ? t : reshape(expand(unsqueeze(t, 0), {reps, B}), {reps * B}));
  };
  Tensor per = cfg.weighting == Weighting::variance ? J(st, xt) * std * std
                                                    : J(st, xt) * square(sde.diffusion(t));
  if (importance.defined()) per = per * importance;
  return mean(per);
}

}  // namespace sg::obj
