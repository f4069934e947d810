// scoregrad: the command line. Parses arguments with CLI11 into the subcommands of
// commands.hpp and turns every error into one line on stderr and a non-zero exit:
//   2  a configuration or usage error (unknown key, wrong type, unknown choice, a setting the
//      chosen objective, model, SDE or sampler does not use; unknown flag, missing argument)
//   1  any other failure (a file that cannot be read, a diverging run, non-finite parameters,
//      samples or metrics, a failed check, memory exhausted: "out of memory while <activity>")
#include <CLI/CLI.hpp>
#include <cstdio>
#include <new>
#include <nlohmann/json.hpp>
#include <string>

#include "autodiff/core/error.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"

namespace {

using namespace sg::cli;

// Flags that are shorthands for configuration keys: --steps 500 is train.steps=500.
struct Shorthand {
  const char* flag;
  const char* key;
  const char* help;
};

void add_shorthands(CLI::App* app, const std::vector<Shorthand>& list,
                    std::vector<std::pair<std::string, std::string>>& values) {
  values.resize(list.size());
  for (std::size_t i = 0; i < list.size(); ++i) {
    values[i].first = list[i].key;
    app->add_option(list[i].flag, values[i].second,
                    std::string(list[i].help) + " (" + list[i].key + ")")
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // the last one given wins
  }
}

// --device, the same on train, sample, likelihood and purify (checked when the command runs).
void add_device_flag(CLI::App* app, std::string& device) {
  app->add_option("--device", device,
                  "where to compute: cpu (default), cuda, cuda:N; standin[:N] is a testing "
                  "device (host memory behind the GPU seam), not a feature")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
}

std::vector<std::string> assignments(const std::vector<std::pair<std::string, std::string>>& values,
                                     const std::vector<std::string>& positional) {
  std::vector<std::string> out;
  for (const auto& [key, value] : values)
    if (!value.empty()) out.push_back(key + "=" + value);
  out.insert(out.end(), positional.begin(), positional.end());
  return out;
}

// --print-schema / --print-config: prints and returns 0; otherwise -1, once the output
// directory the subcommand needs is given (ConfigError if not).
int print_or_check(bool print_schema, const std::string& schema, bool print_config,
                   const Config& config, const std::string& out, const char* sub) {
  if (print_schema) {
    std::printf("%s", schema.c_str());
    return 0;
  }
  if (print_config) {
    std::printf("%s\n", to_text(config).c_str());
    return 0;
  }
  if (out.empty())
    throw ConfigError(std::string(sub) + ": an output directory is required (-o DIR)");
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "scoregrad: train score-based diffusion models, sample from them, evaluate their likelihood "
      "and verify the gradient identities they rest on."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "scoregrad 0.1");

  // ---- train
  TrainOptions train;
  std::string config_file;
  std::vector<std::string> train_overrides;
  std::vector<std::pair<std::string, std::string>> train_short;
  bool print_config = false;
  CLI::App* t =
      app.add_subcommand("train", "Train a score model; see --print-config for every key");
  t->add_option("-c,--config", config_file, "configuration file (.json, .yaml or .yml)");
  t->add_option("-o,--out", train.out, "run directory (checkpoint, config, metrics, pictures)");
  t->add_flag("--resume", train.resume,
              "continue from the run directory's checkpoint (start afresh if there is none)");
  t->add_flag("--print-config", print_config, "print the resolved configuration and exit");
  add_device_flag(t, train.device);
  bool print_schema = false;
  t->add_flag("--print-schema", print_schema,
              "print the options schema (type, range, which model/SDE/objective/method uses each "
              "key) as a Markdown table and exit");
  add_shorthands(t,
                 {{"--data", "data.name", "dataset: a 2-D toy or digits"},
                  {"--model", "model.kind", "auto, mlp or unet"},
                  {"--objective", "objective.name", "dsm, ssm, ssm-vr, fd-ssm, ism, elbo or vdm"},
                  {"--sde", "sde.name", "vp, subvp or ve"},
                  {"--steps", "train.steps", "optimizer steps"},
                  {"--batch", "train.batch", "batch size"},
                  {"--lr", "train.lr", "peak learning rate"},
                  {"--seed", "train.seed", "seed of initialization and training noise"}},
                 train_short);
  t->add_option("overrides", train_overrides, "key.sub=value assignments, applied last");

