// The SDE layer on the stand-in device (a distinct device that refuses host reads and mixing
// with CPU tensors, and computes bitwise the CPU's numbers): the SDEs' marginals, drifts,
// diffusions and priors, Brownian paths and Euler-Maruyama, the reverse-EM, predictor-corrector
// and probability-flow samplers, and the CNF and probability-flow likelihoods with every
// gradient strategy and trace estimator build every tensor on their inputs' device (or on the
// device they are given where there is no input) and give bitwise the CPU's results. A CPU
// tensor made where the input's device belongs would raise DeviceError here.
#include <catch2/catch.hpp>
#include <functional>
#include <string>
#include <vector>

#include "autodiff/sg.hpp"
#include "sde/likelihood.hpp"
#include "sde/sampling.hpp"
#include "sde/sdeint.hpp"
#include "tests/support/device.hpp"
#include "tests/support/expect.hpp"

using namespace sg;
using test::kStandin;
using test::same_on_both;

namespace {
constexpr DType f64 = DType::f64;
const Device kCpu = Device::cpu();

// The score of Gaussian data N(mu, diag(e^logv)) under an SDE's marginals,
// -(x - alpha mu) / (alpha^2 v + std^2): its parameters live on a device, and it counts the
// calls that hand it tensors elsewhere.
struct Calls {
  int total = 0, off_device = 0;
};
struct GaussianScore {
  const Sde* sde;
  Tensor mu, logv;
  Device device;
  Calls* calls;
  Tensor operator()(const Tensor& x, const Tensor& t) const {
    ++calls->total;
    if (!(x.device() == device && t.device() == device)) ++calls->off_device;
    const auto [alpha, std] = sde->marginal(t);
    const Tensor a = batch_view(alpha, x), s = batch_view(std, x);
    return -(x - a * mu.to(x.dtype())) / (a * a * exp(logv.to(x.dtype())) + s * s);
  }
};
// mu = (0.5, -1), log v = (0.2, -0.4), made on the CPU and moved to `d`.
std::pair<Tensor, Tensor> gaussian_params(Device d, bool trainable) {
  Tensor mu = from_vector({0.5, -1.0}, {2}, f64).to(d),
         logv = from_vector({0.2, -0.4}, {2}, f64).to(d);
  if (trainable) {
    mu.requires_grad_();
    logv.requires_grad_();
  }
  return {mu, logv};
}

// A tiny time-dependent MLP field for the CNF, z -> tanh(z W1 + t u + b1) W2, with its
// parameters drawn on the CPU and moved to `d`.
struct TinyField {
  Tensor W1, u, b1, W2;
  Tensor operator()(double t, const Tensor& z) const {
    return matmul(tanh(matmul(z, W1) + u * t + b1), W2);
  }
  std::vector<Tensor> params() const { return {W1, u, b1, W2}; }
};
TinyField tiny_field(Device d) {
  Generator g(7);
  auto p = [&](const Shape& s) { return (randn(s, g, f64) * 0.5).to(d).requires_grad_(); };
  TinyField m;
  m.W1 = p({2, 8});
  m.u = p({8});
  m.b1 = p({8});
  m.W2 = p({8, 2});
  return m;
}

// Every gradient strategy with every trace estimator (exact, Hutchinson with a Rademacher or a
// Gaussian probe), and the options of a likelihood solve with one of them.
struct Variant {
  SolveGradient how;
  const char* strategy;
  bool exact_trace, gaussian_probe;
  const char* trace;
  std::string name() const { return std::string(strategy) + " " + trace; }
};
std::vector<Variant> variants() {
  std::vector<Variant> out;
  for (auto [how, strategy] : {std::pair{SolveGradient::backprop, "backprop"},
                               std::pair{SolveGradient::adjoint, "adjoint"},
                               std::pair{SolveGradient::checkpointed, "checkpointed"}}) {
    out.push_back({how, strategy, true, false, "exact"});
    out.push_back({how, strategy, false, false, "rademacher"});
    out.push_back({how, strategy, false, true, "gaussian"});
  }
  return out;
}
CnfOptions options(const Variant& v, Generator& probes, std::vector<Tensor> params) {
  const ode::Options tol{.rtol = 1e-6, .atol = 1e-6};
  return {.ode = tol,
          .adjoint_ode = tol,
          .exact_trace = v.exact_trace,
          .gaussian_probe = v.gaussian_probe,
          .gen = &probes,
          .gradient = v.how,
          .params = std::move(params)};
}

// The results of a likelihood solve, the gradients of its mean NLL and its evaluation counts
// (as scalars on `d`), for comparison.
std::vector<Tensor> likelihood_results(const LikelihoodResult& r, const std::vector<Tensor>& ps,
                                       Device d) {
  std::vector<Tensor> out = {r.logp.detach(), r.z.detach(), r.delta_logp.detach()};
  for (const Tensor& g : grad(-mean(r.logp), ps)) out.push_back(g);
  out.push_back(scalar(static_cast<double>(r.solve.nfe), f64, d));
  out.push_back(scalar(static_cast<double>(r.solve.nfe_backward()), f64, d));
  return out;
}
}  // namespace

