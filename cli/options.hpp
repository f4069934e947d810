// The options schema: for every key of the model, sde, objective and sample sections (and
// data.path), its type, its allowed range or choices, and which model kinds, SDEs, objectives or
// sampling methods use it. A setting is honoured or refused: a value out of range, or a key that
// the chosen model / SDE / objective / method does not use set to anything but its baseline
// (the defaults when training; the checkpoint's configuration for sample and likelihood), is a
// one-line ConfigError naming the key.
//
//   check_section(config, default_config(), "model", "mlp");   // model.groups=7 -> error
//
// Which objective uses an objective.* key is what the objective declares in the registry
// (obj::ObjectiveInfo::options), so a researcher's registered objective gets the same checks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cli/config.hpp"

namespace sg::cli {

enum class OptionType { integer, number, boolean, choice, int_list, number_list, text };

struct OptionSpec {
  std::string key;  // dotted, e.g. "model.groups"
  OptionType type;
  // integer, number and each entry of an int_list or number_list: [lo, hi], or (lo, hi] with
  // lo_open.
  double lo = 0, hi = 0;
  bool lo_open = false;
  std::vector<std::string> choices;  // choice: the allowed values
  int64_t max_entries = 0;           // int_list, number_list: 1..max_entries entries
  // The key whose value decides who uses this one ("model.kind", "sde.name", "objective.name",
  // "sample.method", "data.name"), and the values that use it. An empty selector: always used.
  // For objective.* keys the registry decides (used_by is empty).
  std::string selector;
  std::vector<std::string> used_by;
  std::string help;
};

const std::vector<OptionSpec>& option_schema();
const OptionSpec* find_option(const std::string& key);  // nullptr if the key has no entry
// The selector values that use `spec` (for objective keys: every registered objective that
// declares it).
std::vector<std::string> users_of(const OptionSpec& spec);
// Whether `spec` is used when its selector's value is `selected`.
bool option_used(const OptionSpec& spec, const std::string& selected);
// A value's problem with its range or choices, or "" when it fits.
std::string range_problem(const OptionSpec& spec, const nlohmann::json& value);

// Checks every schema key of `section` in `c`: in range, and, when the selector's value
// `selected` (resolved, e.g. "mlp" for model.kind = auto on points) does not use it, equal to
// its value in `baseline`. ConfigError naming the key otherwise.
void check_section(const Config& c, const Config& baseline, const std::string& section,
                   const std::string& selected);
// The same for the keys of another command's schema (scoregrad purify's): every spec's key in
// range, and unless option_used(spec, value of its selector in c), equal to its baseline value.
void check_keys(const std::vector<OptionSpec>& schema, const Config& c, const Config& baseline);

// The schema as a Markdown table (key, type, range or choices, used by), as docs/cli.md shows.
std::string schema_table();
std::string schema_table(const std::vector<OptionSpec>& schema);

}  // namespace sg::cli
