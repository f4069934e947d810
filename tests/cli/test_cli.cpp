// The scoregrad command in process: configuration defaults, files (JSON and YAML), overrides and
// the one-line errors that name the key; the fitted Gaussian and MMD; verify's exit codes.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "autodiff/sg.hpp"
#include "cli/commands.hpp"
#include "cli/config.hpp"
#include "cli/experiment.hpp"
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
