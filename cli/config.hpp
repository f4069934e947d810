// The run configuration of the scoregrad command: a tree of defaults (default_config), read
// from a JSON or YAML file and `key.sub=value` overrides, checked strictly against the
// defaults' keys and types. Every mistake is a ConfigError with a one-line message naming the
// key: an unknown key (with the keys that exist there), a value of the wrong type, a choice not
// among the allowed ones.
//
//   Config c = default_config();
//   merge_file(c, "run.yaml");               // only keys that exist, values of the same type
//   apply_override(c, "train.steps=500");    // parsed as the default's type
//   int64_t steps = get_int(c, "train.steps");
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace sg::cli {

using Config = nlohmann::json;

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Config default_config();
// Reads a file as YAML when its name ends in .yaml/.yml, as JSON otherwise, and merges it.
// Only a regular file of at most 4 MB is read (a directory, FIFO or device is a ConfigError
// naming the path); a key given twice, nesting deeper than 64 levels, invalid UTF-8 and YAML
// aliases expanding to more than 100k values are ConfigErrors too.
void merge_file(Config& config, const std::string& path);
// Merges a tree into the configuration; `where` names its source in errors.
void merge(Config& config, const Config& overlay, const std::string& where);
// "a.b=value": the value is parsed as the existing key's type (arrays as JSON).
void apply_override(Config& config, const std::string& assignment);

// Typed access by dotted key (ConfigError if the key is missing or has another type).
int64_t get_int(const Config& c, const std::string& key);
double get_double(const Config& c, const std::string& key);
bool get_bool(const Config& c, const std::string& key);
std::string get_string(const Config& c, const std::string& key);
std::vector<int64_t> get_int_list(const Config& c, const std::string& key);
// A string that must be one of `choices` (ConfigError listing them otherwise).
std::string get_choice(const Config& c, const std::string& key,
                       const std::vector<std::string>& choices);
// A number that must lie in [lo, hi].
int64_t get_int_in(const Config& c, const std::string& key, int64_t lo, int64_t hi);
double get_double_in(const Config& c, const std::string& key, double lo, double hi);

// The value at a dotted key (ConfigError if missing), and the dotted keys of leaves whose
// values differ between two configurations of the same schema.
const nlohmann::json& value_at(const Config& c, const std::string& key);
std::vector<std::string> differing_keys(const Config& a, const Config& b);

// The whole configuration as indented JSON text.
std::string to_text(const Config& c);
// Parses JSON text (e.g. a checkpoint's metadata) back into a configuration, checked against
// the defaults like a file (the same strict JSON: no key twice, nesting at most 64 deep).
Config from_text(const std::string& json_text, const std::string& where);

}  // namespace sg::cli
