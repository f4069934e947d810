// The scoregrad command in process: configuration defaults, files (JSON and YAML), overrides and
// the one-line errors that name the key; the fitted Gaussian and MMD; verify's exit codes.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "autodiff/sg.hpp"
#include "cli/commands.hpp"
#include "cli/config.hpp"
#include "cli/experiment.hpp"
#include "cli/options.hpp"
#include "nn/datasets.hpp"
#include "nn/networks.hpp"
#include "objectives/identities.hpp"

using namespace sg::cli;

namespace {
std::string temp_file(const std::string& name, const std::string& text) {
  const auto dir = std::filesystem::temp_directory_path() / "sg_cli_config_test";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path) << text;
  return path;
}
// The error's message, which must be one line and contain every fragment.
void expect_error(const std::function<void()>& f, const std::vector<std::string>& fragments) {
  try {
    f();
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find('\n') == std::string::npos);
    for (const auto& frag : fragments) CHECK(msg.find(frag) != std::string::npos);
    return;
  }
  FAIL("no ConfigError");
}
}  // namespace

TEST_CASE("overrides are parsed as the default's type", "[cli][config]") {
  Config c = default_config();
  apply_override(c, "train.steps=123");
  apply_override(c, "train.lr=3e-4");
  apply_override(c, "objective.name=ssm-vr");
  apply_override(c, "model.attention=true");
  apply_override(c, "model.multipliers=[1,2,2]");
  apply_override(c, "sde.beta_max=10");  // an integer where a number is expected is fine
  CHECK(get_int(c, "train.steps") == 123);
  CHECK(get_double(c, "train.lr") == 3e-4);
  CHECK(get_string(c, "objective.name") == "ssm-vr");
  CHECK(get_bool(c, "model.attention"));
  CHECK(get_int_list(c, "model.multipliers") == std::vector<int64_t>{1, 2, 2});
  CHECK(get_double(c, "sde.beta_max") == 10.0);
}

TEST_CASE("bad overrides name the key", "[cli][config]") {
  Config c = default_config();
  expect_error([&] { apply_override(c, "train.stpes=5"); }, {"unknown key 'train.stpes'", "steps"});
  expect_error([&] { apply_override(c, "trian.steps=5"); }, {"unknown key 'trian'", "train"});
  expect_error([&] { apply_override(c, "train.steps=abc"); },
               {"'train.steps'", "expects an integer", "abc"});
  expect_error([&] { apply_override(c, "train.steps=1.5"); }, {"'train.steps'", "an integer"});
  expect_error([&] { apply_override(c, "model.attention=maybe"); },
               {"'model.attention'", "boolean"});
  expect_error([&] { apply_override(c, "train=5"); }, {"'train' is a section"});
  expect_error([&] { apply_override(c, "steps"); }, {"key.sub=value"});
  CHECK(get_int(c, "train.steps") == 2000);  // nothing changed
}

TEST_CASE("JSON and YAML files merge strictly", "[cli][config]") {
  Config c = default_config();
  merge_file(c, temp_file("a.yaml",
                          "data:\n  name: moons\ntrain:\n  steps: 50\n  lr: 1e-3\nsample:\n  "
                          "method: ode\n"));
  CHECK(get_string(c, "data.name") == "moons");
  CHECK(get_int(c, "train.steps") == 50);
  CHECK(get_double(c, "train.lr") == 1e-3);
  CHECK(get_string(c, "sample.method") == "ode");
  merge_file(c, temp_file("b.json", R"({"objective": {"name": "fd-ssm", "fd_eps": 0.05}})"));
  CHECK(get_string(c, "objective.name") == "fd-ssm");

  expect_error([&] { merge_file(c, temp_file("c.yaml", "train:\n  stepz: 5\n")); },
               {"c.yaml", "unknown key 'train.stepz'"});
  expect_error([&] { merge_file(c, temp_file("d.json", R"({"train": {"steps": "many"}})")); },
               {"d.json", "'train.steps'", "expects an integer", "a string"});
  expect_error([&] { merge_file(c, temp_file("e.json", R"({"train": 3})")); },
               {"'train'", "section"});
  expect_error([&] { merge_file(c, temp_file("f.json", "{not json")); },
               {"f.json", "not valid JSON"});
  expect_error([&] { merge_file(c, temp_file("g.yaml", "train: [1, 2\n")); }, {"g.yaml", "YAML"});
  expect_error([&] { merge_file(c, "/nonexistent/x.yaml"); },
               {"cannot read", "/nonexistent/x.yaml"});
}

