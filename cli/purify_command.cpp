// `scoregrad purify`: adversarial purification on the digits (issue 18; the library is purify/,
// the mathematics docs/purification.md). Per seed it trains, or loads from an earlier run, a
// classifier and the purifier's score model, checkpoints both in the run directory, and measures
// the clean and robust accuracy of the undefended classifier (PGD on its own gradient) and of the
// purified one (transfer PGD from the undefended model, BPDA+EOT and full-gradient+EOT) at each
// epsilon; then writes the table of means and standard errors over the seeds.
//
// The command has its own configuration tree (purify_default_config) and options schema
// (purify_schema): every key is in range, used, or refused with a ConfigError naming it.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <span>
#include <sstream>
#include <tuple>

#include "autodiff/core/error.hpp"
#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"
#include "cli/commands.hpp"
#include "cli/experiment.hpp"
#include "cli/options.hpp"
#include "cli/pictures.hpp"
#include "cli/progress.hpp"
#include "nn/checkpoint.hpp"
#include "purify/attacks.hpp"

namespace sg::cli {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;
using namespace sg::purify;

[[noreturn]] void config_error(const std::string& msg) { throw ConfigError(msg); }

std::vector<OptionSpec> make_purify_schema() {
  using T = OptionType;
  const auto num = [](std::string key, double lo, double hi, bool lo_open = false) {
    return OptionSpec{
        .key = std::move(key), .type = T::number, .lo = lo, .hi = hi, .lo_open = lo_open};
  };
  const auto integer = [](std::string key, double lo, double hi, std::string sel = "",
                          std::vector<std::string> used = {}) {
    return OptionSpec{.key = std::move(key),
                      .type = T::integer,
                      .lo = lo,
                      .hi = hi,
                      .selector = std::move(sel),
                      .used_by = std::move(used)};
  };
  const auto choice = [](std::string key, std::vector<std::string> choices) {
    return OptionSpec{.key = std::move(key), .type = T::choice, .choices = std::move(choices)};
  };
  const auto boolean = [](std::string key) { return OptionSpec{.key = key, .type = T::boolean}; };
  const auto text = [](std::string key) { return OptionSpec{.key = key, .type = T::text}; };
  const double big = double(int64_t{1} << 30);
  return {
      num("data.test_fraction", 0, 0.9, true),
      integer("data.split_seed", 0, big),
      integer("data.n", 1, 1797),
      integer("data.pool", 1, 2),
      text("classifier.from"),
      choice("classifier.kind", {"mlp", "cnn"}),
      {.key = "classifier.hidden",
       .type = T::int_list,
       .lo = 1,
       .hi = 65536,
       .max_entries = 8,
       .selector = "classifier.kind",
       .used_by = {"mlp"}},
      integer("classifier.channels", 1, 4096, "classifier.kind", {"cnn"}),
      integer("classifier.epochs", 1, 100000),
      integer("classifier.batch", 1, 1797),
      num("classifier.lr", 0, 10, true),
      text("score.from"),
      integer("score.hidden", 1, 65536),
      integer("score.layers", 1, 64),
      boolean("score.energy"),
      integer("score.steps", 1, big),
      integer("score.batch", 1, 1797),
      num("score.lr", 0, 10, true),
      num("score.sigma_begin", 0, 1e4, true),
      num("score.sigma_end", 0, 1e4, true),
      integer("score.levels", 2, 100000),
      num("purifier.sigma_rand", 0, 1),
      choice("purifier.noise", {"gaussian", "binary"}),
      num("purifier.lambda", 0, 100, true),
      num("purifier.eta", 0, 1, true),
      num("purifier.min_step", 0, 10, true),
      num("purifier.max_step", 0, 10, true),
      num("purifier.stopping_alpha", 0, 10),
      integer("purifier.max_iter", 0, 10000),
      integer("purifier.copies", 1, 1024),
      choice("purifier.aggregation", {"softmax", "logits", "vote"}),
      choice("attack.norm", {"linf", "l2"}),
      // Each in (0, 1] for linf, (0, sqrt(D)] for l2 (checked against the data's shape).
      {.key = "attack.epsilons",
       .type = T::number_list,
       .lo = 0,
       .hi = 64,
       .lo_open = true,
       .max_entries = 16},
      integer("attack.steps", 1, 100000),
      num("attack.step_scale", 0, 100, true),
      boolean("attack.random_start"),
      integer("attack.eot", 1, 1024),
      choice("attack.clip_gradient", {"exact", "straight_through"}),
      {.key = "seeds", .type = T::int_list, .lo = 0, .hi = big, .max_entries = 64},
  };
}

const std::vector<OptionSpec>& purify_schema() {
  static const std::vector<OptionSpec> s = make_purify_schema();
  return s;
}

std::vector<double> get_numbers(const Config& c, const std::string& key) {
  std::vector<double> out;
  for (const json& e : value_at(c, key)) out.push_back(e.get<double>());
  return out;
}

// Digits [n, 1, 8, 8] averaged over 2x2 blocks when pool = 2.
Tensor pooled(const Tensor& x, int64_t pool) {
  if (pool == 1) return x;
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2) / pool, w = x.dim(3) / pool;
  return mean(reshape(x, Shape{n, c, h, pool, w, pool}), Shape{3, 5});
}

