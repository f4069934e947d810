// `scoregrad train`: the training loop with metrics, checkpoints and bit-identical resume.
//
// Everything a step depends on is in the checkpoint: parameters, optimizer moments, EMA, the
// training generator (objective noise, times, dequantization), the data loader's epoch order
// and position, and the step (which sets the learning-rate schedule). Resuming from a
// checkpoint therefore continues exactly as if the run had never stopped: the final checkpoint
// files of an interrupted-and-resumed run and an uninterrupted one are the same bytes.
//
// Nothing non-finite is ever saved: the loss is checked every step, the gradient norm every
// step where clipping computes it, and the parameters and EMA weights before every checkpoint
// write and at the end. A blow-up ends the run with exit 1 and leaves the last good checkpoint
// in place, so `--resume` continues from it (e.g. with a smaller train.lr).
//
// Test hooks, the first two ending the process with SIGKILL as kill -9 or a power cut would:
//   SG_CLI_CRASH_IN_SAVE=k     the k-th checkpoint save of this process writes part of its
//                              temporary file, then the process dies;
//   SG_CLI_KILL_AFTER_STEP=k   the process dies right after step k (checkpointed or not);
//   SG_CLI_NAN_AFTER_STEP=k    after the update of step k one parameter becomes NaN (a blow-up
//                              that the loss of that step could not show).
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "autodiff/core/error.hpp"
#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"
#include "cli/commands.hpp"
#include "cli/experiment.hpp"
#include "cli/options.hpp"
#include "cli/pictures.hpp"
#include "cli/progress.hpp"
#include "nn/checkpoint.hpp"
#include "nn/datasets.hpp"
#include "nn/optim.hpp"
#include "objectives/registry.hpp"