TEST_CASE("choices and ranges are checked when the experiment is built", "[cli][config]") {
  Config c = default_config();
  apply_override(c, "data.name=nosuchdata");
  expect_error([&] { Experiment ex(c); }, {"'data.name'", "nosuchdata", "checkerboard", "digits"});
  c = default_config();
  apply_override(c, "sde.name=vpp");
  apply_override(c, "data.train_size=100");
  expect_error([&] { Experiment ex(c); }, {"'sde.name'", "vpp", "subvp"});
  c = default_config();
  apply_override(c, "data.name=digits");
  expect_error([&] { Experiment ex(c); }, {"'data.test_size'", "1797"});
  apply_override(c, "data.test_size=297");
  apply_override(c, "data.path=/nonexistent/digits.csv");
  expect_error([&] { Experiment ex(c); }, {"'data.path'", "/nonexistent/digits.csv"});
  c = default_config();
  apply_override(c, "data.train_size=100");
  apply_override(c, "model.kind=unet");
  expect_error([&] { Experiment ex(c); }, {"'model.kind'", "unet", "image data"});
}

TEST_CASE("the resolved configuration round-trips through text", "[cli][config]") {
  Config c = default_config();
  apply_override(c, "train.steps=7");
  CHECK(from_text(to_text(c), "x") == c);
  expect_error([&] { from_text(R"({"bogus": 1})", "ckpt"); }, {"ckpt", "unknown key 'bogus'"});
}

TEST_CASE("a fitted Gaussian and the MMD behave as their definitions say", "[cli][stats]") {
  sg::Generator g(3);
  const sg::Tensor x = sg::randn({4000, 2}, g, sg::DType::f64) * 2.0 + 1.0;
  const GaussianFit fit = fit_gaussian(x);
  CHECK(fit.mean.to_vector()[0] == Approx(1.0).margin(0.1));
  CHECK(fit.cov.to_vector()[0] == Approx(4.0).epsilon(0.1));
  // Average log-density of N(1, 4 I) data under its fit: -(log(2 pi 4) + 1) per 2 dims.
  CHECK(sg::mean(fit.log_prob(x)).item() == Approx(-(std::log(2 * M_PI * 4) + 1)).margin(0.05));
  // MMD^2 is near 0 for two samples of one law and clearly positive for different laws.
  const sg::Tensor y = sg::randn({1000, 2}, g, sg::DType::f64) * 2.0 + 1.0;
  const sg::Tensor z = sg::randn({1000, 2}, g, sg::DType::f64);
  const double same = mmd2(sg::slice(x, 0, 0, 1000), y, {1.0}), diff = mmd2(y, z, {1.0});
  CHECK(std::abs(same) < 0.01);
  CHECK(diff > 0.05);
}

TEST_CASE("verify exits non-zero when a check fails and 2 when nothing matches", "[cli][verify]") {
  sg::obj::register_identity({"zz-deliberately-false", [] {
                                return std::vector<sg::obj::IdentityResult>{sg::obj::deterministic(
                                    "zz-deliberately-false", "1 = 2", 1.0, 2.0, 1e-9)};
                              }});
  CHECK(run_verify({.filter = "zz-deliberately-false", .ops = false}) == 1);
  CHECK(run_verify({.filter = "exp", .identities = false}) == 0);
  CHECK(run_verify({.filter = "no-such-check-anywhere"}) == 2);
}

// ---- the options schema: every setting is honoured or refused -----------------------------