std::vector<int64_t> dims_of(const Shape& s) { return {s.begin(), s.end()}; }
Shape shape_of(const std::vector<int64_t>& v) { return Shape(std::span<const int64_t>(v)); }

std::string seed_file(const std::string& dir, const char* piece, int64_t seed) {
  return (fs::path(dir) / (std::string(piece) + "_seed" + std::to_string(seed) + ".safetensors"))
      .string();
}

// What a piece's checkpoint records beside its weights (its metadata "config").
struct Stored {
  json section;  // the piece's configuration section (without "from")
  json data;     // data.test_fraction, data.split_seed, data.pool
  Shape shape;   // one sample's shape it was trained on
  std::string path;
};
Stored read_stored(const std::string& path, const char* piece) {
  if (!fs::exists(path))
    throw IOError(std::string("purify: no ") + piece + " checkpoint at " + path +
                  " (a run of scoregrad purify with the same seeds writes it)");
  const nn::SafetensorsFile f = nn::load_safetensors(path);
  auto it = f.metadata.find("config");
  json m;
  try {
    if (it == f.metadata.end()) throw std::runtime_error("no configuration");
    m = json::parse(it->second);
    Stored s{m.at("section"), m.at("data"), shape_of(m.at("shape").get<std::vector<int64_t>>()),
             path};
    if (m.at("piece") != piece)
      throw std::runtime_error("a " + m.at("piece").dump() + " checkpoint");
    return s;
  } catch (const std::exception& e) {
    throw IOError(path + ": not a scoregrad purify " + piece + " checkpoint (" + e.what() + ")");
  }
}

json data_record(const Config& c) {
  return {{"test_fraction", value_at(c, "data.test_fraction")},
          {"split_seed", value_at(c, "data.split_seed")},
          {"pool", value_at(c, "data.pool")}};
}

// With `section`.from set, the piece's keys come from its checkpoint: a key set here to
// anything but its default or the checkpoint's value would be ignored, so it is refused.
void check_against(const Config& c, const std::string& section, const Stored& s) {
  const json all = purify_default_config();
  const json& defaults = all.at(section);
  for (auto it = s.section.begin(); it != s.section.end(); ++it) {
    const json& v = value_at(c, section + "." + it.key());
    if (v != defaults.at(it.key()) && v != it.value())
      config_error("configuration key '" + section + "." + it.key() + "' = " + v.dump() +
                   " differs from " + s.path + " (" + it.value().dump() + ") that " + section +
                   ".from loads; remove it or set it to " + it.value().dump());
  }
  const json here = data_record(c);
  for (const char* k : {"test_fraction", "split_seed"})
    if (s.data.at(k) != here.at(k))
      config_error(std::string("configuration key 'data.") + k + "' = " + here.at(k).dump() +
                   " differs from " + s.path + " (" + s.data.at(k).dump() +
                   "): its model was trained on another split, whose training images may be "
                   "held out here");
}

