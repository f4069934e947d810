// Datasets, SDE, score model and run-directory files of the scoregrad command (experiment.hpp).
#include "cli/experiment.hpp"

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>

#include "autodiff/backend/backend.hpp"
#include "autodiff/core/error.hpp"
#include "autodiff/ops/ops.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "nn/checkpoint.hpp"
#include "nn/datasets.hpp"
#include "objectives/registry.hpp"
#ifdef SG_WITH_CUDA
#include "autodiff/backend/cuda/cuda_backend.hpp"
#endif

namespace sg::cli {
namespace {

[[noreturn]] void config_error(const std::string& msg) { throw ConfigError(msg); }

std::vector<std::string> dataset_names() {
  std::vector<std::string> names = nn::toy_names();
  names.push_back("digits");
  return names;
}

// The SDE (its keys already checked against the schema); what the constructor refuses as a
// combination names both keys.
std::unique_ptr<Sde> make_sde_from(const Config& c) {
  const std::string name = get_string(c, "sde.name");
  const bool ve = name == "ve";
  try {
    if (ve)
      return std::make_unique<VeSde>(get_double(c, "sde.sigma_min"),
                                     get_double(c, "sde.sigma_max"));
    const double b0 = get_double(c, "sde.beta_min"), b1 = get_double(c, "sde.beta_max");
    if (name == "subvp") return std::make_unique<SubVpSde>(b0, b1);
    return std::make_unique<VpSde>(b0, b1);
  } catch (const ValueError& e) {
    config_error(std::string("configuration keys ") +
                 (ve ? "'sde.sigma_min', 'sde.sigma_max'" : "'sde.beta_min', 'sde.beta_max'") +
                 ": " + e.what());
  }
}

std::string model_kind(const Config& c, const Dataset& d) {
  const std::string kind = get_string(c, "model.kind");
  return kind == "auto" ? (d.images ? "unet" : "mlp") : kind;
}

// The model (its keys already checked against the schema, and the combinations here).
std::unique_ptr<nn::ScoreModel> make_model(const Config& c, const Dataset& d, Generator& gen) {
  const std::string kind = model_kind(c, d);
  if (kind == "unet") {
    if (!d.images)
      config_error(
          "configuration key 'model.kind' = \"unet\" needs image data, but data.name = \"" +
          d.name + "\" is 2-D points");
    nn::UNetOptions o;
    o.channels = get_int(c, "model.channels");
    o.multipliers = get_int_list(c, "model.multipliers");
    o.groups = get_int(c, "model.groups");
    o.attention = get_bool(c, "model.attention");
    o.dropout = get_double(c, "model.dropout");
    for (int64_t m : o.multipliers)
      if ((o.channels * m) % o.groups)
        config_error("configuration key 'model.groups' = " + std::to_string(o.groups) +
                     " does not divide the width model.channels x multiplier = " +
                     std::to_string(o.channels) + " x " + std::to_string(m) + " of a level");
    const int64_t levels = static_cast<int64_t>(o.multipliers.size());
    for (int64_t l = 0; l + 1 < levels; ++l)
      if ((d.example_shape[1] >> l) % 2 || (d.example_shape[2] >> l) % 2)
        config_error("configuration key 'model.multipliers' has " + std::to_string(levels) +
                     " levels, but " + d.example_shape.str() + " images can be halved only " +
                     std::to_string(l) + " times (at most " + std::to_string(l + 1) + " entries)");
    try {
      return std::make_unique<nn::UNet>(d.example_shape[0], o, gen);
    } catch (const ValueError& e) {
      config_error(std::string("model (unet): ") + e.what());
    }
  }
  nn::MlpScoreOptions o;
  o.hidden = get_int(c, "model.hidden");
  o.layers = get_int(c, "model.layers");
  o.embed_dim = get_int(c, "model.embed_dim");
  o.fourier_scale = get_double(c, "model.fourier_scale");
  o.act = nn::activation_from_name(get_string(c, "model.activation"));
  if (o.embed_dim % 2)
    config_error("configuration key 'model.embed_dim' = " + std::to_string(o.embed_dim) +
                 " must be even (sin and cos features)");
  try {
    return std::make_unique<nn::MlpScoreNet>(d.dims, o, gen);
  } catch (const ValueError& e) {
    config_error(std::string("model (mlp): ") + e.what());
  }
}

// objective vdm: what the command cannot do with the configuration (see Experiment).
void check_vdm_setup(const Config& c, const Config& base, const Dataset& d,
                     const obj::ObjectiveConfig& oc, const std::string& kind) {
  if (!d.images || d.levels <= 0)
    config_error(
        "configuration key 'objective.name' = \"vdm\" needs discrete data (data.name = "
        "digits); data.name = \"" +
        d.name + "\" is continuous");
  if (oc.levels != static_cast<int64_t>(d.levels))
    config_error("configuration key 'objective.levels' = " + std::to_string(oc.levels) +
                 " does not match the data: " + d.name + " has " +
                 std::to_string(static_cast<int64_t>(d.levels)) + " levels (set objective.levels=" +
                 std::to_string(static_cast<int64_t>(d.levels)) + ")");
  if (oc.fourier_features)
    config_error("configuration key 'objective.fourier_features' = true: the " + kind +
                 " model reads and predicts as many channels as the data has, so it cannot take "
                 "the Fourier-feature channels of z; leave it at false");
  if (oc.schedule != obj::VdmSchedule::vp)
    for (const OptionSpec& spec : option_schema())
      if (spec.key.starts_with("sde.") && value_at(c, spec.key) != value_at(base, spec.key))
        config_error("configuration key '" + spec.key + "' = " + value_at(c, spec.key).dump() +
                     " is not used by objective.name = \"vdm\" with objective.schedule = \"" +
                     obj::name_of(oc.schedule) +
                     "\" (only the vp schedule uses the SDE); remove it or leave it at " +
                     value_at(base, spec.key).dump());
  if (get_string(c, "sample.method") != "ancestral")
    config_error("configuration key 'sample.method' = " + value_at(c, "sample.method").dump() +
                 " cannot sample a vdm run: set sample.method=ancestral (VDM's ancestral "
                 "sampler, sample.steps steps)");
}

}  // namespace

VdmModel::VdmModel(std::unique_ptr<nn::ScoreModel> network,
                   std::unique_ptr<obj::NoiseSchedule> gamma)
    : net(child("net", std::move(network))), schedule(child("schedule", std::move(gamma))) {}

Device device_from_flag(const std::string& name) {
  Device d;
  try {
    d = parse_device(name);
  } catch (const ValueError& e) {
    config_error(std::string("--device: ") + e.what());
  }
  const std::string what =
      "--device '" + name + "': device " + device_name(d) + " does not exist: ";
  switch (d.type) {
    case DeviceType::cpu:
      return d;
    case DeviceType::standin:
      if (d.index >= kStandinDevices)
        config_error(what + "the stand-in devices are standin:0 to standin:" +
                     std::to_string(kStandinDevices - 1));
      return d;
    case DeviceType::cuda: {
#ifdef SG_WITH_CUDA
      std::string reason;
      const int n = cuda::device_count(&reason);
      if (n == 0) config_error(what + "no CUDA device is usable (" + reason + ")");
      if (d.index >= n)
        config_error(what + "this machine has " + std::to_string(n) + " CUDA device" +
                     (n == 1 ? "" : "s") + " (cuda:0 to cuda:" + std::to_string(n - 1) + ")");
      return d;
#else
      config_error(what +
                   "this scoregrad was built without CUDA (cmake -DSG_CUDA=ON on a machine "
                   "with the CUDA toolkit)");
#endif
    }
  }
  config_error(what + "unknown device type");
}

Dataset load_dataset(const Config& c) {
  Dataset d;
  d.name = get_choice(c, "data.name", dataset_names());
  const int64_t train_size = get_int_in(c, "data.train_size", 1, int64_t{1} << 40);
  const int64_t test_size = get_int_in(c, "data.test_size", 1, int64_t{1} << 40);
  const uint64_t seed = static_cast<uint64_t>(get_int_in(c, "data.seed", 0, INT64_MAX));
  if (d.name != "digits") {
    Generator train_gen(seed), test_gen(seed);
    test_gen.set_state(seed, uint64_t{1} << 62);  // a disjoint stream of the same seed
    d.train = nn::sample_toy(d.name, train_size, train_gen);
    d.test = nn::sample_toy(d.name, test_size, test_gen);
    d.dims = 2;
    d.example_shape = Shape{2};
    return d;
  }
  const std::string path = get_string(c, "data.path");
  nn::Digits digits;
  try {
    digits = nn::load_digits(path);
  } catch (const Error& e) {
    config_error(std::string("configuration key 'data.path': ") + e.what());
  }
  const int64_t n = digits.images.dim(0);
  if (test_size >= n)
    config_error("configuration key 'data.test_size' = " + std::to_string(test_size) +
                 " leaves no training data: digits has " + std::to_string(n) + " examples");
  Generator perm_gen(seed);  // a random permutation: the order of n uniform draws
  const std::vector<double> keys = rand({n}, perm_gen, DType::f64).to_vector();
  std::vector<int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return keys[static_cast<std::size_t>(a)] < keys[static_cast<std::size_t>(b)];
  });
  const int64_t n_train = std::min(train_size, n - test_size);
  auto take = [&](int64_t begin, int64_t end) {
    return index_select(digits.images, 0,
                        from_indices({order.begin() + begin, order.begin() + end}, {end - begin}));
  };
  d.train = take(0, n_train);
  d.test = take(n - test_size, n);
  d.images = true;
  d.dims = 64;
  d.example_shape = Shape{1, 8, 8};
  d.levels = 17;
  return d;
}

