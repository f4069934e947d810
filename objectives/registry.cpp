// The objective registry and the built-in objectives: dsm, ssm, ssm-vr, ism, fd-ssm, elbo.
#include "objectives/registry.hpp"

#include <mutex>

#include "autodiff/ops/ops.hpp"
#include "objectives/elbo.hpp"

namespace sg::obj {
namespace {

std::vector<ObjectiveInfo> builtins();

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

std::vector<ObjectiveInfo> builtins() {
  return {
      {"dsm", "denoising score matching over the SDE (weighting and time sampling from the config)",
       false,
       [](const TimeScoreFn& s, const Tensor& x, Generator& g, const ObjectiveConfig& c) {
         return dsm_sde(s, need_sde(c, "dsm"), x, g,
                        {.weighting = c.weighting, .sampling = c.sampling, .t_eps = c.t_eps});
       }},
      {"ssm", "sliced score matching on perturbed data, std^2-weighted", true,
       [](const TimeScoreFn& s, const Tensor& x, Generator& g, const ObjectiveConfig& c) {
         return sliced_in_time(s, x, g, c, [&](const ScoreFn& st, const Tensor& xt) {
           return ssm_per_sample(st, xt, g,
                                 {.projection = c.projection, .projections = c.projections});
         });
       }},
      {"ssm-vr", "sliced score matching, variance-reduced, on perturbed data, std^2-weighted", true,
       [](const TimeScoreFn& s, const Tensor& x, Generator& g, const ObjectiveConfig& c) {
         return sliced_in_time(s, x, g, c, [&](const ScoreFn& st, const Tensor& xt) {
           const Projection p =
               c.projection == Projection::sphere ? Projection::gaussian : c.projection;
           return ssm_per_sample(
               st, xt, g,
               {.projection = p, .projections = c.projections, .variance_reduced = true});
         });
       }},
      {"ism", "implicit (Hyvarinen) score matching with the exact trace, on perturbed data", true,
       [](const TimeScoreFn& s, const Tensor& x, Generator& g, const ObjectiveConfig& c) {
         return sliced_in_time(s, x, g, c, [&](const ScoreFn& st, const Tensor& xt) {
           return implicit_sm_per_sample(st, xt);
         });
       }},
      {"fd-ssm",
       "finite-difference sliced score matching (score network, VR form), on perturbed data", false,
       [](const TimeScoreFn& s, const Tensor& x, Generator& g, const ObjectiveConfig& c) {
         return sliced_in_time(s, x, g, c, [&](const ScoreFn& st, const Tensor& xt) {
           return fd_ssm_score_per_sample(st, xt, g, c.fd_eps);
         });
       }},
      // -ELBO / D of the plug-in reverse SDE, denoising form (likelihood-weighted DSM up to a
      // constant): the bound is trained directly, in nats per dimension.
      {"elbo", "negative ELBO of the plug-in reverse SDE per dimension (denoising form)", false,
       [](const TimeScoreFn& s, const Tensor& x, Generator& g, const ObjectiveConfig& c) {
         const double dims = static_cast<double>(x.numel() / x.dim(0));
         return -mean(elbo_denoising(need_sde(c, "elbo"), s, x, g,
                                     {.t_eps = c.t_eps, .sampling = c.sampling})) /
                dims;
       }},
  };
}

}  // namespace

std::size_t register_objective(ObjectiveInfo info) {
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

// E_t std(t)^2 J(s(., t), x_t), t ~ U(t_eps, T)
Tensor sliced_in_time(const TimeScoreFn& s, const Tensor& x, Generator& gen,
                      const ObjectiveConfig& cfg,
                      const std::function<Tensor(const ScoreFn&, const Tensor&)>& J) {
  const Sde& sde = need_sde(cfg, "sliced_in_time");
  const int64_t B = x.dim(0);
  const Tensor t = rand({B}, gen, x.dtype(), x.device()) * (sde.T() - cfg.t_eps) + cfg.t_eps;
  const Tensor xt = sde.perturb(x, t, randn_like(x, gen));
  const Tensor std = sde.marginal(t).second;
  // Batched estimators may evaluate s on a multiple of the batch (projections, FD shifts):
  // t is tiled to match.
  const ScoreFn st = [&](const Tensor& z) {
    const int64_t reps = z.dim(0) / B;
    return s(z, reps == 1 ? t : reshape(expand(unsqueeze(t, 0), {reps, B}), {reps * B}));
  };
  return mean(J(st, xt) * std * std);
}

}  // namespace sg::obj