json section_without_from(const Config& c, const std::string& section) {
  json s = c[section];
  s.erase("from");
  return s;
}

std::unique_ptr<Classifier> make_classifier(const json& s, const Shape& shape, Generator& gen) {
  if (s.at("kind") == "cnn") {
    if (shape[1] != shape[2] || shape[1] % 2)
      config_error("configuration key 'classifier.kind' = \"cnn\" needs even square images, got " +
                   shape.str());
    return std::make_unique<CnnClassifier>(
        CnnClassifierOptions{
            .in_channels = shape[0], .size = shape[1], .channels = s.at("channels").get<int64_t>()},
        gen);
  }
  return std::make_unique<MlpClassifier>(
      MlpClassifierOptions{.input_shape = shape,
                           .hidden = s.at("hidden").get<std::vector<int64_t>>()},
      gen);
}

ScoreNetOptions score_options(const json& s) {
  return {.hidden = s.at("hidden").get<int64_t>(),
          .layers = s.at("layers").get<int64_t>(),
          .energy = s.at("energy").get<bool>()};
}

PurifierOptions purifier_options(const Config& c) {
  PurifierOptions o;
  o.sigma_rand = get_double(c, "purifier.sigma_rand");
  o.noise = get_string(c, "purifier.noise") == "binary" ? NoiseKind::binary : NoiseKind::gaussian;
  o.lambda = get_double(c, "purifier.lambda");
  o.eta = get_double(c, "purifier.eta");
  o.min_step = get_double(c, "purifier.min_step");
  o.max_step = get_double(c, "purifier.max_step");
  o.stopping_alpha = get_double(c, "purifier.stopping_alpha");
  o.max_iter = get_int(c, "purifier.max_iter");
  return o;
}

// Mean and standard error of the mean over seeds (null with one seed).
json summary(const std::vector<double>& v) {
  const double k = double(v.size());
  const double m = std::accumulate(v.begin(), v.end(), 0.0) / k;
  double ss = 0;
  for (double e : v) ss += (e - m) * (e - m);
  json out{{"mean", m}, {"per_seed", v}};
  out["se"] = v.size() > 1 ? json(std::sqrt(ss / (k - 1) / k)) : json(nullptr);
  return out;
}

std::string cell(const json& s) {
  char buf[64];
  if (s["se"].is_null())
    std::snprintf(buf, sizeof buf, "%.3f", s["mean"].get<double>());
  else
    std::snprintf(buf, sizeof buf, "%.3f ± %.3f", s["mean"].get<double>(), s["se"].get<double>());
  return buf;
}

std::string fmt_eps(double e) {
  std::ostringstream s;
  s << e;
  return s.str();
}

// What a trained piece's checkpoint records (read back by read_stored).
struct Record {
  json section, data;
  Shape shape;
  int64_t seed;
};

// The piece `m` trained here on `device` by `train` (which returns its final loss, appended to
// `losses` and checked finite) and saved to `path` with its record, or, when `stored` is given,
// loaded from it (and copied to `path`) and moved to `device`; then in eval mode.
template <class Train>
void train_or_load(nn::Module& m, const char* piece, const Stored* stored, const Record& rec,
                   const std::string& path, Device device, std::vector<double>& losses,
                   Train train) {
  const std::string tag = "seed " + std::to_string(rec.seed);
  const std::string what = std::string(piece) == "score" ? "score model" : piece;
  if (!stored) {
    m.to(device);
    set_activity("training the " + what + " (" + tag + ")");
    const double loss = train();
    if (!std::isfinite(loss))
      throw ValueError("purify: the " + what + "'s final loss is " + std::to_string(loss) + " (" +
                       tag + "); try a smaller " + piece + ".lr");
    losses.push_back(loss);
    const json meta{{"piece", piece},
                    {"section", rec.section},
                    {"data", rec.data},
                    {"shape", dims_of(rec.shape)},
                    {"seed", rec.seed}};
    nn::save_checkpoint(path, {.model = &m, .config = meta.dump()});
  } else {
    nn::Checkpoint ck{.model = &m};
    nn::load_checkpoint(stored->path, ck);
    m.to(device);
    if (!fs::exists(path) || !fs::equivalent(path, stored->path))
      fs::copy_file(stored->path, path, fs::copy_options::overwrite_existing);
  }
  m.eval();
}

}  // namespace