Experiment::Experiment(const Config& c, const Config* baseline, Device dev)
    : config(c), device(dev) {
  const Config defaults = baseline ? Config() : default_config();
  const Config& base = baseline ? *baseline : defaults;
  data = load_dataset(c);
  check_section(c, base, "data", data.name);
  check_section(c, base, "sde", get_string(c, "sde.name"));
  check_section(c, base, "model", model_kind(c, data));
  sde = make_sde_from(c);
  const uint64_t seed = static_cast<uint64_t>(get_int_in(c, "train.seed", 0, INT64_MAX));
  // The model draws its initial weights from the stream, and its dropout layers keep a pointer
  // to it: it must outlive the model (a local generator here left model.dropout > 0 drawing
  // from a dead object). Then the stream restarts for training.
  noise = std::make_unique<Generator>(seed);
  model = make_model(c, data, *noise);
  if (get_string(c, "objective.name") == "vdm") {
    const obj::ObjectiveConfig oc = objective_config(c, objective_of(c), *sde);
    check_vdm_setup(c, base, data, oc, model_kind(c, data));
    std::unique_ptr<obj::NoiseSchedule> schedule;
    try {
      schedule = obj::make_vdm_schedule(oc, *noise);
    } catch (const obj::OptionError& e) {
      config_error("configuration key 'objective." + e.option + "': " + e.what());
    }
    auto joint = std::make_unique<VdmModel>(std::move(model), std::move(schedule));
    vdm = joint.get();
    model = std::move(joint);
  } else if (get_string(c, "sample.method") == "ancestral") {
    config_error(
        "configuration key 'sample.method' = \"ancestral\" is the sampler of "
        "objective.name = \"vdm\"; a score model samples with pc, ode or em");
  }
  model->to(device);
  noise->set_state(seed, 0);
}