TEST_CASE("sde device: marginals, drifts, diffusions and priors follow their inputs' device",
          "[sde][device]") {
  for (const char* name : {"vp", "subvp", "ve"}) {
    const auto sde = make_sde(name);
    same_on_both(
        [&](Device d) {
          Generator g(3);
          const Tensor t = from_vector({0.0, 1e-3, 0.3, 0.9, 1.0}, {5}, f64).to(d);
          const Tensor x = randn({5, 2, 3}, g, f64).to(d), eps = randn({5, 2, 3}, g, f64).to(d);
          const auto [alpha, std] = sde->marginal(t);
          const auto [alpha0, std0] = sde->marginal(scalar(0.4, f64, d));
          std::vector<Tensor> out = {alpha,
                                     std,
                                     alpha0,
                                     std0,
                                     sde->drift(x, t),
                                     sde->diffusion(t),
                                     sde->drift_div_per_dim(t),
                                     sde->perturb(x, t, eps),
                                     sde->prior_logp(x),
                                     sde->prior_sample({5, 2, 3}, g, f64, d),
                                     sde->prior_sample({4}, g, DType::f32, d)};
          if (const auto* vp = dynamic_cast<const VpSde*>(sde.get())) {
            out.push_back(vp->beta(t));
            out.push_back(vp->integral_beta(t));
          }
          if (const auto* ve = dynamic_cast<const VeSde*>(sde.get())) out.push_back(ve->sigma(t));
          return out;
        },
        name);
    Generator g(3);
    CHECK(sde->prior_sample({2}, g).device() == kCpu);  // the default stays the CPU
  }
}

TEST_CASE("sde device: Brownian paths and Euler-Maruyama run on the path's device",
          "[sde][device][em]") {
  const VpSde vp;
  same_on_both(
      [&](Device d) {
        const BrownianPath W(9, {16, 2}, 0.0, 1.0, 12, f64, d);
        CHECK(W.device() == d);
        const Tensor x0 = from_vector({1.0, -2.0}, {1, 2}, f64).to(d);
        const SdeDrift mu = [&](const Tensor& x, double t) {
          return vp.drift(x, full({x.dim(0)}, t, f64, x.device()));
        };
        const SdeDiffusion sigma = [](const Tensor& x, double t) { return x * (0.3 + t); };
        return std::vector<Tensor>{W.increment(0, 12), W.increment(2, 5),
                                   euler_maruyama(mu, sigma, expand(x0, {16, 2}), W, 12),
                                   euler_maruyama(mu, sigma, expand(x0, {16, 2}), W, 4)};
      },
      "Brownian path and Euler-Maruyama");
  // A state on one device and a path on another: refused, naming both.
  const BrownianPath W(9, {4}, 0.0, 1.0, 4, f64, kStandin);
  const std::string msg = test::message_of<DeviceError>([&] {
    (void)euler_maruyama([](const Tensor& x, double) { return x; },
                         [](const Tensor& x, double) { return x; }, zeros({4}, f64), W, 2);
  });
  CHECK(msg.find("cpu") != std::string::npos);
  CHECK(msg.find("standin:0") != std::string::npos);
}

