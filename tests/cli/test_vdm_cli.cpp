// objective vdm in the registry and the command's configuration: every objective.* key is
// honoured (the loss, or for schedule_gradient the schedule's gradient, changes) or refused with
// a ConfigError naming it; what VDM cannot use (continuous data, other levels than the data's,
// Fourier features with these networks, SDE keys beside a schedule other than vp, samplers other
// than ancestral) is refused by name too.
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "autodiff/sg.hpp"
#include "cli/config.hpp"
#include "cli/experiment.hpp"
#include "cli/options.hpp"
#include "objectives/registry.hpp"
#include "sde/sde.hpp"

using namespace sg::cli;

namespace {

// A small VDM run on the digits (U-Net of width 8).
Config vdm_digits(const std::vector<std::string>& more = {}) {
  Config c = default_config();
  for (const char* o :
       {"data.name=digits", "data.test_size=97", "data.train_size=64", "model.channels=8",
        "model.groups=4", "objective.name=vdm", "objective.levels=17", "sample.method=ancestral"})
    apply_override(c, o);
  for (const auto& o : more) apply_override(c, o);
  return c;
}

// ConfigError whose one-line message holds every fragment.
void refused(const Config& c, const std::vector<std::string>& fragments) {
  try {
    Experiment ex(c);
    (void)objective_config(c, objective_of(c), *ex.sde);
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find('\n') == std::string::npos);
    for (const auto& f : fragments) CHECK(msg.find(f) != std::string::npos);
    return;
  }
  FAIL("no ConfigError for " << to_text(c));
}

// One VDM step on 16 training digits (network weights drawn from their names, fixed noise): the
// loss through the registry's fn, and the step of vdm_value_and_grad.
struct Step {
  double loss = 0;
  sg::obj::VdmStep step;
};
Step vdm_step(const Config& c) {
  Experiment ex(c);
  sg::obj::ObjectiveConfig oc = objective_config(c, objective_of(c), *ex.sde);
  oc.noise_schedule = &ex.vdm->schedule;
  for (auto& [n, p] : ex.vdm->net.named_parameters()) {  // a non-zero output layer
    sg::Generator g(n.size());
    *p = sg::randn_like(*p, g) * 0.3;
  }
  const sg::Tensor x = sg::slice(ex.data.train, 0, 0, 16);
  Step s;
  sg::Generator g(9);
  s.loss = objective_of(c).fn(ex.vdm_network(), x, g, oc).item();
  sg::Generator g2(9);
  s.step = sg::obj::vdm_value_and_grad(ex.vdm->schedule, ex.vdm_network(), ex.vdm->net.parameters(),
                                       x, g2, sg::obj::vdm_options(oc));
  return s;
}

}  // namespace

TEST_CASE("vdm: the model holds the network and the schedule", "[cli][vdm]") {
  Experiment ex(vdm_digits());
  REQUIRE(ex.vdm != nullptr);
  CHECK(ex.model.get() == ex.vdm);
  bool net = false, gamma_0 = false, shape = false;
  for (const auto& [name, p] : ex.model->named_parameters()) {
    net = net || name.starts_with("net.");
    gamma_0 = gamma_0 || name == "schedule.gamma_0";
    shape = shape || name.starts_with("schedule.shape.");
  }
  CHECK((net && gamma_0 && shape));
  CHECK(ex.vdm->schedule.name() == "learned_endpoints");
  // A score objective keeps the network itself.
  Config dsm = vdm_digits({"objective.name=dsm", "objective.levels=256", "sample.method=pc"});
  CHECK(Experiment(dsm).vdm == nullptr);
}

