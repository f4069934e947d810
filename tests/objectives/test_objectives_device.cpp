// The objectives on the stand-in device (a distinct device running the CPU's kernels, refusing
// host reads and mixing with CPU tensors): every registered objective's training step (its
// loss and the gradients of the parameters of a network whose parameters live on the device),
// under every setting it honours and on each SDE, the objectives called directly, the ELBO
// estimators and the Gaussian closed forms build their projections, noise, times and basis
// vectors on the data's device and give bitwise the CPU's numbers: the draws are the CPU's for
// the same generator and the arithmetic is the same.
#include <catch2/catch.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autodiff/sg.hpp"
#include "nn/networks.hpp"
#include "objectives/elbo.hpp"
#include "objectives/gaussian.hpp"
#include "objectives/registry.hpp"
#include "tests/support/device.hpp"
#include "tests/support/expect.hpp"

using namespace sg;
using namespace sg::obj;
using test::kStandin;

namespace {
constexpr DType f64 = DType::f64;
const Device kCpu = Device::cpu();

// A score network and an energy network in float64 with random weights (no zero output
// layer), built on the CPU and moved to `d` with Module::to.
struct Models {
  Generator init{5};
  nn::MlpScoreNet score{2, {.hidden = 8, .layers = 1, .embed_dim = 4, .dtype = f64}, init};
  nn::EnergyNet energy{2, {.hidden = 8, .layers = 1, .embed_dim = 4, .dtype = f64}, init};
  Tensor x;  // data [16, 2], on d
  explicit Models(Device d) {
    Generator w(6);
    for (nn::Module* m : {static_cast<nn::Module*>(&score), static_cast<nn::Module*>(&energy)})
      for (auto& [name, p] : m->named_parameters()) *p = (randn_like(*p, w) * 0.5).requires_grad_();
    x = GaussianData::case_g().sample(16, w).to(d);
    if (!(d == kCpu)) {
      score.to(d);
      energy.to(d);
    }
  }
  std::vector<Tensor> params() {
    std::vector<Tensor> out = score.parameters(), e = energy.parameters();
    out.insert(out.end(), e.begin(), e.end());
    return out;
  }
  // The loss and the gradient of every parameter (unused ones undefined).
  std::vector<Tensor> step(const Tensor& loss) {
    std::vector<Tensor> out = {loss.detach()};
    for (const Tensor& g : grad({loss}, params(), {}, {.allow_unused = true}))
      out.push_back(g.defined() ? g.detach() : g);
    return out;
  }
};

// test::same_on_both, and the CPU's results must not all be zero (the check would then say
// little).
void same_on_both(const std::function<std::vector<Tensor>(Device)>& f, const std::string& what) {
  double size = 0;
  for (const Tensor& t : test::same_on_both(f, what))
    if (t.defined()) size += sum(abs(t.to(f64))).item();
  INFO(what);
  CHECK(size > 0);
}

// The defaults, then every setting the objective declares changed alone to each value it
// accepts other than the default.
std::vector<std::pair<std::string, ObjectiveConfig>> configs(const ObjectiveInfo& info,
                                                             const Sde& sde) {
  const ObjectiveConfig base{.sde = &sde};
  std::vector<std::pair<std::string, ObjectiveConfig>> out = {{"defaults", base}};
  for (const ObjectiveOption& o : info.options) {
    std::vector<ObjectiveConfig> changed(1, base);
    if (o.name == "t_eps") {
      changed[0].t_eps = 0.05;
    } else if (o.name == "fd_eps") {
      changed[0].fd_eps = 0.03;
    } else if (o.name == "projections") {
      changed[0].projections = 3;
    } else if (o.name == "weighting") {
      changed[0].weighting = Weighting::likelihood;
    } else if (o.name == "time_sampling") {
      changed[0].sampling = TimeSampling::importance;
    } else if (o.name == "projection") {
      changed = {base, base};
      changed[0].projection = Projection::gaussian;
      changed[1].projection = Projection::sphere;
    } else {
      FAIL_CHECK(info.name << " declares a setting this test does not vary: " << o.name);
    }
    for (const ObjectiveConfig& c : changed) {
      const std::string value = option_value(c, o.name);
      if (o.values.empty() || std::find(o.values.begin(), o.values.end(), value) != o.values.end())
        out.emplace_back(o.name + " = " + value, c);
    }
  }
  return out;
}
}  // namespace

