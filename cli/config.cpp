// Defaults, strict merging, overrides and typed access for the scoregrad command's
// configuration (see config.hpp). YAML is read with yaml-cpp and converted to the same JSON
// tree, so both formats obey the same checks.
#include "cli/config.hpp"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace sg::cli {
namespace {

using json = nlohmann::json;

[[noreturn]] void error(const std::string& msg) { throw ConfigError(msg); }

std::string kind_of(const json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "a list";
  if (v.is_object()) return "a section";
  return "null";
}

std::string known_keys(const json& section) {
  std::string s;
  for (auto it = section.begin(); it != section.end(); ++it)
    s += (s.empty() ? "" : ", ") + it.key();
  return s;
}

std::string join(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

// Does `v` fit where the default is `d`? Integers fit where numbers are expected.
bool same_kind(const json& d, const json& v) {
  if (d.is_number_float()) return v.is_number();
  if (d.is_number_integer()) return v.is_number_integer() || v.is_number_unsigned();
  if (d.is_array()) {
    if (!v.is_array()) return false;
    for (const auto& e : v)
      if (!(e.is_number_integer() || e.is_number_unsigned())) return false;
    return true;
  }
  return kind_of(d) == kind_of(v);
}

void merge_into(json& base, const json& overlay, const std::string& prefix,
                const std::string& where) {
  if (!overlay.is_object())
    error(where + ": " + (prefix.empty() ? "the configuration" : "'" + prefix + "'") +
          " must be a section of keys, got " + kind_of(overlay));
  for (auto it = overlay.begin(); it != overlay.end(); ++it) {
    const std::string key = join(prefix, it.key());
    if (!base.contains(it.key()))
      error(where + ": unknown key '" + key + "' (known" + (prefix.empty() ? "" : " in " + prefix) +
            ": " + known_keys(base) + ")");
    json& slot = base[it.key()];
    if (slot.is_object()) {
      merge_into(slot, it.value(), key, where);
    } else if (!same_kind(slot, it.value())) {
      error(where + ": key '" + key + "' expects " + kind_of(slot) + ", got " +
            kind_of(it.value()) + " (" + it.value().dump() + ")");
    } else {
      slot = slot.is_number_float() ? json(it.value().get<double>()) : it.value();
    }
  }
}

json yaml_to_json(const YAML::Node& n, const std::string& where) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = yaml_to_json(kv.second, where);
      return o;
    }
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& e : n) a.push_back(yaml_to_json(e, where));
      return a;
    }
    case YAML::NodeType::Scalar: {
      const std::string s = n.Scalar();
      if (n.Tag() == "!") return s;  // quoted: a string
      if (s == "true" || s == "True") return true;
      if (s == "false" || s == "False") return false;
      // Numbers as JSON reads them (integers stay integers).
      if (json::accept(s)) {
        json v = json::parse(s);
        if (v.is_number()) return v;
      }
      return s;
    }
    default:
      return nullptr;
  }
}

const json& lookup_key(const json& c, const std::string& key) {
  const json* node = &c;
  std::size_t start = 0;
  while (true) {
    const auto dot = key.find('.', start);
    const std::string part = key.substr(start, dot == std::string::npos ? dot : dot - start);
    if (!node->is_object() || !node->contains(part))
      error("missing configuration key '" + key + "'");
    node = &(*node)[part];
    if (dot == std::string::npos) return *node;
    start = dot + 1;
  }
}

void expect(const json& v, bool ok, const std::string& key, const char* what) {
  if (!ok) error("configuration key '" + key + "' expects " + what + ", got " + v.dump());
}

}  // namespace

Config default_config() {
  return json::parse(R"({
    "data": {
      "name": "checkerboard",
      "train_size": 50000,
      "test_size": 2000,
      "seed": 1,
      "path": ""
    },
    "model": {
      "kind": "auto",
      "hidden": 128,
      "layers": 3,
      "embed_dim": 16,
      "fourier_scale": 4.0,
      "activation": "silu",
      "channels": 32,
      "multipliers": [1, 2],
      "groups": 8,
      "attention": false,
      "dropout": 0.0
    },
    "sde": {
      "name": "vp",
      "beta_min": 0.1,
      "beta_max": 20.0,
      "sigma_min": 0.01,
      "sigma_max": 50.0
    },
    "objective": {
      "name": "dsm",
      "t_eps": 1e-5,
      "weighting": "variance",
      "time_sampling": "uniform",
      "projection": "rademacher",
      "projections": 1,
      "fd_eps": 0.1
    },
    "train": {
      "steps": 2000,
      "batch": 512,
      "optimizer": "adam",
      "lr": 2e-3,
      "min_lr": 1e-5,
      "warmup": 100,
      "weight_decay": 0.0,
      "grad_clip": 1.0,
      "ema": 0.999,
      "seed": 0,
      "log_every": 10,
      "checkpoint_every": 500
    },
    "sample": {
      "method": "pc",
      "n": 2000,
      "steps": 500,
      "t_eps": 1e-3,
      "snr": 0.16,
      "corrector_steps": 1,
      "rtol": 1e-5,
      "atol": 1e-5,
      "seed": 0,
      "use_ema": true
    },
    "likelihood": {
      "n": 1000,
      "rtol": 1e-5,
      "atol": 1e-5,
      "t_eps": 1e-5,
      "trace": "auto",
      "elbo_draws": 8,
      "grid": 64,
      "seed": 0,
      "use_ema": true
    }
  })");
}

void merge(Config& config, const Config& overlay, const std::string& where) {
  merge_into(config, overlay, "", where);
}

