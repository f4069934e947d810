// The scoregrad subcommands as functions (main.cpp parses the command line into them). Each
// returns the process exit status and reports progress on stderr, results on stdout.
#pragma once
#include <string>
#include <vector>

#include "cli/config.hpp"

namespace sg::cli {

struct TrainOptions {
  Config config;                       // resolved: defaults + file + overrides
  std::vector<std::string> overrides;  // the key=value assignments given explicitly
  bool has_config_file = false;
  std::string out;  // run directory
  bool resume = false;
  // --device: where to train (device_from_flag in experiment.hpp); not part of the
  // configuration, so a run resumes on any device.
  std::string device = "cpu";
};
// Trains, appending to out/metrics.jsonl, checkpointing to out/checkpoint.safetensors (and
// out/config.json) every train.checkpoint_every steps and at the end, then draws out/loss.png.
// With resume, continues from out/checkpoint.safetensors (from step 0 when there is none) with
// the checkpoint's configuration plus the explicit overrides; a configuration file given as
// well must agree with the checkpoint's except for train.steps, train.log_every and
// train.checkpoint_every (ConfigError naming the first key that differs).
int run_train(const TrainOptions& o);

struct EvalOptions {
  std::string run;                     // run directory (or a checkpoint file)
  std::vector<std::string> overrides;  // sample.* / likelihood.* keys
  std::string out;                     // where pictures and results go; default: the run directory
  std::string device = "cpu";          // --device: where the model, sampler and ODE run
};
// Samples from the checkpoint (sample.method: pc, ode or em) and writes samples.safetensors,
// samples.png (2-D: samples beside held-out data; digits: an image grid) and sample.json.
int run_sample(const EvalOptions& o);
// Held-out log-likelihood through the probability-flow ODE (nats for 2-D data, bits/dim for
// digits) with NFE, the ELBO of the plug-in reverse SDE with its standard error, a fitted
// Gaussian's likelihood for reference, likelihood.json and (2-D) density.png.
int run_likelihood(const EvalOptions& o);

struct VerifyOptions {
  std::string filter;  // substring of identity / op row names
  bool identities = true, ops = true;
};
// The identity catalogue and the op table's gradient checks; non-zero exit on any failure.
int run_verify(const VerifyOptions& o);

struct PurifyOptions {
  Config config;  // resolved: purify_default_config() + file + overrides
  std::string out;
  std::string device = "cpu";  // --device: where the classifiers, purifier and attacks run
};
// Adversarial purification on the digits (purify/, docs/purification.md): per seed, trains (or
// loads with classifier.from / score.from) the classifier and the purifier's score model,
// checkpointing both to out/{classifier,score}_seed<s>.safetensors, then measures clean and
// robust accuracy of the undefended and the purified classifier under PGD, transfer PGD,
// BPDA+EOT and full-gradient+EOT at each attack.epsilons; writes out/results.json,
// out/results.md (means and standard errors over the seeds), out/config.json and
// out/purify.png (clean, attacked and purified digits).
int run_purify(const PurifyOptions& o);
// The purify command's own configuration tree and its options schema (as a Markdown table).
Config purify_default_config();
std::string purify_schema_table();

// What the command is doing now, in words ("sampling 4000 examples of shape [2] with pc"): the
// subcommands set it before each large allocation so that running out of memory is reported as
// "out of memory while <activity>" instead of a bare std::bad_alloc.
void set_activity(std::string what);
std::string activity();

// Resolves a run directory or a checkpoint file to the checkpoint file.
std::string resolve_checkpoint(const std::string& run);

}  // namespace sg::cli