TEST_CASE("device: every registered objective's training step gives the CPU's loss and gradients",
          "[objectives][device][standin]") {
  const std::vector<std::string> names = objective_names();
  for (const char* builtin : {"dsm", "ssm", "ssm-vr", "ism", "fd-ssm", "elbo"})
    CHECK(std::find(names.begin(), names.end(), builtin) != names.end());
  const VpSde vp;
  const SubVpSde subvp;
  const VeSde ve;
  int runs = 0;
  for (const std::string& name : names) {
    // vdm needs discrete data and its noise-schedule module; its loss, schedule and network
    // gradients and sampler are compared on the stand-in device in test_vdm.cpp.
    if (name == "vdm") continue;
    const ObjectiveInfo& info = find_objective(name);
    for (const auto& [sde_name, sde] : std::vector<std::pair<std::string, const Sde*>>{
             {"vp", &vp}, {"subvp", &subvp}, {"ve", &ve}}) {
      std::vector<std::pair<std::string, ObjectiveConfig>> cs = configs(info, *sde);
      if (sde != &vp) cs.resize(1);  // every setting on VP; the defaults on the others
      for (const auto& [label, cfg] : cs) {
        same_on_both(
            [&, &cfg = cfg](Device d) {
              Models m(d);
              const TimeScoreFn s = [&](const Tensor& z, const Tensor& t) { return m.score(z, t); };
              Generator g(7);
              return m.step(info.fn(s, m.x, g, cfg));
            },
            name + " (" + sde_name + ", " + label + ")");
        ++runs;
      }
    }
  }
  CHECK(runs >= 40);  // 29 settings on VP, 6 defaults on sub-VP and on VE
}

TEST_CASE("device: the objectives called directly give the CPU's loss and gradients",
          "[objectives][device][standin]") {
  auto loss_step = [](const std::function<Tensor(Models&, Generator&)>& loss,
                      const std::string& what) {
    same_on_both(
        [&](Device d) {
          Models m(d);
          Generator g(8);
          return m.step(loss(m, g));
        },
        what);
  };
  // The score at a fixed time (t = 0.3 on the data's device).
  auto at = [](Models& m) {
    return ScoreFn(
        [&m](const Tensor& z) { return m.score(z, full({z.dim(0)}, 0.3, f64, z.device())); });
  };
  auto energy_at = [](Models& m) {
    return EnergyFn([&m](const Tensor& z) {
      return m.energy.energy(z, full({z.dim(0)}, 0.3, f64, z.device()));
    });
  };
  loss_step([&](Models& m,
                Generator&) { return explicit_sm(at(m), m.x, GaussianData::case_g().score0(m.x)); },
            "explicit_sm");
  loss_step([&](Models& m, Generator&) { return implicit_sm(at(m), m.x); }, "implicit_sm");
  loss_step([&](Models& m, Generator&) { return implicit_sm(score_of_energy(energy_at(m)), m.x); },
            "implicit_sm of an energy");
  for (Projection p : {Projection::rademacher, Projection::gaussian, Projection::sphere})
    for (int P : {1, 2})
      loss_step(
          [&](Models& m, Generator& g) {
            return ssm(at(m), m.x, g,
                       {.projection = p,
                        .projections = P,
                        .variance_reduced = p != Projection::sphere && P == 2});
          },
          "ssm, projection " + std::to_string(static_cast<int>(p)) + ", " + std::to_string(P));
  loss_step([&](Models& m, Generator& g) { return fd_ssm_energy(energy_at(m), m.x, g); },
            "fd_ssm_energy");
  loss_step([&](Models& m, Generator& g) { return fd_ssm_score(at(m), m.x, g); }, "fd_ssm_score");
  loss_step([&](Models& m, Generator& g) { return fd_dsm_energy(energy_at(m), m.x, 0.2, g); },
            "fd_dsm_energy");
  loss_step([&](Models& m, Generator& g) { return dsm(at(m), m.x, 0.2, g); }, "dsm");
  loss_step(
      [&](Models& m, Generator& g) {
        const TimeScoreFn s = [&](const Tensor& z, const Tensor& t) { return m.score(z, t); };
        return ncsn_dsm(s, m.x, geometric_sigmas(1, 0.01, 5, f64, m.x.device()), g);
      },
      "ncsn_dsm");
  const VpSde vp;
  for (TimeSampling ts : {TimeSampling::uniform, TimeSampling::importance})
    for (Weighting w : {Weighting::variance, Weighting::likelihood})
      loss_step(
          [&](Models& m, Generator& g) {
            const TimeScoreFn s = [&](const Tensor& z, const Tensor& t) { return m.score(z, t); };
            return dsm_sde(s, vp, m.x, g, {.weighting = w, .sampling = ts});
          },
          "dsm_sde");
  // Importance-sampled times are drawn on the device they are asked for.
  same_on_both(
      [&](Device d) {
        Generator g(9);
        const auto [t, q] = sample_importance_time(vp, 16, 1e-3, g, f64, d);
        return std::vector<Tensor>{t, q};
      },
      "sample_importance_time");
  // The noise levels must be on the data's device: a CPU table with device data is refused.
  Models m(kStandin);
  Generator g(1);
  const std::string msg = test::message_of<DeviceError>([&] {
    (void)ncsn_dsm([&](const Tensor& z, const Tensor& t) { return m.score(z, t); }, m.x,
                   geometric_sigmas(1, 0.01, 5, f64), g);
  });
  CHECK_THAT(msg, Catch::Contains("ncsn_dsm") && Catch::Contains("standin:0") &&
                      Catch::Contains("cpu") && Catch::Contains("[5]") &&
                      Catch::Contains("[16,2]"));
}