Tensor Experiment::to_model_space(const Tensor& raw, Generator& gen) const {
  if (!data.images) return raw;
  return nn::dequantize(raw, static_cast<int64_t>(data.levels), gen) * 2.0 - 1.0;
}

double Experiment::logdet_per_example() const {
  return data.images ? static_cast<double>(data.dims) * std::log(2.0) : 0.0;
}

Tensor Experiment::score(const Tensor& x, const Tensor& t) const {
  const Tensor std = sde->marginal(t).second;
  return (*model)(x, t) / batch_view(std, x);
}

obj::TimeScoreFn Experiment::vdm_network() const {
  if (!vdm) fail<ValueError>("Experiment::vdm_network: objective.name is not vdm");
  return [this](const Tensor& z, const Tensor& c) { return vdm->net(z, c); };
}

void Experiment::check_schedule(const std::string& where) const {
  if (!vdm) return;
  try {
    obj::check_monotone(vdm->schedule);
  } catch (const obj::ScheduleError& e) {
    throw IOError(where + " holds a noise schedule that is not increasing: " + e.what());
  }
}

const obj::ObjectiveInfo& objective_of(const Config& c) {
  const std::string name = get_string(c, "objective.name");
  try {
    return obj::find_objective(name);
  } catch (const Error& e) {
    throw ConfigError(std::string("configuration key 'objective.name': ") + e.what());
  }
}