TEST_CASE("sde device: sdeint on a device BrownianPath stays on the path's device",
          "[sde][device][em]") {
  same_on_both(
      [&](Device d) {
        const BrownianPath P(9, {8, 2}, 0.0, 1.0, 8, f64, d);
        const sde::GridBrownian W(P);
        const Tensor y0 = from_vector({1.0, -2.0}, {1, 2}, f64).to(d);
        const sde::Result r = sde::sdeint([](const Tensor& x, double) { return x * -0.5; },
                                          [](const Tensor& x, double) { return x * 0.3; },
                                          expand(y0, {8, 2}), 0.0, 1.0, W, {.steps = 4});
        CHECK(r.ok());
        return std::vector<Tensor>{W.increment(0.25, 0.75).W, r.y};
      },
      "sdeint on a GridBrownian");
}

TEST_CASE("sde device: a GridBrownian's zero increment is on its path's device",
          "[sde][device][em]") {
  const BrownianPath P(9, {3}, 0.0, 1.0, 4, f64, kStandin);
  CHECK(sde::GridBrownian(P).increment(0.5, 0.5).W.device() == kStandin);
}

// A Brownian tree with Levy area on the device: the same path as on the CPU (it is drawn on
// the host in float64), and adaptive SRIW1 and Milstein solves on it give the CPU's bits.
TEST_CASE("sde device: Brownian tree increments and adaptive solves on the device",
          "[sde][device][tree]") {
  same_on_both(
      [&](Device d) {
        const BrownianTree W(5, {4, 2}, 0.0, 1.0, {.levy_area = true, .dtype = f64, .device = d});
        CHECK(W.device() == d);
        const Tensor y0 = full({4, 2}, 1.0, f64, d);
        std::vector<Tensor> out = {W.increment(0.1, 0.6).W, W.increment(0.1, 0.6).H,
                                   W.increment(0.3, 0.3).W};
        for (const sde::Method* m : {&sde::sriw1(), &sde::milstein()}) {
          const sde::Result r =
              sde::sdeint([](const Tensor& x, double) { return x * 0.1; },
                          [](const Tensor& x, double) { return x * 0.4; }, y0, 0.0, 1.0, W,
                          {.method = m,
                           .noise = sde::Noise::diagonal,
                           .adaptive = true,
                           .rtol = 1e-3,
                           .atol = 1e-3});
          CHECK(r.ok());
          out.push_back(r.y);
        }
        return out;
      },
      "BrownianTree and adaptive sdeint");
  const BrownianTree host(5, {4, 2}, 0.0, 1.0, {.dtype = f64});
  const std::string m = test::message_of<DeviceError>([&] {
    (void)sde::sdeint([](const Tensor& x, double) { return x; },
                      [](const Tensor& x, double) { return x; }, ones({4, 2}, f64, kStandin), 0.0,
                      1.0, host, {.steps = 2});
  });
  CHECK(m.find("sdeint") != std::string::npos);
  CHECK(m.find("standin:0") != std::string::npos);
}

TEST_CASE("sde device: the samplers run on SamplerOptions::device with the CPU's numbers",
          "[sde][device][samplers]") {
  for (const char* name : {"vp", "subvp", "ve"}) {
    const auto sde = make_sde(name);
    Calls calls_cpu, calls_dev;
    same_on_both(
        [&](Device d) {
          auto [mu, logv] = gaussian_params(d, false);
          Calls* calls = d == kCpu ? &calls_cpu : &calls_dev;
          const ScoreModelFn s = GaussianScore{sde.get(), mu, logv, d, calls};
          Generator gen(21);
          const ReverseSde rev{sde.get(), s, 0.5};
          const Tensor x = randn({6, 2}, gen, f64).to(d);
          std::vector<Tensor> out = {rev.drift(x, 0.7), rev.diffusion(0.7, d)};
          out.push_back(sample_reverse_em(*sde, s, {6, 2}, gen, {.steps = 8, .device = d}, f64));
          out.push_back(sample_reverse_em(*sde, s, {6, 2}, gen,
                                          {.steps = 5, .lambda = 0.5, .device = d}, DType::f32));
          out.push_back(sample_pc(*sde, s, {6, 1, 2}, gen,
                                  {.steps = 5, .corrector_steps = 2, .device = d}, f64));
          ode::Result stats;
          out.push_back(sample_probability_flow(*sde, s, {6, 2}, gen,
                                                {.ode = {.rtol = 1e-6, .atol = 1e-6}, .device = d},
                                                f64, &stats));
          CHECK(stats.nfe > 10);
          out.push_back(scalar(static_cast<double>(stats.nfe), f64, d));
          return out;
        },
        std::string(name) + " samplers");
    CHECK(calls_dev.total == calls_cpu.total);
    CHECK(calls_dev.total > 0);
    CHECK(calls_cpu.off_device == 0);
    CHECK(calls_dev.off_device == 0);
  }
  // A score whose parameters stayed on the CPU cannot be mixed with the device's samples.
  const VpSde vp;
  int calls = 0;
  auto [mu, logv] = gaussian_params(kCpu, false);
  const ScoreModelFn cpu_score = [&](const Tensor& x, const Tensor& t) {
    ++calls;
    const auto [alpha, std] = vp.marginal(t);
    const Tensor a = batch_view(alpha, x), s = batch_view(std, x);
    return -(x - a * mu) / (a * a * exp(logv) + s * s);
  };
  Generator gen(1);
  CHECK_THROWS_AS(sample_reverse_em(vp, cpu_score, {3, 2}, gen, {.steps = 2, .device = kStandin}),
                  DeviceError);
  CHECK(calls == 1);
}