namespace {
// A value of `spec` other than `current`, inside its range (every other choice for a choice).
std::vector<nlohmann::json> other_values(const OptionSpec& spec, const nlohmann::json& current) {
  switch (spec.type) {
    case OptionType::choice: {
      std::vector<nlohmann::json> out;
      for (const auto& ch : spec.choices)
        if (ch != current.get<std::string>()) out.emplace_back(ch);
      return out;
    }
    case OptionType::integer: {  // doubled (keeps evenness and divisibility), or +- 1
      const int64_t v = current.get<int64_t>();
      if (v > 0 && 2.0 * double(v) <= spec.hi) return {2 * v};
      return {v + (double(v) + 1 <= spec.hi ? 1 : -1)};
    }
    case OptionType::number: {
      const double v = current.get<double>(), w = v * 0.5;
      return {w != v && (spec.lo_open ? w > spec.lo : w >= spec.lo) ? w : v + (spec.hi - v) / 2};
    }
    case OptionType::boolean:
      return {!current.get<bool>()};
    case OptionType::int_list:
    case OptionType::number_list:
      return {nlohmann::json::array({1, 1})};
    case OptionType::text:
      return {"x"};
  }
  return {};
}
Config with(Config c, const std::string& key, const nlohmann::json& v) {
  apply_override(c, key + "=" + (v.is_string() ? v.get<std::string>() : v.dump()));
  return c;
}
Config small_points() {
  Config c = default_config();
  apply_override(c, "data.train_size=64");
  apply_override(c, "data.test_size=16");
  apply_override(c, "model.hidden=8");
  apply_override(c, "model.layers=1");
  return c;
}
// Weights drawn from each parameter's name (so two models of the same shapes agree), then the
// model's output on 4 training examples in training mode (dropout active).
std::vector<double> model_output(Experiment& ex) {
  for (auto& [n, p] : ex.model->named_parameters()) {
    sg::Generator g(std::hash<std::string>{}(n));
    *p = sg::randn_like(*p, g) * 0.3;
  }
  ex.model->train();
  sg::Generator dequantize(1);
  const sg::Tensor x = ex.to_model_space(sg::slice(ex.data.train, 0, 0, 4), dequantize);
  return (*ex.model)(x, sg::full({4}, 0.3, sg::DType::f32)).to_vector();
}
// The loss of one batch with the configuration's objective (fixed generator).
double loss_of(const Config& c) {
  Experiment ex(c);
  const sg::obj::ObjectiveInfo& info = objective_of(c);
  const sg::obj::ObjectiveConfig oc = objective_config(c, info, *ex.sde);
  for (auto& [n, p] : ex.model->named_parameters()) {  // a non-zero output layer
    sg::Generator g(n.size());
    *p = sg::randn_like(*p, g) * 0.3;
  }
  sg::Generator g(9);
  return info
      .fn([&](const sg::Tensor& x, const sg::Tensor& t) { return ex.score(x, t); },
          sg::slice(ex.data.train, 0, 0, 16), g, oc)
      .item();
}
}  // namespace

TEST_CASE("the schema covers every model, sde, objective and sample key", "[cli][options]") {
  const Config c = default_config();
  for (const char* section : {"model", "sde", "objective", "sample"})
    for (auto it = c[section].begin(); it != c[section].end(); ++it) {
      const std::string key = std::string(section) + "." + it.key();
      INFO(key);
      const OptionSpec* spec = find_option(key);
      REQUIRE(spec != nullptr);
      CHECK(range_problem(*spec, it.value()) == "");  // the default is allowed
    }
  // docs/cli.md shows the schema as the code has it.
  std::ifstream docs(sg::nn::data_dir() + "/../docs/cli.md");  // data/ is the repository's
  REQUIRE(docs);
  const std::string text((std::istreambuf_iterator<char>(docs)), {});
  CHECK(text.find(schema_table()) != std::string::npos);
}

TEST_CASE("every objective x objective key is honoured or refused", "[cli][options]") {
  // Honoured: accepted and the loss changes. Not honoured: a ConfigError naming the key (the
  // registry used to accept weighting and time_sampling for ssm-vr and ignore them, and turn
  // projection=sphere into Gaussian projections).
  for (const std::string& name : sg::obj::objective_names()) {
    if (name.starts_with("test-")) continue;  // registered by other tests
    if (name == "vdm") continue;  // needs discrete data and its schedule: test_vdm_cli.cpp
    Config base = small_points();
    apply_override(base, "objective.name=" + name);
    const double l0 = loss_of(base);
    for (const OptionSpec& spec : option_schema()) {
      if (!spec.key.starts_with("objective.") || spec.key == "objective.name") continue;
      const std::string option = spec.key.substr(10);
      for (const nlohmann::json& v : other_values(spec, value_at(base, spec.key))) {
        INFO(name << " x " << spec.key << " = " << v.dump());
        const Config c = with(base, spec.key, v);
        bool honoured = false;
        for (const auto& o : sg::obj::find_objective(name).options)
          if (o.name == option)
            honoured = o.values.empty() || std::find(o.values.begin(), o.values.end(),
                                                     v.get<std::string>()) != o.values.end();
        if (honoured) {
          const double l = loss_of(c);
          CHECK(std::isfinite(l));
          CHECK(l != l0);
        } else {
          expect_error([&] { loss_of(c); }, {"'" + spec.key + "'"});
        }
      }
    }
  }
  // Out of range, whatever the objective.
  Config c = small_points();
  apply_override(c, "objective.time_sampling=importance");
  apply_override(c, "objective.t_eps=0");  // NaN before: the log grid started at log 0
  expect_error([&] { loss_of(c); }, {"'objective.t_eps'", "(0, 0.5]"});
}