// The objective's settings: each key in its range and, unless the objective declares it, at
// its default (cli/options.hpp); then the objective's own check (the choices it supports).
obj::ObjectiveConfig objective_config(const Config& c, const obj::ObjectiveInfo& info,
                                      const Sde& sde) {
  check_section(c, default_config(), "objective", info.name);
  obj::ObjectiveConfig oc;
  oc.sde = &sde;
  oc.t_eps = get_double(c, "objective.t_eps");
  oc.fd_eps = get_double(c, "objective.fd_eps");
  oc.projections = static_cast<int>(get_int(c, "objective.projections"));
  const std::string p = get_string(c, "objective.projection");
  oc.projection = p == "gaussian" ? obj::Projection::gaussian
                  : p == "sphere" ? obj::Projection::sphere
                                  : obj::Projection::rademacher;
  oc.weighting = get_string(c, "objective.weighting") == "likelihood" ? obj::Weighting::likelihood
                                                                      : obj::Weighting::variance;
  oc.sampling = get_string(c, "objective.time_sampling") == "importance"
                    ? obj::TimeSampling::importance
                    : obj::TimeSampling::uniform;
  oc.schedule = obj::vdm_schedule_from_name(get_string(c, "objective.schedule"));
  oc.gamma_min = get_double(c, "objective.gamma_min");
  oc.gamma_max = get_double(c, "objective.gamma_max");
  oc.levels = get_int(c, "objective.levels");
  oc.timesteps = get_int(c, "objective.timesteps");
  oc.antithetic = get_bool(c, "objective.antithetic");
  oc.fourier_features = get_bool(c, "objective.fourier_features");
  oc.schedule_gradient =
      obj::schedule_gradient_from_name(get_string(c, "objective.schedule_gradient"));
  try {
    obj::check_config(info, oc);
  } catch (const obj::OptionError& e) {
    throw ConfigError("configuration key 'objective." + e.option + "': " + e.what());
  }
  return oc;
}

namespace {
std::string& current_activity() {
  static std::string what = "starting";
  return what;
}
}  // namespace
void set_activity(std::string what) { current_activity() = std::move(what); }
std::string activity() { return current_activity(); }

std::string checkpoint_path(const std::string& dir) {
  return (std::filesystem::path(dir) / "checkpoint.safetensors").string();
}
std::string metrics_path(const std::string& dir) {
  return (std::filesystem::path(dir) / "metrics.jsonl").string();
}

Config config_of_checkpoint(const std::string& path) {
  const nn::SafetensorsFile f = nn::load_safetensors(path);
  auto it = f.metadata.find("config");
  if (it == f.metadata.end())
    throw ConfigError(path +
                      ": the checkpoint holds no configuration (not written by scoregrad train)");
  return from_text(it->second, path);
}

bool all_finite(const Tensor& x) { return std::isfinite(sum(x * 0.0).item()); }
int64_t count_non_finite(const Tensor& x) {
  if (all_finite(x)) return 0;
  int64_t bad = 0;
  for (double v : x.to_vector()) bad += std::isfinite(v) ? 0 : 1;
  return bad;
}
std::string first_non_finite_weight(nn::Module& model, const nn::Ema& ema) {
  for (const auto& [name, p] : model.named_parameters())
    if (!all_finite(*p)) return name;
  for (const auto& [name, p] : ema.shadow())
    if (!all_finite(p)) return "ema." + name;
  return "";
}

// ---- statistics ---------------------------------------------------------------------------------