TEST_CASE("device: the ELBO estimators give the CPU's per-sample bounds and gradients",
          "[objectives][device][standin][elbo]") {
  const VpSde vp;
  std::vector<std::pair<std::string, ElboOptions>> implicit = {
      {"one rademacher probe", {}},
      {"gaussian probe", {.probe = Projection::gaussian}},
      {"sphere probe", {.probe = Projection::sphere}},
      {"exact divergence", {.exact_divergence = true}},
      {"importance-sampled time", {.sampling = TimeSampling::importance}},
  };
  // The per-sample bound, the parameters' gradients of its mean, its mean and standard error
  // (as numbers on the host) and its bits per dimension.
  auto run = [&](Device d, bool denoising, const ElboOptions& o) {
    Models m(d);
    const ScoreModelFn s = [&](const Tensor& z, const Tensor& t) { return m.score(z, t); };
    Generator g(10);
    const Tensor e = denoising ? elbo_denoising(vp, s, m.x, g, o) : elbo_implicit(vp, s, m.x, g, o);
    std::vector<Tensor> r = m.step(mean(e));
    r.push_back(e.detach());
    const MeanEstimate me = mean_and_std_error(e);
    r.push_back(from_vector({me.mean, me.std_error}, {2}, f64, d));
    r.push_back(bits_per_dim(e.detach(), 2, 256));
    return r;
  };
  for (const auto& [label, o] : implicit)
    same_on_both([&, &o = o](Device d) { return run(d, false, o); }, "elbo_implicit, " + label);
  for (TimeSampling ts : {TimeSampling::uniform, TimeSampling::importance})
    same_on_both([&](Device d) { return run(d, true, {.sampling = ts}); }, "elbo_denoising");
  // The general pair on simulated paths: mu = -s, sigma = 0.5, a = 0.1 s.
  same_on_both(
      [&](Device d) {
        Models m(d);
        auto s = [&](const Tensor& y, double t) {
          return m.score(y, full({y.dim(0)}, t, f64, y.device()));
        };
        Generator g(11);
        const Tensor e = elbo_general(
            [&](const Tensor& y, double t) { return -s(y, t); }, [](double) { return 0.5; },
            [&](const Tensor& y, double t) { return s(y, t) * 0.1; }, m.x, 1.0, 4, g);
        std::vector<Tensor> r = m.step(mean(e));
        r.push_back(e.detach());
        return r;
      },
      "elbo_general");
}

TEST_CASE("device: the Gaussian closed forms follow their argument's device",
          "[objectives][device][standin][gaussian]") {
  const VpSde vp;
  // Host constants (case G) with device points, and constants built on the device.
  for (bool built_there : {false, true})
    same_on_both(
        [&](Device d) {
          const GaussianData host = GaussianData::case_g();
          const GaussianData G =
              built_there
                  ? GaussianData(host.mu().to(d), from_vector({1.0, 0.6, 0.6, 2.0}, {2, 2}, f64, d))
                  : host;
          Generator g(12);
          const Tensor x = built_there ? G.sample(6, g) : G.sample(6, g, d);
          CHECK(x.device() == d);
          const Tensor t = rand({6}, g, f64, d) * 0.9 + 0.05;
          return std::vector<Tensor>{x,
                                     G.score(x, t, vp),
                                     G.log_density(x, t, vp),
                                     G.score0(x),
                                     G.log_density0(x),
                                     G.flow(x, 0.1, 0.7, vp),
                                     G.score(x.to(DType::f32), t, vp)};
        },
        built_there ? "GaussianData built on the device" : "GaussianData case G, device points");
}
