// What every scoregrad subcommand builds from a configuration: the dataset with its held-out
// split and its map to model space, the SDE, the score model and its score function, and the
// run directory's files (checkpoint, resolved configuration, metrics).
//
//   Experiment ex(config, nullptr, device);         // data, SDE, model from the config
//   Tensor x = ex.to_model_space(batch, gen);       // digits: dequantize, then 2u - 1
//   Tensor s = ex.score(x, t);                      // model(x, t) / std(t)
//
// Devices: the command computes on one device (--device); the model lives there, training
// batches and held-out data are moved there, samplers and likelihoods run there, and only
// results (samples, figures) come back to the host for statistics and files. The data sets
// stay in host memory. A device is not part of a run's configuration: a checkpoint holds no
// device, so a run trained on one device resumes, samples and evaluates on any other, with the
// same numbers wherever the arithmetic is the same (the stand-in device: bitwise).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "autodiff/core/rng.hpp"
#include "autodiff/core/tensor.hpp"
#include "cli/config.hpp"
#include "nn/networks.hpp"
#include "nn/optim.hpp"
#include "objectives/registry.hpp"
#include "objectives/vdm_schedule.hpp"
#include "sde/sde.hpp"

namespace sg::cli {

// objective vdm: the network and the noise schedule trained with it, as one module, so that the
// optimizer, the EMA, the checkpoint and device moves hold both: parameters "net.<network's>"
// and "schedule.<schedule's>". Called as the network: (z, c) -> net(z, c), c the conditioning.
class VdmModel : public nn::ScoreModel {
 public:
  VdmModel(std::unique_ptr<nn::ScoreModel> network, std::unique_ptr<obj::NoiseSchedule> gamma);
  Tensor operator()(const Tensor& z, const Tensor& c) const override { return net(z, c); }
  nn::ScoreModel& net;
  obj::NoiseSchedule& schedule;
};

// The device named by a --device flag: "cpu", "cuda", "cuda:N", "standin" or "standin:N" (the
// stand-in device is for tests, see autodiff/backend/standin/), after checking that it exists.
// ConfigError naming the flag and the device otherwise: a malformed name, cuda on a build
// without CUDA or on a machine without that GPU, standin beyond standin:3.
Device device_from_flag(const std::string& name);

struct Dataset {
  std::string name;
  bool images = false;  // digits: [N, 1, 8, 8] pixel counts 0..16; toys: [N, 2] points
  Tensor train, test;   // raw data
  int64_t dims = 0;     // per example
  Shape example_shape;  // e.g. {2} or {1, 8, 8}
  double levels = 0;    // discrete levels (17 for digits), 0 for continuous data
};
// data.name: a 2-D toy (drawn with data.seed: train_size points, then test_size held-out
// points from an independent stream) or "digits" (data.path or the repository's file, split
// by a permutation drawn with data.seed: the last test_size examples are held out, the
// training split is the first min(train_size, N - test_size)).
Dataset load_dataset(const Config& c);

class Experiment {
 public:
  // Checks the data, model and SDE keys against the options schema (cli/options.hpp): a key the
  // chosen model kind or SDE does not use must equal its value in `baseline` (default: the
  // defaults; sample and likelihood pass the checkpoint's configuration). ConfigError naming
  // the key otherwise, also for a combination the library refuses (sde.sigma_min >=
  // sde.sigma_max, model.groups not dividing a level's width, ...).
  // The model is built on the host (its initial weights drawn there) and moved to `device`.
  // With objective.name = vdm the objective's keys are checked here too, the model is a VdmModel
  // (its schedule's weights drawn after the network's) and ConfigErrors name what VDM cannot
  // use: continuous data, objective.levels other than the data's, objective.fourier_features
  // (neither network reads the extra channels), sde.* changed with a schedule other than vp,
  // sample.method other than ancestral (which only vdm runs use).
  explicit Experiment(const Config& c, const Config* baseline = nullptr, Device device = {});
  Config config;
  Device device;  // where the model lives and the command computes
  Dataset data;
  std::unique_ptr<Sde> sde;
  std::unique_ptr<nn::ScoreModel> model;
  VdmModel* vdm = nullptr;  // objective vdm: `model` as its network and schedule
  // The training generator (train.seed, restarted after initialising the model): the model's
  // dropout draws from it, and train uses it for the objective's noise and saves it in the
  // checkpoint, so dropout masks resume exactly too.
  std::unique_ptr<Generator> noise;

  // Raw data -> the space the model works in, on raw's device. Toys: unchanged. Digits:
  // uniform dequantization u = (x + U) / 17, then y = 2u - 1 in [-1, 1).
  Tensor to_model_space(const Tensor& raw, Generator& gen) const;
  // log|det d(model space)/d(u)| per example, for bits/dim (digits: D ln 2; toys: 0).
  double logdet_per_example() const;
  // s(x, t) = model(x, t) / std(t): the network predicts -noise, the score scales with 1/std.
  Tensor score(const Tensor& x, const Tensor& t) const;
  // objective vdm: the network behind the base-measure skip, net(z, c) (obj::vdm_loss's fn).
  obj::TimeScoreFn vdm_network() const;
  // objective vdm: ScheduleError from obj::check_monotone as an IOError naming `where` (a
  // checkpoint whose schedule does not increase); nothing for other objectives.
  void check_schedule(const std::string& where) const;
};

// The objective named by objective.name (ConfigError listing the registered ones otherwise),
// and its settings from the objective.* keys: each in its range and, unless the objective
// declares it, at its default (cli/options.hpp), then the objective's own check (the choices it
// supports); ConfigError naming the key.
const obj::ObjectiveInfo& objective_of(const Config& c);
obj::ObjectiveConfig objective_config(const Config& c, const obj::ObjectiveInfo& info,
                                      const Sde& sde);

// ---- the run directory ------------------------------------------------------------------------
std::string checkpoint_path(const std::string& dir);  // dir/checkpoint.safetensors
std::string metrics_path(const std::string& dir);     // dir/metrics.jsonl
// Reads the resolved configuration stored in a checkpoint's metadata.
Config config_of_checkpoint(const std::string& path);

// Whether every element of x is finite (one reduction: sum(x * 0) is NaN exactly when x holds a
// NaN or an infinity), and how many elements are not.
bool all_finite(const Tensor& x);
int64_t count_non_finite(const Tensor& x);
// The first parameter of the model, or EMA weight (named "ema.<param>"), that is not finite;
// empty when all are.
std::string first_non_finite_weight(nn::Module& model, const nn::Ema& ema);

// ---- statistics shared by sample and likelihood -----------------------------------------------
// A Gaussian N(mu, Sigma) fitted by maximum likelihood to rows of x [N, D] (float64).
struct GaussianFit {
  Tensor mean;                             // [D]
  Tensor cov;                              // [D, D]
  Tensor log_prob(const Tensor& x) const;  // [N], nats
  Tensor sample(int64_t n, Generator& gen) const;
};
GaussianFit fit_gaussian(const Tensor& x);
// Unbiased squared maximum mean discrepancy with the Gaussian kernel exp(-|a-b|^2 / (2 h^2)),
// summed over the bandwidths h (the squared distances are computed once for all of them).
double mmd2(const Tensor& a, const Tensor& b, const std::vector<double>& bandwidths);
// Median pairwise distance between the first min(n, 500) rows: the usual bandwidth heuristic.
double median_distance(const Tensor& x);

}  // namespace sg::cli