namespace {
using MatX = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
MatX to_matrix(const Tensor& x) {
  const int64_t n = x.dim(0), d = x.numel() / std::max<int64_t>(n, 1);
  const std::vector<double> v = x.to_vector();
  return Eigen::Map<const MatX>(v.data(), n, d);
}
Tensor from_matrix(const MatX& m) {
  return from_vector(std::vector<double>(m.data(), m.data() + m.size()), {m.rows(), m.cols()},
                     DType::f64);
}
}  // namespace

GaussianFit fit_gaussian(const Tensor& x) {
  const MatX m = to_matrix(x);
  const Eigen::RowVectorXd mu = m.colwise().mean();
  const MatX centred = m.rowwise() - mu;
  const MatX cov = centred.transpose() * centred / static_cast<double>(m.rows());
  return {from_matrix(mu), from_matrix(cov)};
}

Tensor GaussianFit::log_prob(const Tensor& x) const {
  const MatX m = to_matrix(x), mu = to_matrix(mean), s = to_matrix(cov);
  const int64_t d = s.rows();
  Eigen::LLT<MatX> llt(s + 1e-9 * MatX::Identity(d, d));
  if (llt.info() != Eigen::Success)
    fail<ValueError>("GaussianFit::log_prob: the covariance is not positive definite");
  const MatX centred = (m.rowwise() - mu.row(0)).transpose();  // [D, N]
  const MatX white = llt.matrixL().solve(centred);             // L^-1 (x - mu)
  const double logdet = 2 * llt.matrixL().toDenseMatrix().diagonal().array().log().sum();
  std::vector<double> out(static_cast<std::size_t>(m.rows()));
  for (int64_t i = 0; i < m.rows(); ++i)
    out[static_cast<std::size_t>(i)] =
        -0.5 * (white.col(i).squaredNorm() + logdet + d * std::log(2 * M_PI));
  return from_vector(out, {m.rows()}, DType::f64);
}

Tensor GaussianFit::sample(int64_t n, Generator& gen) const {
  const MatX s = to_matrix(cov);
  const int64_t d = s.rows();
  Eigen::LLT<MatX> llt(s + 1e-9 * MatX::Identity(d, d));
  const MatX L = llt.matrixL();
  const Tensor z = randn({n, d}, gen, DType::f64);
  return matmul(z, from_matrix(L.transpose())) + mean.reshape({1, d});
}

namespace {
// |p_i - q_j|^2 for rows of p [n, D] and q [m, D] (float64), clamped at 0 against rounding.
Tensor squared_distances(const Tensor& p, const Tensor& q) {
  const Tensor pp = sum(p * p, {1}, true), qq = sum(q * q, {1}, true);
  return clamp(pp + qq.mT() - 2.0 * matmul(p, q.mT()), 0.0, 1e300);
}
Tensor rows_f64(const Tensor& x) { return x.to(DType::f64).reshape({x.dim(0), -1}); }
}  // namespace

double mmd2(const Tensor& a, const Tensor& b, const std::vector<double>& bandwidths) {
  const Tensor x = rows_f64(a), y = rows_f64(b);
  const Tensor dxx = squared_distances(x, x), dyy = squared_distances(y, y),
               dxy = squared_distances(x, y);
  const double n = static_cast<double>(x.dim(0)), m = static_cast<double>(y.dim(0));
  double total = 0;
  for (double h : bandwidths) {
    const double g = -0.5 / (h * h);
    // Within-sample means drop the diagonal (k = 1): the unbiased estimator.
    total += (sum(exp(dxx * g)).item() - n) / (n * (n - 1)) +
             (sum(exp(dyy * g)).item() - m) / (m * (m - 1)) -
             2 * sum(exp(dxy * g)).item() / (n * m);
  }
  return total;
}

double median_distance(const Tensor& x) {
  const Tensor r = slice(rows_f64(x), 0, 0, std::min<int64_t>(500, x.dim(0)));
  const std::vector<double> d2 = squared_distances(r, r).to_vector();
  const int64_t n = r.dim(0);
  std::vector<double> upper;  // pairs i < j
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) upper.push_back(d2[static_cast<std::size_t>(i * n + j)]);
  const auto mid = upper.begin() + static_cast<std::ptrdiff_t>(upper.size() / 2);
  std::nth_element(upper.begin(), mid, upper.end());
  return std::sqrt(*mid);
}

}  // namespace sg::cli