TEST_CASE("vdm: every objective key is honoured or refused", "[cli][vdm][options]") {
  const Config base = vdm_digits();
  const Step s0 = vdm_step(base);
  REQUIRE(std::isfinite(s0.loss));
  CHECK(s0.step.variance_gradient);  // automatic, learned_endpoints, continuous time
  const auto honoured = [&](const std::string& o) {
    INFO(o);
    const Step s = vdm_step(vdm_digits({o}));
    CHECK(std::isfinite(s.loss));
    CHECK(s.loss != s0.loss);
  };
  for (const char* o :
       {"objective.schedule=monotone_net", "objective.schedule=vp", "objective.gamma_min=-6",
        "objective.gamma_max=2.5", "objective.timesteps=10", "objective.antithetic=false"})
    honoured(o);
  // fixed and learned_scalar start as the same line from gamma_min to gamma_max as the default
  // learned_endpoints (so the same first loss): the model holds the schedule asked for.
  for (const auto& [name, params] : {std::pair<std::string, size_t>{"fixed", 0},
                                     std::pair<std::string, size_t>{"learned_scalar", 2}}) {
    Experiment ex(vdm_digits({"objective.schedule=" + name}));
    CHECK(ex.vdm->schedule.name() == name);
    CHECK(ex.vdm->schedule.named_parameters().size() == params);
  }
  // schedule_gradient changes the gradient of the schedule's interior, not the loss.
  const Step vlb = vdm_step(vdm_digits({"objective.schedule_gradient=vlb"}));
  const Step var = vdm_step(vdm_digits({"objective.schedule_gradient=variance"}));
  CHECK(!vlb.step.variance_gradient);
  CHECK(var.step.variance_gradient);
  CHECK(vlb.loss == s0.loss);
  bool differs = false;
  const auto names = Experiment(base).vdm->schedule.named_parameters();
  for (size_t k = 0; k < names.size(); ++k)
    if (names[k].first.starts_with("shape."))
      differs = differs ||
                vlb.step.schedule_grads[k].to_vector() != var.step.schedule_grads[k].to_vector();
  CHECK(differs);

  // The score objectives' settings are not vdm's.
  refused(vdm_digits({"objective.t_eps=0.01"}), {"'objective.t_eps'", "not used"});
  refused(vdm_digits({"objective.weighting=likelihood"}), {"'objective.weighting'"});
  refused(vdm_digits({"objective.time_sampling=importance"}), {"'objective.time_sampling'"});
  refused(vdm_digits({"objective.projections=2"}), {"'objective.projections'"});
  // ... nor are vdm's the score objectives'.
  refused(vdm_digits({"objective.name=dsm", "sample.method=pc", "objective.levels=256",
                      "objective.timesteps=5"}),
          {"'objective.timesteps'", "vdm"});
  // Out of range or in bad combination.
  refused(vdm_digits({"objective.gamma_min=6"}), {"'objective.gamma_min'", "gamma_max"});
  refused(vdm_digits({"objective.schedule=nope"}), {"'objective.schedule'", "learned_endpoints"});
  refused(vdm_digits({"objective.timesteps=10", "objective.schedule_gradient=variance"}),
          {"'objective.schedule_gradient'", "continuous"});
  refused(vdm_digits({"objective.schedule=monotone_net", "objective.schedule_gradient=variance"}),
          {"'objective.schedule_gradient'", "learned_endpoints"});
  refused(vdm_digits({"objective.schedule=fixed", "objective.schedule_gradient=vlb"}),
          {"'objective.schedule_gradient'", "no parameters"});
  refused(vdm_digits({"objective.schedule=vp", "objective.gamma_max=4"}),
          {"'objective.gamma_max'", "vp"});
  refused(vdm_digits({"objective.schedule=vp", "sde.name=ve"}), {"'objective.schedule'", "vp"});
  // What the command cannot do with VDM.
  refused(vdm_digits({"objective.levels=256"}), {"'objective.levels'", "17"});
  refused(vdm_digits({"objective.fourier_features=true"}),
          {"'objective.fourier_features'", "unet"});
  refused(vdm_digits({"sde.beta_max=10"}), {"'sde.beta_max'", "vp schedule"});
  CHECK(std::isfinite(vdm_step(vdm_digits({"objective.schedule=vp", "sde.beta_max=10"})).loss));
  refused(vdm_digits({"sample.method=pc"}), {"'sample.method'", "ancestral"});
  refused(vdm_digits({"objective.name=dsm", "objective.levels=256"}), {"'sample.method'", "vdm"});
  Config moons = default_config();
  for (const char* o :
       {"objective.name=vdm", "sample.method=ancestral", "data.train_size=64", "data.test_size=16"})
    apply_override(moons, o);
  refused(moons, {"'objective.name'", "discrete"});
}

TEST_CASE("vdm: the registry's typed errors name the option", "[vdm][objectives]") {
  using namespace sg::obj;
  const ObjectiveInfo& info = find_objective("vdm");
  const auto option_of = [&](const ObjectiveConfig& c) -> std::string {
    try {
      check_config(info, c);
    } catch (const OptionError& e) {
      return e.option;
    }
    return "";
  };
  CHECK(option_of({}) == "");
  CHECK(option_of({.gamma_min = 5.0, .gamma_max = 5.0}) == "gamma_min");
  CHECK(option_of({.gamma_max = NAN}) == "gamma_max");
  CHECK(option_of({.levels = 1}) == "levels");
  CHECK(option_of({.timesteps = -1}) == "timesteps");
  CHECK(option_of({.t_eps = 0.01}) == "t_eps");
  CHECK(option_of({.timesteps = 4, .schedule_gradient = ScheduleGradient::variance}) ==
        "schedule_gradient");
  CHECK_THROWS_AS(vdm_schedule_from_name("cosine"), OptionError);
  CHECK(vdm_schedule_from_name("monotone_net") == VdmSchedule::monotone_net);
  CHECK(schedule_gradient_from_name("variance") == ScheduleGradient::variance);
  // The loss needs its schedule; the dsm objective refuses vdm's settings.
  sg::Generator g(0);
  const TimeScoreFn zero = [](const sg::Tensor& z, const sg::Tensor&) { return z * 0.0; };
  const sg::Tensor x = sg::zeros({2, 3});
  CHECK_THROWS_WITH(info.fn(zero, x, g, {}), Catch::Contains("noise schedule"));
  CHECK(option_of({.levels = 17}) == "");
  ObjectiveConfig c;
  c.levels = 17;
  CHECK_THROWS_AS(check_config(find_objective("dsm"), c), OptionError);
  // vp needs the VP SDE.
  const sg::VeSde ve(0.01, 50);
  c = {};
  c.schedule = VdmSchedule::vp;
  c.sde = &ve;
  CHECK_THROWS_AS(make_vdm_schedule(c, g), OptionError);
  const sg::VpSde vp(0.1, 20);
  c.sde = &vp;
  CHECK(make_vdm_schedule(c, g)->name() == "vp");
}