void merge_file(Config& config, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) error("cannot read configuration file " + path + ": " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  const bool yaml = path.ends_with(".yaml") || path.ends_with(".yml");
  json tree;
  if (yaml) {
    try {
      tree = yaml_to_json(YAML::Load(text), path);
    } catch (const YAML::Exception& e) {
      error(path + ": not valid YAML: " + e.what());
    }
    if (tree.is_null()) tree = json::object();  // an empty file
  } else {
    try {
      tree = json::parse(text);
    } catch (const json::exception& e) {
      error(path + ": not valid JSON: " + e.what());
    }
  }
  merge(config, tree, path);
}

void apply_override(Config& config, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    error("override '" + assignment + "' is not of the form key.sub=value");
  const std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  // Walk to the parent section, naming the first unknown part.
  json tree = json::object();
  json* node = &tree;
  const json* base = &config;
  std::size_t start = 0;
  std::string prefix;
  while (true) {
    const auto dot = key.find('.', start);
    const std::string part = key.substr(start, dot == std::string::npos ? dot : dot - start);
    if (!base->is_object() || !base->contains(part))
      error("override '" + assignment + "': unknown key '" + join(prefix, part) + "'" +
            (base->is_object() ? " (known" + (prefix.empty() ? "" : " in " + prefix) + ": " +
                                     known_keys(*base) + ")"
                               : ""));
    base = &(*base)[part];
    prefix = join(prefix, part);
    if (dot == std::string::npos) break;
    node = &(*node)[part];
    start = dot + 1;
  }
  const std::string leaf = key.substr(start);
  json value;
  if (base->is_string()) {
    value = text;
  } else if (base->is_boolean()) {
    if (text == "true" || text == "1")
      value = true;
    else if (text == "false" || text == "0")
      value = false;
    else
      error("override '" + assignment + "': key '" + key + "' expects a boolean, got \"" + text +
            "\"");
  } else if (base->is_object()) {
    error("override '" + assignment + "': '" + key + "' is a section (keys: " + known_keys(*base) +
          ")");
  } else {
    if (!json::accept(text))
      error("override '" + assignment + "': key '" + key + "' expects " + kind_of(*base) +
            ", got \"" + text + "\"");
    value = json::parse(text);
  }
  (*node)[leaf] = value;
  merge(config, tree, "override '" + assignment + "'");
}

int64_t get_int(const Config& c, const std::string& key) {
  const json& v = lookup_key(c, key);
  expect(v, v.is_number_integer() || v.is_number_unsigned(), key, "an integer");
  return v.get<int64_t>();
}
double get_double(const Config& c, const std::string& key) {
  const json& v = lookup_key(c, key);
  expect(v, v.is_number(), key, "a number");
  return v.get<double>();
}
bool get_bool(const Config& c, const std::string& key) {
  const json& v = lookup_key(c, key);
  expect(v, v.is_boolean(), key, "a boolean");
  return v.get<bool>();
}
std::string get_string(const Config& c, const std::string& key) {
  const json& v = lookup_key(c, key);
  expect(v, v.is_string(), key, "a string");
  return v.get<std::string>();
}
std::vector<int64_t> get_int_list(const Config& c, const std::string& key) {
  const json& v = lookup_key(c, key);
  expect(v, v.is_array(), key, "a list of integers");
  std::vector<int64_t> out;
  for (const auto& e : v) {
    expect(v, e.is_number_integer() || e.is_number_unsigned(), key, "a list of integers");
    out.push_back(e.get<int64_t>());
  }
  return out;
}
std::string get_choice(const Config& c, const std::string& key,
                       const std::vector<std::string>& choices) {
  const std::string v = get_string(c, key);
  std::string list;
  for (const auto& ch : choices) {
    if (ch == v) return v;
    list += (list.empty() ? "" : ", ") + ch;
  }
  error("configuration key '" + key + "': unknown value \"" + v + "\" (choose from " + list + ")");
}
int64_t get_int_in(const Config& c, const std::string& key, int64_t lo, int64_t hi) {
  const int64_t v = get_int(c, key);
  if (v < lo || v > hi)
    error("configuration key '" + key + "' = " + std::to_string(v) + " is outside [" +
          std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}
double get_double_in(const Config& c, const std::string& key, double lo, double hi) {
  const double v = get_double(c, key);
  if (!(v >= lo && v <= hi)) {
    std::ostringstream s;
    s << "configuration key '" << key << "' = " << v << " is outside [" << lo << ", " << hi << "]";
    error(s.str());
  }
  return v;
}

const nlohmann::json& value_at(const Config& c, const std::string& key) {
  return lookup_key(c, key);
}

namespace {
void collect_differences(const json& a, const json& b, const std::string& prefix,
                         std::vector<std::string>& out) {
  for (auto it = a.begin(); it != a.end(); ++it) {
    const std::string key = join(prefix, it.key());
    if (!b.contains(it.key()))
      out.push_back(key);
    else if (it.value().is_object())
      collect_differences(it.value(), b[it.key()], key, out);
    else if (it.value() != b[it.key()])
      out.push_back(key);
  }
}
}  // namespace

std::vector<std::string> differing_keys(const Config& a, const Config& b) {
  std::vector<std::string> out;
  collect_differences(a, b, "", out);
  return out;
}

std::string to_text(const Config& c) { return c.dump(2); }

Config from_text(const std::string& json_text, const std::string& where) {
  Config c = default_config();
  try {
    merge(c, json::parse(json_text), where);
  } catch (const json::exception& e) {
    error(where + ": configuration is not valid JSON: " + e.what());
  }
  return c;
}

}  // namespace sg::cli