TEST_CASE("every model kind and SDE x its keys is honoured or refused", "[cli][options]") {
  Config points = small_points();
  Config images = default_config();
  for (const char* o : {"data.name=digits", "data.test_size=97", "data.train_size=64",
                        "model.channels=8", "model.groups=4"})
    apply_override(images, o);
  for (const OptionSpec& spec : option_schema()) {
    const bool model = spec.key.starts_with("model."), sde = spec.key.starts_with("sde.");
    if (!(model || sde) || spec.selector.empty()) continue;
    for (const std::string& sel : sde ? std::vector<std::string>{"vp", "subvp", "ve"}
                                      : std::vector<std::string>{"mlp", "unet"}) {
      Config base = sel == "unet" ? images : points;
      apply_override(base, spec.selector + "=" + sel);
      for (const nlohmann::json& v : other_values(spec, value_at(base, spec.key))) {
        INFO(spec.key << " = " << v.dump() << " with " << spec.selector << " = " << sel);
        const Config c = with(base, spec.key, v);
        if (option_used(spec, sel)) {
          Experiment a(base), b(c);  // accepted, and it changes the model or the SDE
          const sg::Tensor t = sg::full({4}, 0.3, sg::DType::f32);
          CHECK((a.model->num_parameters() != b.model->num_parameters() ||
                 model_output(a) != model_output(b) ||
                 a.sde->marginal(t).second.to_vector() != b.sde->marginal(t).second.to_vector() ||
                 a.sde->diffusion(t).to_vector() != b.sde->diffusion(t).to_vector()));
        } else {
          expect_error([&] { Experiment ex(c); }, {"'" + spec.key + "'", "not used"});
        }
      }
    }
  }
}

TEST_CASE("model and SDE values are range-checked, also in combination", "[cli][options]") {
  Config images = default_config();
  for (const char* o : {"data.name=digits", "data.test_size=97", "data.train_size=64"})
    apply_override(images, o);
  const auto refused = [&](Config c, std::vector<std::string> overrides,
                           const std::vector<std::string>& fragments) {
    for (const auto& o : overrides) apply_override(c, o);
    expect_error([&] { Experiment ex(c); }, fragments);
  };
  refused(images, {"model.groups=7"}, {"'model.groups'", "32"});  // was gcd: 1 group
  refused(images, {"model.multipliers=[0]"}, {"'model.multipliers'", "entry 0"});
  refused(images, {"model.multipliers=[]"}, {"'model.multipliers'", "entries"});
  refused(images, {"model.multipliers=[1,1,1,1,1]"}, {"'model.multipliers'", "halved"});
  refused(images, {"model.dropout=1"}, {"'model.dropout'"});
  refused(small_points(), {"model.embed_dim=7"}, {"'model.embed_dim'", "even"});
  refused(small_points(), {"model.activation=swish"}, {"'model.activation'", "silu"});
  refused(small_points(), {"sde.name=ve", "sde.sigma_min=60"},
          {"'sde.sigma_min'", "'sde.sigma_max'"});  // sampling gave NaN
  refused(small_points(), {"sde.beta_min=30"}, {"'sde.beta_min'", "'sde.beta_max'"});
  refused(small_points(), {"sde.beta_max=0"}, {"'sde.beta_max'"});
  refused(small_points(), {"data.path=/tmp/x.csv"}, {"'data.path'", "digits"});
  // sample.*: a key the method does not use, against the checkpoint's values for sample.
  Config c = default_config();
  apply_override(c, "sample.method=ode");
  const Config stored = c;
  apply_override(c, "sample.snr=0.3");
  expect_error([&] { check_section(c, stored, "sample", "ode"); }, {"'sample.snr'", "pc"});
  Config d = stored;
  apply_override(d, "sample.rtol=1e-3");
  CHECK_NOTHROW(check_section(d, stored, "sample", "ode"));
  apply_override(d, "sample.t_eps=0");
  expect_error([&] { check_section(d, stored, "sample", "ode"); }, {"'sample.t_eps'"});
}

TEST_CASE("network constructors refuse options by name", "[cli][options]") {
  sg::Generator g(0);
  using sg::nn::UNet;
  CHECK_THROWS_WITH(UNet(1, {.channels = 32, .groups = 7}, g), Catch::Contains("groups"));
  CHECK_THROWS_WITH(UNet(1, {.channels = 8, .multipliers = {1, 0}, .groups = 4}, g),
                    Catch::Contains("multipliers"));
  CHECK_THROWS_WITH(UNet(1, {.channels = 8, .groups = 4, .dropout = 1.5}, g),
                    Catch::Contains("dropout"));
  CHECK_THROWS_AS(sg::nn::ResBlock(12, 8, 16, 8, 0.0, g, sg::DType::f32), sg::ValueError);
  CHECK_NOTHROW(UNet(1, {.channels = 8, .multipliers = {1, 3}, .groups = 4}, g));
  CHECK_THROWS_WITH(sg::nn::MlpScoreNet(2, {.embed_dim = 7}, g), Catch::Contains("embed_dim"));
  CHECK_THROWS_WITH(sg::nn::MlpScoreNet(2, {.hidden = 0}, g), Catch::Contains("hidden"));
}