  // ---- sample / likelihood
  EvalOptions sample, likelihood;
  std::vector<std::string> sample_overrides, lik_overrides;
  std::vector<std::pair<std::string, std::string>> sample_short, lik_short;
  CLI::App* s = app.add_subcommand("sample", "Draw samples from a trained checkpoint");
  s->add_option("run", sample.run, "run directory or checkpoint file")->required();
  s->add_option("-o,--out", sample.out, "where to write samples and pictures (default: the run)");
  add_device_flag(s, sample.device);
  add_shorthands(
      s,
      {{"--method", "sample.method", "pc (predictor-corrector), ode, em, or ancestral (vdm runs)"},
       {"-n,--num", "sample.n", "number of samples"},
       {"--steps", "sample.steps", "discretization steps (pc, em, ancestral)"},
       {"--seed", "sample.seed", "sampling seed"}},
      sample_short);
  s->add_option("overrides", sample_overrides, "key.sub=value assignments");
  CLI::App* l = app.add_subcommand(
      "likelihood", "Held-out likelihood (probability-flow ODE) and ELBO of a checkpoint");
  l->add_option("run", likelihood.run, "run directory or checkpoint file")->required();
  l->add_option("-o,--out", likelihood.out, "where to write results (default: the run)");
  add_device_flag(l, likelihood.device);
  add_shorthands(l,
                 {{"-n,--num", "likelihood.n", "held-out examples to evaluate"},
                  {"--trace", "likelihood.trace", "auto, exact or hutchinson"},
                  {"--grid", "likelihood.grid", "density map resolution for 2-D data (0: none)"}},
                 lik_short);
  l->add_option("overrides", lik_overrides, "key.sub=value assignments");

  // ---- purify
  PurifyOptions purify;
  std::string purify_file, purify_from;
  std::vector<std::string> purify_overrides;
  std::vector<std::pair<std::string, std::string>> purify_short;
  bool purify_print_config = false, purify_print_schema = false;
  CLI::App* p = app.add_subcommand(
      "purify",
      "Adversarial purification on the digits: train (or load) a classifier and the purifier's "
      "score model, attack both, write the accuracy table over seeds");
  p->add_option("-c,--config", purify_file, "configuration file (.json, .yaml or .yml)");
  p->add_option("-o,--out", purify.out, "run directory (checkpoints, results, picture)");
  p->add_option("--from", purify_from,
                "load both pieces from this run directory (classifier.from and score.from)");
  p->add_flag("--print-config", purify_print_config, "print the resolved configuration and exit");
  p->add_flag("--print-schema", purify_print_schema,
              "print the purify options schema as a Markdown table and exit");
  add_device_flag(p, purify.device);
  add_shorthands(p,
                 {{"--seeds", "seeds", "seeds, a JSON list: [0,1,2]"},
                  {"-n,--num", "data.n", "held-out images attacked"},
                  {"--eot", "attack.eot", "EOT draws per attack gradient"}},
                 purify_short);
  p->add_option("overrides", purify_overrides, "key.sub=value assignments, applied last");

  // ---- verify
  VerifyOptions verify;
  bool ops_only = false, identities_only = false;
  CLI::App* v =
      app.add_subcommand("verify", "Run the identity catalogue and the op table's gradient checks");
  v->add_option("filter", verify.filter, "only rows whose name contains this");
  v->add_flag("--ops-only", ops_only, "only the op table's gradient checks");
  v->add_flag("--identities-only", identities_only, "only the identity catalogue");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // Every usage error (unknown flag, missing argument, wrong value) is exit 2, as
    // configuration errors are; CLI11's own codes (106, 109, ...) are not documented.
    std::string msg = e.what();
    for (char& ch : msg)
      if (ch == '\n') ch = ' ';
    std::fprintf(stderr, "scoregrad: usage error: %s (see scoregrad --help)\n", msg.c_str());
    return 2;
  }

  try {
    if (t->parsed()) {
      train.overrides = assignments(train_short, train_overrides);
      train.has_config_file = !config_file.empty();
      train.config = default_config();
      if (!config_file.empty()) merge_file(train.config, config_file);
      for (const auto& a : train.overrides) apply_override(train.config, a);
      if (const int r = print_or_check(print_schema, schema_table(), print_config, train.config,
                                       train.out, "train");
          r >= 0)
        return r;
      return run_train(train);
    }
    if (s->parsed()) {
      sample.overrides = assignments(sample_short, sample_overrides);
      return run_sample(sample);
    }
    if (l->parsed()) {
      likelihood.overrides = assignments(lik_short, lik_overrides);
      return run_likelihood(likelihood);
    }
    if (p->parsed()) {
      purify.config = purify_default_config();
      if (!purify_file.empty()) merge_file(purify.config, purify_file);
      std::vector<std::string> overrides;
      if (!purify_from.empty())
        overrides = {"classifier.from=" + purify_from, "score.from=" + purify_from};
      for (const auto& a : assignments(purify_short, purify_overrides)) overrides.push_back(a);
      for (const auto& a : overrides) apply_override(purify.config, a);
      if (const int r = print_or_check(purify_print_schema, purify_schema_table(),
                                       purify_print_config, purify.config, purify.out, "purify");
          r >= 0)
        return r;
      return run_purify(purify);
    }
    if (v->parsed()) {
      verify.ops = !identities_only;
      verify.identities = !ops_only;
      return run_verify(verify);
    }
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "scoregrad: configuration error: %s\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "scoregrad: error: out of memory while %s\n", activity().c_str());
    return 1;
  } catch (const std::exception& e) {
    // The engine's own allocation failures name the op, shape and bytes; say what the command
    // was doing beside them.
    if (std::string(e.what()).find("out of memory") != std::string::npos)
      std::fprintf(stderr, "scoregrad: error: out of memory while %s: %s\n", activity().c_str(),
                   e.what());
    else
      std::fprintf(stderr, "scoregrad: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
