// `scoregrad sample` and `scoregrad likelihood`: what a trained checkpoint generates, and how
// well it explains held-out data, each beside a Gaussian fitted to the training data.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <span>

#include "autodiff/core/error.hpp"
#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"
#include "cli/commands.hpp"
#include "cli/experiment.hpp"
#include "cli/options.hpp"
#include "cli/pictures.hpp"
#include "nn/checkpoint.hpp"
#include "nn/optim.hpp"
#include "objectives/elbo.hpp"
#include "objectives/vdm.hpp"
#include "sde/likelihood.hpp"
#include "sde/sampling.hpp"

namespace sg::cli {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// A trained experiment: configuration from the checkpoint (plus overrides), weights loaded
// onto the --device (whatever device trained them), EMA weights in place when asked for, in
// eval mode.
struct Loaded {
  std::unique_ptr<Experiment> ex;
  std::string out;
  int64_t step = 0;
  Config stored;  // the checkpoint's configuration
};
Loaded load_run(const EvalOptions& o, const char* section) {
  const Device device = device_from_flag(o.device);
  const std::string ckpt = resolve_checkpoint(o.run);
  if (!fs::exists(ckpt)) throw IOError(std::string(section) + ": no checkpoint at " + ckpt);
  const Config stored = config_of_checkpoint(ckpt);
  Config c = stored;
  for (const auto& ov : o.overrides) apply_override(c, ov);
  // Overrides are checked against the checkpoint's own configuration: a key the sampling method
  // (or model, SDE) does not use must not be changed.
  check_section(c, stored, "sample", get_string(c, "sample.method"));
  Loaded l;
  l.ex = std::make_unique<Experiment>(c, &stored, device);
  nn::Module& model = *l.ex->model;
  nn::Ema ema(model, get_double(c, "train.ema"), /*warmup=*/true);
  nn::Checkpoint ck{.model = &model, .ema = &ema};
  set_activity("loading " + ckpt);
  nn::load_checkpoint(ckpt, ck);
  if (ck.step < 0 || ck.step > get_int(c, "train.steps"))
    throw IOError(std::string(section) + ": " + ckpt + " is at step " + std::to_string(ck.step) +
                  ", outside its own run of " + std::to_string(get_int(c, "train.steps")) +
                  " steps");
  if (const std::string bad = first_non_finite_weight(model, ema); !bad.empty())
    throw IOError(std::string(section) + ": " + ckpt + " holds non-finite values in '" + bad + "'");
  std::string use_ema = section;  // built in two steps: GCC 12 -Wrestrict false positive
  use_ema += ".use_ema";
  if (get_bool(c, use_ema)) ema.apply_to(model);
  l.ex->check_schedule(std::string(section) + ": " + ckpt);
  model.eval();
  l.step = ck.step;
  l.stored = stored;
  fs::path out = o.out.empty()
                     ? (fs::is_directory(o.run) ? fs::path(o.run) : fs::path(ckpt).parent_path())
                     : fs::path(o.out);
  if (out.empty()) out = fs::current_path();
  l.out = out.string();
  fs::create_directories(l.out);
  return l;
}

std::string path_in(const std::string& dir, const char* name) {
  return (fs::path(dir) / name).string();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// `n` samples from the model with the sample.* settings of the configuration, drawn on the
// experiment's device and returned in host memory (NaN or infinite samples are an error naming
// how they were drawn); `report` gets method, timing and cost.
Tensor draw_from_model(const Experiment& ex, int64_t n, Generator& gen, json& report) {
  const Config& c = ex.config;
  const std::string method = get_string(c, "sample.method");  // the schema checked sample.*
  SamplerOptions so;
  so.steps = get_int(c, "sample.steps");
  so.t_eps = get_double(c, "sample.t_eps");
  so.snr = get_double(c, "sample.snr");
  so.corrector_steps = get_int(c, "sample.corrector_steps");
  so.ode.rtol = get_double(c, "sample.rtol");
  so.ode.atol = get_double(c, "sample.atol");
  so.device = ex.device;

  NoGradGuard no_grad;
  const ScoreModelFn s = [&](const Tensor& x, const Tensor& t) { return ex.score(x, t); };
  std::vector<int64_t> dims{n};
  for (int i = 0; i < ex.data.example_shape.rank(); ++i) dims.push_back(ex.data.example_shape[i]);
  const Shape sample_shape{std::span<const int64_t>(dims)};
  set_activity("sampling " + std::to_string(n) + " examples of shape " +
               ex.data.example_shape.str() + " with " + method);
  const auto t0 = std::chrono::steady_clock::now();
  if (ex.vdm) {  // VDM's ancestral sampler (Experiment allows no other), then the decoder's argmax
    const obj::ObjectiveConfig oc = objective_config(c, objective_of(c), *ex.sde);
    const Tensor levels = obj::vdm_sample(ex.vdm->schedule, ex.vdm_network(), sample_shape, gen,
                                          obj::vdm_options(oc), so.steps, DType::f32, ex.device);
    if (const int64_t bad = count_non_finite(levels); bad > 0)
      throw ValueError("sample: " + std::to_string(bad) + " of " + std::to_string(levels.numel()) +
                       " sample values are not finite (ancestral, sample.steps = " +
                       std::to_string(so.steps) + "); nothing was written");
    report["method"] = method;
    report["device"] = device_name(ex.device);
    report["seconds"] = seconds_since(t0);
    report["steps"] = so.steps;
    report["network_evaluations"] = so.steps;
    report["space"] = "levels";  // the decoder's most likely level, 0 .. objective.levels - 1
    return levels.to(Device::cpu());
  }
  ode::Result stats;
  Tensor samples = method == "pc"   ? sample_pc(*ex.sde, s, sample_shape, gen, so)
                   : method == "em" ? sample_reverse_em(*ex.sde, s, sample_shape, gen, so)
                                    : sample_probability_flow(*ex.sde, s, sample_shape, gen, so,
                                                              DType::f32, &stats);
  const double secs = seconds_since(t0);
  const std::string how = method == "ode" ? "ode, sample.rtol = " + std::to_string(so.ode.rtol)
                                          : method + ", sample.steps = " + std::to_string(so.steps);
  if (const int64_t bad = count_non_finite(samples); bad > 0)
    throw ValueError("sample: " + std::to_string(bad) + " of " + std::to_string(samples.numel()) +
                     " sample values are not finite (" + how + "); nothing was written");
  if (ex.data.images) samples = clamp(samples, -1.0, 1.0);
  samples = samples.to(Device::cpu());
  report["method"] = method;
  report["device"] = device_name(ex.device);
  report["seconds"] = secs;
  if (method == "ode")
    report["nfe"] = stats.nfe;
  else
    report["score_evaluations"] = so.steps * (method == "pc" ? 1 + so.corrector_steps : 1);
  return samples;
}

// Sample quality of 2-D data: MMD^2 to held-out data (kernels at 1/8, 1/4, 1/2 and 1 times the
// median distance, summed) of the first min(n, held-out) samples, of as many samples of a
// Gaussian fitted to the training data and of training data itself (where an exact sampler
// would land). A non-finite figure is an error.
struct SampleQuality {
  double model = 0, gaussian = 0, data = 0, median = 0;
  int64_t points = 0, held_out = 0;
  json to_json() const {
    return {{"model", model},
            {"gaussian_fit", gaussian},
            {"training_data", data},
            {"median_distance", median},
            {"points", points}};
  }
};
SampleQuality sample_quality(const Experiment& ex, const Tensor& samples, Generator& gen) {
  Generator data_gen(1);
  const Tensor held_out = ex.to_model_space(ex.data.test, data_gen);
  const GaussianFit g = fit_gaussian(ex.data.train.to(DType::f64));
  SampleQuality q;
  q.held_out = held_out.dim(0);
  q.median = median_distance(held_out);
  const double h = q.median;
  const std::vector<double> bandwidths = {h / 8, h / 4, h / 2, h};
  auto mmd = [&](const Tensor& a) { return mmd2(a, held_out, bandwidths); };
  q.points = std::min<int64_t>(samples.dim(0), held_out.dim(0));
  q.model = mmd(slice(samples, 0, 0, q.points));
  q.gaussian = mmd(g.sample(q.points, gen));
  q.data = mmd(slice(ex.data.train, 0, 0, q.points));
  for (double v : {q.model, q.gaussian, q.data, q.median})
    if (!std::isfinite(v))
      throw ValueError("the MMD^2 of the samples to held-out data is not finite (" +
                       q.to_json().dump() + ")");
  return q;
}

}  // namespace

int run_sample(const EvalOptions& o) {
  Loaded l = load_run(o, "sample");
  Experiment& ex = *l.ex;
  const Config& c = ex.config;
  const int64_t n = get_int(c, "sample.n");
  Generator gen(static_cast<uint64_t>(get_int(c, "sample.seed")));

  json report{{"n", n}, {"checkpoint_step", l.step}};
  const Tensor samples = draw_from_model(ex, n, gen, report);
  const std::string method = report["method"];
  std::cout << "sampled " << n << " with " << method << " in " << report["seconds"].get<double>()
            << " s\n";
  Generator data_gen(1);
  Tensor held_out = ex.to_model_space(ex.data.test, data_gen);
  Tensor picture = samples;  // in model space
  if (ex.vdm) {  // levels: pictured encoded in [-1, 1], beside the held-out data's levels
    const int64_t levels = get_int(c, "objective.levels");
    picture = obj::vdm_encode(samples, levels);
    held_out = obj::vdm_encode(ex.data.test, levels);
  }
  if (!ex.data.images) {
    const SampleQuality q = sample_quality(ex, samples, gen);
    report["mmd2"] = q.to_json();
    std::printf(
        "MMD^2 to %lld held-out points (median distance %.3f): model %.5f, fitted Gaussian %.5f, "
        "training data %.5f\n",
        static_cast<long long>(q.held_out), q.median, q.model, q.gaussian, q.data);
  }
  nn::save_safetensors(path_in(l.out, "samples.safetensors"), {{"samples", samples}},
                       {{"method", method}, {"config", to_text(c)}});
  draw_samples(picture, held_out, ex.data.images, path_in(l.out, "samples.png"),
               "samples (" + method + ")");
  nn::write_file_atomic(path_in(l.out, "sample.json"), report.dump(2) + "\n");
  std::cout << "wrote " << path_in(l.out, "samples.png") << "\n";
  return 0;
}

namespace {
// objective vdm: the negative VLB of held-out data in bits/dim (the run's objective.timesteps:
// continuous or discrete time), likelihood.elbo_draws draws of (eps0, t, eps) per example
// averaged, with its standard error over the examples and the three terms' means.
int vdm_likelihood(const Loaded& l, const Config& stored) {
  const Experiment& ex = *l.ex;
  const Config& c = ex.config;
  // The probability-flow ODE's and the density map's settings have nothing to do here.
  for (const char* key : {"likelihood.rtol", "likelihood.atol", "likelihood.t_eps",
                          "likelihood.trace", "likelihood.grid"})
    if (value_at(c, key) != value_at(stored, key))
      throw ConfigError("configuration key '" + std::string(key) +
                        "' = " + value_at(c, key).dump() +
                        " is not used by the VLB of a vdm run (no ODE, no density map); remove "
                        "it or leave it at " +
                        value_at(stored, key).dump());
  const int64_t n =
      std::min(get_int_in(c, "likelihood.n", 1, int64_t{1} << 30), ex.data.test.dim(0));
  const int64_t draws = get_int_in(c, "likelihood.elbo_draws", 1, 100000);
  Generator gen(static_cast<uint64_t>(get_int_in(c, "likelihood.seed", 0, INT64_MAX)));
  const obj::VdmOptions vo = obj::vdm_options(objective_config(c, objective_of(c), *ex.sde));
  NoGradGuard no_grad;
  const Tensor x = slice(ex.data.test, 0, 0, n).to(ex.device);  // the levels
  set_activity("evaluating the VLB of " + std::to_string(n) + " held-out examples");
  const auto t0 = std::chrono::steady_clock::now();
  Tensor prior, recon, diffusion;  // nats per example, summed over the draws (host, float64)
  const auto add = [](Tensor& acc, const Tensor& v) {
    const Tensor h = v.to(Device::cpu()).to(DType::f64);
    acc = acc.defined() ? acc + h : h;
  };
  for (int64_t k = 0; k < draws; ++k) {
    const obj::VdmTerms t = obj::vdm_terms(ex.vdm->schedule, ex.vdm_network(), x, gen, vo);
    add(prior, t.prior), add(recon, t.recon), add(diffusion, t.diffusion);
  }
  const double secs = seconds_since(t0);
  const auto bpd = [&](const Tensor& nats) {
    return obj::mean_and_std_error(
        obj::vdm_bits_per_dim(nats / static_cast<double>(draws), ex.data.dims));
  };
  const obj::MeanEstimate total = bpd(prior + recon + diffusion), p = bpd(prior), r = bpd(recon),
                          d = bpd(diffusion);
  json report{{"unit", "bits/dim"},
              {"held_out", n},
              {"checkpoint_step", l.step},
              {"device", device_name(ex.device)},
              {"vlb",
               {{"nll_bound", total.mean},
                {"std_error", total.std_error},
                {"prior", p.mean},
                {"reconstruction", r.mean},
                {"diffusion", d.mean},
                {"diffusion_std_error", d.std_error},
                {"draws", draws},
                {"timesteps", vo.timesteps},
                {"seconds", secs}}}};
  for (double v : {total.mean, total.std_error, p.mean, r.mean, d.mean})
    if (!std::isfinite(v))
      throw ValueError("likelihood: a held-out figure is not finite (" + report.dump() +
                       "); nothing was written");
  std::printf("held-out bits/dim (%lld examples, lower is better):\n", static_cast<long long>(n));
  std::printf(
      "  VDM VLB bound (-VLB)  %.4f +- %.4f   (%s, %lld draws per example, %.1f s)\n", total.mean,
      total.std_error,
      vo.timesteps == 0 ? "continuous time" : ("T = " + std::to_string(vo.timesteps)).c_str(),
      static_cast<long long>(draws), secs);
  std::printf("    prior %.4f, reconstruction %.4f, diffusion %.4f +- %.4f\n", p.mean, r.mean,
              d.mean, d.std_error);
  nn::write_file_atomic(path_in(l.out, "likelihood.json"), report.dump(2) + "\n");
  return 0;
}
}  // namespace

int run_likelihood(const EvalOptions& o) {
  Loaded l = load_run(o, "likelihood");
  if (l.ex->vdm) return vdm_likelihood(l, l.stored);
  Experiment& ex = *l.ex;
  const Config& c = ex.config;
  const int64_t n =
      std::min(get_int_in(c, "likelihood.n", 1, int64_t{1} << 30), ex.data.test.dim(0));
  const double t_eps = get_double_in(c, "likelihood.t_eps", 1e-8, 0.5);
  const std::string trace = get_choice(c, "likelihood.trace", {"auto", "exact", "hutchinson"});
  const int64_t draws = get_int_in(c, "likelihood.elbo_draws", 1, 100000);
  const int64_t grid = get_int_in(c, "likelihood.grid", 0, 1024);
  Generator gen(static_cast<uint64_t>(get_int_in(c, "likelihood.seed", 0, INT64_MAX)));
  CnfOptions co;
  co.ode.rtol = get_double_in(c, "likelihood.rtol", 1e-12, 1);
  co.ode.atol = get_double_in(c, "likelihood.atol", 1e-12, 1);
  co.exact_trace = trace == "exact" || (trace == "auto" && ex.data.dims <= 16);
  co.gen = &gen;

  NoGradGuard no_grad;
  const ScoreModelFn s = [&](const Tensor& x, const Tensor& t) { return ex.score(x, t); };
  // Held-out data in model space on the device; figures come back to the host.
  const Tensor x = ex.to_model_space(slice(ex.data.test, 0, 0, n).to(ex.device), gen);
  const bool bpd = ex.data.images;
  // Per example, in host memory: nats of the model-space density, or bits/dim on the discrete
  // data.
  auto score_of = [&](const Tensor& logp_any) {
    const Tensor logp = logp_any.to(Device::cpu()).to(DType::f64);
    return bpd ? obj::bits_per_dim(logp, ex.data.dims, ex.data.levels,
                                   full({logp.dim(0)}, ex.logdet_per_example(), DType::f64))
               : -logp;
  };
  const char* unit = bpd ? "bits/dim" : "nats";

  set_activity("evaluating the likelihood of " + std::to_string(n) + " held-out examples");
  auto t0 = std::chrono::steady_clock::now();
  const LikelihoodResult r = probability_flow_log_likelihood(*ex.sde, s, x, t_eps, co);
  const double ode_secs = seconds_since(t0);
  const obj::MeanEstimate ode_nll = obj::mean_and_std_error(score_of(r.logp));

  t0 = std::chrono::steady_clock::now();
  Tensor elbo_sum;
  for (int64_t k = 0; k < draws; ++k) {
    const Tensor e =
        obj::elbo_denoising(*ex.sde, s, x, gen,
                            {.t_eps = t_eps, .sampling = obj::TimeSampling::importance})
            .to(DType::f64);
    elbo_sum = elbo_sum.defined() ? elbo_sum + e : e;
  }
  const obj::MeanEstimate elbo_nll =
      obj::mean_and_std_error(score_of(elbo_sum / static_cast<double>(draws)));
  const double elbo_secs = seconds_since(t0);

  // The reference: a Gaussian fitted to the training data in model space.
  Generator fit_gen(2);
  const GaussianFit g = fit_gaussian(ex.to_model_space(ex.data.train, fit_gen).to(DType::f64));
  const obj::MeanEstimate gauss_nll = obj::mean_and_std_error(score_of(g.log_prob(x)));

  json report{{"unit", unit},
              {"held_out", n},
              {"checkpoint_step", l.step},
              {"device", device_name(ex.device)},
              {"probability_flow",
               {{"nll", ode_nll.mean},
                {"std_error", ode_nll.std_error},
                {"nfe", r.solve.nfe},
                {"trace", co.exact_trace ? "exact" : "hutchinson"},
                {"rtol", co.ode.rtol},
                {"seconds", ode_secs}}},
              {"elbo",
               {{"nll_bound", elbo_nll.mean},
                {"std_error", elbo_nll.std_error},
                {"draws", draws},
                {"seconds", elbo_secs}}},
              {"gaussian_fit", {{"nll", gauss_nll.mean}, {"std_error", gauss_nll.std_error}}},
              {"margin_over_gaussian", gauss_nll.mean - ode_nll.mean}};
  for (double v :
       {ode_nll.mean, ode_nll.std_error, elbo_nll.mean, elbo_nll.std_error, gauss_nll.mean})
    if (!std::isfinite(v))
      throw ValueError("likelihood: a held-out figure is not finite (" + report.dump() +
                       "); nothing was written");
  std::printf("held-out %s (%lld examples, lower is better):\n", unit, static_cast<long long>(n));
  std::printf("  probability-flow ODE  %.4f +- %.4f   (NFE %lld, %s trace, %.1f s)\n", ode_nll.mean,
              ode_nll.std_error, static_cast<long long>(r.solve.nfe),
              co.exact_trace ? "exact" : "Hutchinson", ode_secs);
  std::printf("  ELBO bound (-ELBO)    %.4f +- %.4f   (%lld draws per example, %.1f s)\n",
              elbo_nll.mean, elbo_nll.std_error, static_cast<long long>(draws), elbo_secs);
  std::printf("  fitted Gaussian       %.4f +- %.4f\n", gauss_nll.mean, gauss_nll.std_error);
  const double margin = gauss_nll.mean - ode_nll.mean;
  if (margin >= 0)
    std::printf("  likelihood: the model beats the Gaussian by %.4f %s\n", margin, unit);
  else
    std::printf("  likelihood: the model is worse than the Gaussian by %.4f %s\n", -margin, unit);

  if (!bpd) {
    // Likelihood alone does not make a model good (a density can put mass where its samples
    // never go): the samples' MMD^2 to held-out data, beside the fitted Gaussian's, drawn with
    // the sample.* settings (as `scoregrad sample` would, min(likelihood.n, held-out) of them).
    Generator sample_gen(static_cast<uint64_t>(get_int_in(c, "sample.seed", 0, INT64_MAX)));
    json how;
    const Tensor samples = draw_from_model(ex, n, sample_gen, how);
    const SampleQuality q = sample_quality(ex, samples, sample_gen);
    const bool worse = q.model > q.gaussian;
    report["samples"] = {
        {"method", how["method"]}, {"mmd2", q.to_json()}, {"worse_than_gaussian", worse}};
    std::printf("  samples (%s): MMD^2 to held-out data %.5f, fitted Gaussian's %.5f\n",
                how["method"].get<std::string>().c_str(), q.model, q.gaussian);
    if (worse)
      std::printf(
          "  WARNING: the model's samples are further from held-out data than the fitted "
          "Gaussian's (MMD^2 %.5f > %.5f): %s\n",
          q.model, q.gaussian,
          margin >= 0 ? "its likelihood margin does not make it a better model"
                      : "it is worse than the Gaussian on both counts");
  }

  if (!bpd && grid > 0) {
    // The density on a grid over the held-out data's range, from the same ODE.
    const Tensor test = ex.data.test.to(DType::f64);
    const double lim = 1.1 * max(abs(test)).item();
    std::vector<double> pts;
    for (int64_t iy = 0; iy < grid; ++iy)
      for (int64_t ix = 0; ix < grid; ++ix) {
        pts.push_back(-lim + (ix + 0.5) * 2 * lim / grid);
        pts.push_back(-lim + (iy + 0.5) * 2 * lim / grid);
      }
    const Tensor xs = from_vector(pts, {grid * grid, 2}, x.dtype(), ex.device);
    set_activity("evaluating the density on a " + std::to_string(grid) + " x " +
                 std::to_string(grid) + " grid");
    const LikelihoodResult rg = probability_flow_log_likelihood(*ex.sde, s, xs, t_eps, co);
    if (const int64_t bad = count_non_finite(rg.logp); bad > 0)
      throw ValueError("likelihood: the density is not finite at " + std::to_string(bad) +
                       " grid points; nothing was written");
    draw_density(rg.logp.to_vector(), static_cast<int>(grid), -lim, lim, ex.data.train,
                 path_in(l.out, "density.png"), "model density (probability-flow ODE)");
    report["density_grid"] = {{"points", grid * grid}, {"nfe", rg.solve.nfe}};
    std::cout << "wrote " << path_in(l.out, "density.png") << "\n";
  }
  nn::write_file_atomic(path_in(l.out, "likelihood.json"), report.dump(2) + "\n");
  return 0;
}

}  // namespace sg::cli