Config purify_default_config() {
  return json::parse(R"({
    "data": {"test_fraction": 0.25, "split_seed": 1, "n": 120, "pool": 1},
    "classifier": {"from": "", "kind": "mlp", "hidden": [128, 128], "channels": 16,
                   "epochs": 10, "batch": 64, "lr": 0.003},
    "score": {"from": "", "hidden": 256, "layers": 2, "energy": false, "steps": 800,
              "batch": 128, "lr": 0.001, "sigma_begin": 5.0, "sigma_end": 0.01, "levels": 100},
    "purifier": {"sigma_rand": 0.25, "noise": "gaussian", "lambda": 0.05, "eta": 0.001,
                 "min_step": 1e-5, "max_step": 0.1, "stopping_alpha": 0.001, "max_iter": 10,
                 "copies": 4, "aggregation": "softmax"},
    "attack": {"norm": "linf", "epsilons": [0.05, 0.1, 0.2], "steps": 10, "step_scale": 2.5,
               "random_start": true, "eot": 4, "clip_gradient": "exact"},
    "seeds": [0, 1, 2]
  })");
}

std::string purify_schema_table() { return schema_table(purify_schema()); }

int run_purify(const PurifyOptions& opts) {
  const Device device = device_from_flag(opts.device);  // before anything is written
  const Config& c = opts.config;
  const Config defaults = purify_default_config();
  check_keys(purify_schema(), c, defaults);
  const int64_t pool = get_int(c, "data.pool");
  const Shape shape{1, 8 / pool, 8 / pool};
  const double dims = double(shape.numel());
  const std::string norm_name = get_string(c, "attack.norm");
  const Norm norm = norm_name == "l2" ? Norm::l2 : Norm::linf;
  const double eps_max = norm == Norm::linf ? 1.0 : std::sqrt(dims);
  const std::vector<double> epsilons = get_numbers(c, "attack.epsilons");
  for (std::size_t i = 0; i < epsilons.size(); ++i)
    if (!(epsilons[i] > 0 && epsilons[i] <= eps_max))
      config_error("configuration key 'attack.epsilons' has entry " + std::to_string(i) + " = " +
                   fmt_eps(epsilons[i]) + " outside the data range: each " + norm_name +
                   " radius must lie in (0, " + fmt_eps(eps_max) + "] for " + shape.str() +
                   " images in [0, 1]");
  const std::vector<int64_t> seeds = get_int_list(c, "seeds");
  for (std::size_t i = 0; i < seeds.size(); ++i)
    if (std::count(seeds.begin(), seeds.end(), seeds[i]) > 1)
      config_error("configuration key 'seeds' holds " + std::to_string(seeds[i]) +
                   " twice (the standard error needs independent seeds)");
  if (get_double(c, "score.sigma_end") >= get_double(c, "score.sigma_begin"))
    config_error("configuration keys 'score.sigma_end', 'score.sigma_begin': sigma_end = " +
                 fmt_eps(get_double(c, "score.sigma_end")) +
                 " must be below sigma_begin = " + fmt_eps(get_double(c, "score.sigma_begin")));
  if (get_double(c, "purifier.min_step") > get_double(c, "purifier.max_step"))
    config_error(
        "configuration keys 'purifier.min_step', 'purifier.max_step': min_step must not "
        "exceed max_step");
  const PurifierOptions pur_opts = purifier_options(c);
  try {  // the library's own checks of the purifier's options, before any work
    Purifier(ScoreFn([](const Tensor& v) { return v; }), shape, pur_opts);
  } catch (const ValueError& e) {
    config_error(std::string("purifier: ") + e.what());
  }
  const std::string aggregation = get_string(c, "purifier.aggregation");
  const int64_t steps = get_int(c, "attack.steps"), eot = get_int(c, "attack.eot");
  const double step_scale = get_double(c, "attack.step_scale");
  const bool random_start = get_bool(c, "attack.random_start");
  const std::string clip_name = get_string(c, "attack.clip_gradient");
  const ClipGradient clip_gradient =
      clip_name == "straight_through" ? ClipGradient::straight_through : ClipGradient::exact;
  const EnsembleOptions ens{.copies = get_int(c, "purifier.copies")};
  const std::string cls_from = get_string(c, "classifier.from"),
                    score_from = get_string(c, "score.from");

  // Every piece to load is read and checked before anything is trained or written.
  std::vector<Stored> cls_stored, score_stored;
  for (int64_t s : seeds) {
    if (!cls_from.empty()) {
      cls_stored.push_back(read_stored(seed_file(cls_from, "classifier", s), "classifier"));
      check_against(c, "classifier", cls_stored.back());
    }
    if (!score_from.empty()) {
      score_stored.push_back(read_stored(seed_file(score_from, "score", s), "score"));
      check_against(c, "score", score_stored.back());
    }
    const Shape cs = cls_from.empty() ? shape : cls_stored.back().shape;
    const Shape ss = score_from.empty() ? shape : score_stored.back().shape;
    const auto where = [&](bool loaded, const std::vector<Stored>& st) {
      return loaded ? "loaded from " + st.back().path
                    : "trained here on data.pool = " + std::to_string(pool);
    };
    if (cs != ss)
      config_error("the classifier (" + where(!cls_from.empty(), cls_stored) + ", data shape " +
                   cs.str() + ") and the purifier's score model (" +
                   where(!score_from.empty(), score_stored) + ", data shape " + ss.str() +
                   ") were trained on different data shapes");
    if (cs != shape)
      config_error("configuration key 'data.pool' = " + std::to_string(pool) + " gives " +
                   shape.str() + " images, but the classifier and score model (loaded from " +
                   cls_stored.back().path + ") were trained on " + cs.str());
  }

  set_activity("loading the digits");
  const DigitsSplit split = digits_split({.test_fraction = get_double(c, "data.test_fraction"),
                                          .seed = uint64_t(get_int(c, "data.split_seed")),
                                          .device = device});
  const int64_t n = get_int(c, "data.n");
  if (n > split.test_x.dim(0))
    config_error("configuration key 'data.n' = " + std::to_string(n) + " exceeds the " +
                 std::to_string(split.test_x.dim(0)) + " held-out images (data.test_fraction = " +
                 fmt_eps(get_double(c, "data.test_fraction")) + ")");
  for (const char* key : {"classifier.batch", "score.batch"})
    if (get_int(c, key) > split.train_x.dim(0))
      config_error(std::string("configuration key '") + key +
                   "' = " + std::to_string(get_int(c, key)) + " exceeds the " +
                   std::to_string(split.train_x.dim(0)) + " training images");
  std::error_code ec;
  fs::create_directories(opts.out, ec);
  if (ec)
    throw IOError("purify: cannot create the output directory " + opts.out + ": " + ec.message());
  nn::write_file_atomic((fs::path(opts.out) / "config.json").string(), to_text(c) + "\n");

  const Tensor train_x = pooled(split.train_x, pool);
  const Tensor x = pooled(slice(split.test_x, 0, 0, n), pool), y = slice(split.test_y, 0, 0, n);

  const char* row_names[] = {"undefended / PGD", "purified / transfer PGD", "purified / BPDA+EOT",
                             "purified / full-gradient+EOT"};
  const int rows = 4;
  const int64_t ne = int64_t(epsilons.size());
  // [seed][row][0: clean, 1 + e: robust] for the reported aggregation, and all three for json
  std::vector<std::vector<std::vector<EnsembleAccuracy>>> acc(
      seeds.size(),
      std::vector<std::vector<EnsembleAccuracy>>(rows, std::vector<EnsembleAccuracy>(1 + ne)));
  std::vector<double> cls_loss, dsm_loss;
  Progress bar("purify", 0, int64_t(seeds.size()) * (2 + 3 * ne));
  int64_t done = 0;
  std::vector<Tensor> picture;
  const auto tick = [&](const std::string& what) { bar.update(++done, what); };
  for (std::size_t si = 0; si < seeds.size(); ++si) {
    const int64_t seed = seeds[si];
    const std::string tag = "seed " + std::to_string(seed);
    // The classifier.
    Generator init{uint64_t(seed)};
    const json cls_section =
        cls_from.empty() ? section_without_from(c, "classifier") : cls_stored[si].section;
    std::unique_ptr<Classifier> clf = make_classifier(cls_section, shape, init);
    train_or_load(*clf, "classifier", cls_from.empty() ? nullptr : &cls_stored[si],
                  {cls_section, data_record(c), shape, seed},
                  seed_file(opts.out, "classifier", seed), device, cls_loss, [&] {
                    return train_classifier(*clf, train_x, split.train_y,
                                            {.epochs = get_int(c, "classifier.epochs"),
                                             .batch = get_int(c, "classifier.batch"),
                                             .lr = get_double(c, "classifier.lr"),
                                             .seed = uint64_t(seed)})
                        .epoch_loss.back();
                  });
    tick("classifier, " + tag);
    // The purifier's score model.
    const json score_section =
        score_from.empty() ? section_without_from(c, "score") : score_stored[si].section;
    ScoreNet h(shape, score_options(score_section), init);
    train_or_load(h, "score", score_from.empty() ? nullptr : &score_stored[si],
                  {score_section, data_record(c), shape, seed}, seed_file(opts.out, "score", seed),
                  device, dsm_loss, [&] {
                    return train_score(h, train_x,
                                       {.sigma_begin = get_double(c, "score.sigma_begin"),
                                        .sigma_end = get_double(c, "score.sigma_end"),
                                        .levels = get_int(c, "score.levels"),
                                        .steps = get_int(c, "score.steps"),
                                        .batch = get_int(c, "score.batch"),
                                        .lr = get_double(c, "score.lr"),
                                        .seed = uint64_t(seed)})
                        .loss.back();
                  });
    tick("score model, " + tag);
    const auto pur = std::make_unique<Purifier>(h, pur_opts);
    check_compatible("purify", *clf, *pur);

    // Evaluation: every draw from generators of this seed.
    set_activity("attacking " + std::to_string(n) + " held-out digits (" + tag + ")");
    Generator g_pur{uint64_t(seed) * 4 + 1}, g_att{uint64_t(seed) * 4 + 2};
    auto& a = acc[si];
    const double clean = accuracy(*clf, x, y);
    a[0][0] = {clean, clean, clean};
    a[1][0] = purified_accuracy(*clf, *pur, x, y, g_pur, ens);
    a[2][0] = a[3][0] = a[1][0];
    for (int64_t e = 0; e < ne; ++e) {
      const PgdOptions po{.norm = norm,
                          .epsilon = epsilons[e],
                          .step_size = step_scale * epsilons[e] / double(steps),
                          .steps = steps,
                          .random_start = random_start};
      const std::string at = tag + ", eps " + fmt_eps(epsilons[e]);
      const Tensor xa = pgd({.classifier = clf.get()}, x, y, g_att, po);
      const double undefended = accuracy(*clf, xa, y);
      a[0][1 + e] = {undefended, undefended, undefended};
      a[1][1 + e] = purified_accuracy(*clf, *pur, xa, y, g_pur, ens);
      tick("PGD, " + at);
      Tensor xf;  // the full-gradient attack's images, for the picture
      for (const auto& [row, mode, name] :
           {std::tuple{2, GradientMode::bpda, "BPDA+EOT, "},
            std::tuple{3, GradientMode::full, "full gradient+EOT, "}}) {
        xf = pgd({.classifier = clf.get(),
                  .purifier = pur.get(),
                  .gradient = mode,
                  .eot = eot,
                  .clip_gradient = clip_gradient},
                 x, y, g_att, po);
        a[row][1 + e] = purified_accuracy(*clf, *pur, xf, y, g_pur, ens);
        tick(name + at);
      }
      if (si == 0 && e == ne - 1) {  // the picture: the first seed, the largest epsilon
        const int64_t k = std::min<int64_t>(16, n);
        const Tensor xs = slice(x, 0, 0, k), fs_ = slice(xf, 0, 0, k);
        Generator g_pic{uint64_t(seed) * 4 + 3};
        picture = {xs, pur->purify(xs, g_pic), fs_, pur->purify(fs_, g_pic)};
      }
    }
  }
  bar.finish();

  // The table: means and standard errors over the seeds.
  const auto pick = [&](const EnsembleAccuracy& e, Aggregation g) {
    return g == Aggregation::logits ? e.logits : g == Aggregation::vote ? e.vote : e.softmax;
  };
  json rows_json = json::array();
  std::string md = "| defence / attack | clean";
  for (double e : epsilons) md += " | eps " + fmt_eps(e);
  md += " |\n|---|---";
  for (int64_t e = 0; e < ne; ++e) md += "|---";
  md += "|\n";
  for (int r = 0; r < rows; ++r) {
    json row{{"name", row_names[r]}};
    md += std::string("| ") + row_names[r];
    for (int64_t col = 0; col <= ne; ++col) {
      json by_agg;
      for (auto [name, g] :
           {std::pair{"logits", Aggregation::logits}, std::pair{"softmax", Aggregation::softmax},
            std::pair{"vote", Aggregation::vote}}) {
        std::vector<double> v;
        for (std::size_t si = 0; si < seeds.size(); ++si) v.push_back(pick(acc[si][r][col], g));
        by_agg[name] = summary(v);
      }
      json entry = r == 0 ? by_agg["softmax"] : by_agg[aggregation];
      if (r > 0) entry["by_aggregation"] = by_agg;
      md += " | " + cell(entry);
      if (col == 0) {
        row["clean"] = entry;
      } else {
        entry["epsilon"] = epsilons[col - 1];
        row["robust"].push_back(entry);
      }
    }
    md += " |\n";
    rows_json.push_back(row);
  }
  std::ostringstream head;
  head << "Accuracy on " << n << " held-out digits " << shape.str() << ", mean ± standard error "
       << "over " << seeds.size() << " seed" << (seeds.size() == 1 ? "" : "s") << " ("
       << value_at(c, "seeds").dump() << "). PGD " << norm_name << ", " << steps << " steps of "
       << step_scale << " eps / " << steps << (random_start ? ", random start" : "") << "; EOT "
       << eot << " (full gradient: clips " << clip_name << ")"
       << "; purifier sigma_rand " << pur_opts.sigma_rand << ", " << pur_opts.max_iter
       << " iterations, " << ens.copies << "-copy ensemble, " << aggregation << " aggregation.\n\n";
  const std::string table = head.str() + md;
  json results{{"seeds", seeds},
               {"n", n},
               {"shape", dims_of(shape)},
               {"norm", norm_name},
               {"epsilons", epsilons},
               {"aggregation", aggregation},
               {"clip_gradient", clip_name},
               {"device", device_name(device)},
               {"seconds", bar.seconds()},
               {"rows", rows_json}};
  if (!cls_loss.empty()) results["classifier_final_loss"] = summary(cls_loss);
  if (!dsm_loss.empty()) results["dsm_final_loss"] = summary(dsm_loss);
  nn::write_file_atomic((fs::path(opts.out) / "results.json").string(), results.dump(2) + "\n");
  nn::write_file_atomic((fs::path(opts.out) / "results.md").string(), table);
  if (!picture.empty())
    draw_image_panels(picture,
                      {"clean", "clean, purified",
                       "full-gradient PGD, eps " + fmt_eps(epsilons.back()), "attacked, purified"},
                      (fs::path(opts.out) / "purify.png").string());
  std::cout << table;
  return 0;
}

}  // namespace sg::cli