TEST_CASE("likelihood device: CNF log-likelihoods and gradients on x's device, every strategy",
          "[sde][device][cnf]") {
  for (const Variant& v : variants())
    same_on_both(
        [&](Device d) {
          const TinyField field = tiny_field(d);
          const VectorField f = [field](double t, const Tensor& z) { return field(t, z); };
          Generator g(5), probes(11);
          // x is differentiated too: the adjoint's and the replay's dL/dx(t0) on the device
          const Tensor x = randn({4, 2}, g, f64).to(d).requires_grad_();
          CnfOptions o = options(v, probes, field.params());
          o.prior_std = 1.5;
          const LikelihoodResult r = cnf_log_likelihood(f, x, o);
          CHECK(r.solve.ok());
          std::vector<Tensor> wrt = field.params();
          wrt.push_back(x);
          return likelihood_results(r, wrt, d);
        },
        "cnf " + v.name());
  // Plain evaluation (no grad mode) on the device.
  same_on_both(
      [&](Device d) {
        NoGradGuard off;
        const TinyField field = tiny_field(d);
        Generator g(5);
        const Tensor x = randn({4, 2}, g, f64).to(d);
        const LikelihoodResult r =
            cnf_log_likelihood([field](double t, const Tensor& z) { return field(t, z); }, x, {});
        return std::vector<Tensor>{r.logp, r.z, r.delta_logp};
      },
      "cnf without grad mode");
  // A field whose parameters stayed on the CPU: a DeviceError naming both devices.
  const TinyField cpu_field = tiny_field(kCpu);
  Generator g(5);
  const Tensor x = randn({4, 2}, g, f64).to(kStandin);
  const std::string msg = test::message_of<DeviceError>([&] {
    (void)cnf_log_likelihood([&](double t, const Tensor& z) { return cpu_field(t, z); }, x, {});
  });
  CHECK(msg.find("cpu") != std::string::npos);
  CHECK(msg.find("standin:0") != std::string::npos);
}

TEST_CASE("likelihood device: probability-flow log-likelihoods on x's device, every strategy",
          "[sde][device][cnf]") {
  for (const char* name : {"vp", "subvp", "ve"}) {
    const auto sde = make_sde(name);
    for (const Variant& v : variants())
      same_on_both(
          [&](Device d) {
            auto [mu, logv] = gaussian_params(d, true);
            Calls calls;
            const ScoreModelFn s = GaussianScore{sde.get(), mu, logv, d, &calls};
            Generator g(5), probes(13);
            const Tensor x = randn({3, 1, 2}, g, f64).to(d);
            const LikelihoodResult r =
                probability_flow_log_likelihood(*sde, s, x, 1e-3, options(v, probes, {mu, logv}));
            CHECK(r.solve.ok());
            CHECK(calls.total > 0);
            CHECK(calls.off_device == 0);
            return likelihood_results(r, {mu, logv}, d);
          },
          std::string(name) + " probability flow " + v.name());
  }
}