namespace sg::cli {
namespace {

using json = nlohmann::json;

// Keeps the metric lines of steps <= `step` (a resumed run rewrites what came after its
// checkpoint), dropping a torn last line.
void truncate_metrics(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string line, kept;
  while (std::getline(in, line)) {
    if (!json::accept(line)) continue;
    const json j = json::parse(line);
    if (j.contains("step") && j["step"].get<int64_t>() <= step) kept += line + "\n";
  }
  nn::write_file_atomic(path, kept);
}

}  // namespace

int run_train(const TrainOptions& opts) {
  namespace fs = std::filesystem;
  const Device device = device_from_flag(opts.device);  // before anything is written
  std::error_code ec;
  fs::create_directories(opts.out, ec);
  if (ec)
    throw IOError("train: cannot create the output directory " + opts.out + ": " + ec.message());
  const std::string ckpt_path = checkpoint_path(opts.out);
  const bool resuming = opts.resume && fs::exists(ckpt_path);

  Config config = opts.config;
  if (resuming) {
    config = config_of_checkpoint(ckpt_path);
    if (opts.has_config_file) {
      for (const std::string& key : differing_keys(config, opts.config)) {
        if (key == "train.steps" || key == "train.log_every" || key == "train.checkpoint_every")
          continue;
        throw ConfigError("train --resume: configuration key '" + key + "' differs from " +
                          ckpt_path + " (" + value_at(opts.config, key).dump() + " given, " +
                          value_at(config, key).dump() + " in the checkpoint)");
      }
      for (const char* key : {"train.steps", "train.log_every", "train.checkpoint_every"})
        apply_override(config, std::string(key) + "=" + value_at(opts.config, key).dump());
    }
    for (const auto& o : opts.overrides) apply_override(config, o);
  }

  // Build everything from the configuration (all configuration errors surface here).
  set_activity(
      "building the data set (data.train_size = " + value_at(config, "data.train_size").dump() +
      ", data.test_size = " + value_at(config, "data.test_size").dump() + ") and the model");
  Experiment ex(config, nullptr, device);
  const obj::ObjectiveInfo& objective = objective_of(config);
  const obj::ObjectiveConfig oc = objective_config(config, objective, *ex.sde);
  // The sample.* keys are for later sampling; checked now so that a mistake shows at once.
  check_section(config, default_config(), "sample", get_string(config, "sample.method"));
  const int64_t steps = get_int_in(config, "train.steps", 0, int64_t{1} << 40);
  const int64_t batch = get_int_in(config, "train.batch", 1, ex.data.train.dim(0));
  const double lr = get_double_in(config, "train.lr", 0, 10);
  const double min_lr = get_double_in(config, "train.min_lr", 0, lr);
  // Warm-up longer than the run is cut to the run (a short test of a long configuration).
  const int64_t warmup = std::min(get_int_in(config, "train.warmup", 0, int64_t{1} << 40), steps);
  const double wd = get_double_in(config, "train.weight_decay", 0, 10);
  const double clip = get_double_in(config, "train.grad_clip", 0, 1e30);
  const double ema_decay = get_double_in(config, "train.ema", 0, 1);
  const int64_t log_every = get_int_in(config, "train.log_every", 1, int64_t{1} << 40);
  const int64_t ckpt_every = get_int_in(config, "train.checkpoint_every", 1, int64_t{1} << 40);
  const uint64_t seed = static_cast<uint64_t>(get_int_in(config, "train.seed", 0, INT64_MAX));
  const std::string optim_name = get_choice(config, "train.optimizer", {"adam", "adamw"});
  // objective vdm: the schedule trains with the network (its parameters "schedule.*" in the
  // optimizer, the EMA and the checkpoint) through vdm_value_and_grad, which gives its interior
  // the variance gradient (objective.schedule_gradient).
  VdmModel* const vdm = ex.vdm;
  if (vdm && wd != 0 && vdm->schedule.num_parameters() > 0)
    throw ConfigError(
        "configuration key 'train.weight_decay' = " + std::to_string(wd) +
        " would decay the learned noise schedule's parameters (objective.schedule = " +
        vdm->schedule.name() + ") towards 0; leave it at 0 with objective vdm");

  nn::Module& model = *ex.model;  // on `device`: so are the optimizer's and the EMA's state
  std::unique_ptr<nn::Optimizer> opt;
  if (optim_name == "adamw")
    opt = std::make_unique<nn::AdamW>(model.named_parameters(),
                                      nn::AdamWOptions{.lr = lr, .weight_decay = wd});
  else
    opt = std::make_unique<nn::Adam>(model.named_parameters(),
                                     nn::AdamOptions{.lr = lr, .weight_decay = wd});
  nn::Ema ema(model, ema_decay, /*warmup=*/true);
  Generator& gen = *ex.noise;  // at (seed, 0), as Generator(seed); the model's dropout uses it
  Generator loader_gen(seed ^ 0x9e3779b97f4a7c15ULL);
  nn::DataLoader loader(ex.data.train, batch, loader_gen, /*shuffle=*/true, /*drop_last=*/true);
  loader.to(device);  // the data set stays in host memory; each batch is moved
  const nn::WarmupCosine schedule{.base_lr = lr,
                                  .min_lr = min_lr,
                                  .warmup_steps = warmup,
                                  .total_steps = std::max<int64_t>(steps, 1)};

  const std::string config_text = to_text(config);
  int64_t step = 0;
  if (resuming) {
    set_activity("loading " + ckpt_path);
    nn::Checkpoint ck{.model = &model, .optimizer = opt.get(), .ema = &ema, .generator = &gen};
    nn::load_checkpoint(ckpt_path, ck);
    step = ck.step;
    if (step < 0)
      throw IOError("train --resume: " + ckpt_path + " is at step " + std::to_string(step) +
                    ", which no run writes");
    if (step > steps)
      throw ConfigError("train --resume: " + ckpt_path + " is at step " + std::to_string(step) +
                        ", beyond configuration key 'train.steps' = " + std::to_string(steps) +
                        " (give --steps " + std::to_string(step) + " or more to continue it)");
    if (const std::string bad = first_non_finite_weight(model, ema); !bad.empty())
      throw IOError("train --resume: " + ckpt_path + " holds non-finite values in '" + bad + "'");
    ex.check_schedule("train --resume: " + ckpt_path);
    auto it = ck.extra.find("loader");
    if (it == ck.extra.end())
      throw IOError("train --resume: " + ckpt_path + " holds no data loader state");
    loader.load_state(nn::DataLoaderState::from_tensor(it->second));
    truncate_metrics(metrics_path(opts.out), step);
    std::cerr << "resuming " << opts.out << " at step " << step << " of " << steps << "\n";
  } else {
    if (opts.resume) std::cerr << "no checkpoint in " << opts.out << ": starting from step 0\n";
    nn::write_file_atomic(metrics_path(opts.out), "");
  }
  nn::write_file_atomic((fs::path(opts.out) / "config.json").string(), config_text + "\n");

  auto env_int = [](const char* name) {
    const char* v = std::getenv(name);
    return v ? std::atoll(v) : 0LL;
  };
  const int64_t crash_at = env_int("SG_CLI_CRASH_IN_SAVE"),
                kill_after = env_int("SG_CLI_KILL_AFTER_STEP"),
                nan_after = env_int("SG_CLI_NAN_AFTER_STEP");
  int saves = 0;
  int64_t saved_step = resuming ? step : -1;  // the step of the checkpoint on disk
  // The end of a diverged run's message: what is on disk and what to try.
  const auto kept = [&] {
    return (saved_step >= 0 ? "; the checkpoint of step " + std::to_string(saved_step) +
                                  " is kept (try a smaller train.lr or train.grad_clip, then "
                                  "--resume)"
                            : std::string("; nothing was saved (try a smaller train.lr or "
                                          "train.grad_clip)"));
  };
  auto save = [&](int64_t at_step) {
    if (const std::string bad = first_non_finite_weight(model, ema); !bad.empty())
      throw ValueError("train: parameter '" + bad + "' is not finite after step " +
                       std::to_string(at_step) + kept());
    set_activity("saving " + ckpt_path + " at step " + std::to_string(at_step));
    nn::Checkpoint ck{.model = &model,
                      .optimizer = opt.get(),
                      .ema = &ema,
                      .generator = &gen,
                      .step = at_step,
                      .config = config_text,
                      .extra = {{"loader", loader.state().to_tensor()}}};
    if (++saves == crash_at) nn::testing::crash_next_save_after(64);
    try {
      nn::save_checkpoint(ckpt_path, ck);
    } catch (const nn::testing::SimulatedCrash&) {
      std::raise(SIGKILL);
    }
    saved_step = at_step;
  };

  std::cerr << "train: " << ex.data.name << " (" << ex.data.train.dim(0) << " train / "
            << ex.data.test.dim(0) << " held out), " << model.num_parameters()
            << " parameters, objective " << objective.name << ", sde " << ex.sde->name() << ", "
            << steps << " steps of batch " << batch
            << (device.is_cpu() ? "" : " on " + device_name(device)) << "\n";
  std::ofstream metrics(metrics_path(opts.out), std::ios::app);
  const auto params = [&] { return model.parameters(); };
  const obj::TimeScoreFn score = [&](const Tensor& x, const Tensor& t) { return ex.score(x, t); };
  const obj::VdmOptions vdm_opts = obj::vdm_options(oc);
  const obj::TimeScoreFn vdm_net = vdm ? ex.vdm_network() : obj::TimeScoreFn();
  // One step's loss and gradients (aligned with params()): the registry's objective on model-
  // space data, or VDM on the data's levels (the network's gradients, then the schedule's).
  const auto loss_and_grads = [&](const Tensor& batch) -> std::pair<Tensor, std::vector<Tensor>> {
    if (!vdm) {
      const Tensor loss = objective.fn(score, ex.to_model_space(batch, gen), gen, oc);
      return {loss, grad(loss, params())};
    }
    obj::VdmStep st = obj::vdm_value_and_grad(vdm->schedule, vdm_net, vdm->net.parameters(), batch,
                                              gen, vdm_opts);
    std::vector<Tensor> grads = std::move(st.net_grads);
    grads.insert(grads.end(), st.schedule_grads.begin(), st.schedule_grads.end());
    const std::vector<Tensor> ps = params();
    for (size_t k = 0; k < grads.size(); ++k)  // a parameter the loss does not reach
      if (!grads[k].defined()) grads[k] = zeros_like(ps[k]);
    return {st.loss, grads};
  };
  ex.check_schedule("train: the initial schedule");
  Progress bar("train", step, steps);
  double loss_sum = 0, running = NAN;
  int64_t loss_count = 0;
  char status[96];
  model.train();
  set_activity("training (" + std::to_string(model.num_parameters()) + " parameters, batch " +
               std::to_string(batch) + " of " + std::to_string(ex.data.dims) +
               "-dimensional data, objective " + objective.name + ")");
  while (step < steps) {
    opt->set_lr(schedule.lr(step));
    auto [loss, grads] = loss_and_grads(loader.next_batch().data);
    const double l = loss.item();
    if (!std::isfinite(l))
      throw ValueError("train: the loss is " + std::to_string(l) + " at step " +
                       std::to_string(step + 1) + kept());
    const double norm = clip > 0 ? nn::clip_grad_norm(grads, clip) : NAN;
    if (clip > 0 && !std::isfinite(norm))
      throw ValueError("train: the gradient norm is " + std::to_string(norm) + " at step " +
                       std::to_string(step + 1) + " (loss " + std::to_string(l) + ")" + kept());
    opt->step(grads);
    ema.update();
    ++step;
    if (step == nan_after) {
      Tensor& p = *model.named_parameters().front().second;
      p = (p * NAN).detach().requires_grad_();
    }
    loss_sum += l, ++loss_count;
    running = std::isnan(running) ? l : 0.98 * running + 0.02 * l;
    if (step % log_every == 0 || step == steps) {
      json m{{"step", step},
             {"loss", loss_sum / static_cast<double>(loss_count)},
             {"lr", opt->lr()},
             {"time_s", bar.seconds()}};
      if (!std::isnan(norm)) m["grad_norm"] = norm;
      if (vdm)  // the loss is -VLB in nats per example; also in bits/dim
        m["bpd"] = loss_sum / static_cast<double>(loss_count) /
                   (static_cast<double>(ex.data.dims) * std::log(2.0));
      metrics << m.dump() << "\n" << std::flush;
      loss_sum = 0, loss_count = 0;
    }
    if (step % ckpt_every == 0 || step == steps) save(step);
    if (step == kill_after) std::raise(SIGKILL);
    std::snprintf(status, sizeof status, "loss %.4g", running);
    bar.update(step, status);
  }
  bar.finish();
  if (steps == 0) save(0);
  metrics.close();
  draw_loss_curve(metrics_path(opts.out), (fs::path(opts.out) / "loss.png").string(),
                  objective.name);
  std::cout << "trained " << steps << " steps; checkpoint " << ckpt_path << "\n";
  return 0;
}

std::string resolve_checkpoint(const std::string& run) {
  namespace fs = std::filesystem;
  if (fs::is_directory(run)) return checkpoint_path(run);
  return run;
}

}  // namespace sg::cli
