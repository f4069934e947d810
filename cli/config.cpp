// Defaults, strict merging, overrides and typed access for the scoregrad command's
// configuration (see config.hpp). YAML is read with yaml-cpp and converted to the same JSON
// tree, so both formats obey the same checks. Files are hostile input: only regular files of at
// most kMaxFileBytes are read, JSON goes through the strict parser (no key twice, bounded
// nesting, linear time), YAML is converted with the same limits (and a bound on the values that
// aliases expand to), and values are quoted in errors only in part.
#include "cli/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "autodiff/core/error.hpp"
#include "nn/checkpoint.hpp"
#include "nn/strict_json.hpp"

namespace sg::cli {
namespace {

using json = nlohmann::json;
using nn::json_excerpt;
using nn::text_excerpt;

constexpr uint64_t kMaxFileBytes = 4 << 20;      // a configuration is a few KB
constexpr int kMaxDepth = 64;                    // lists and sections; the defaults nest 2 deep
constexpr std::size_t kMaxYamlValues = 100'000;  // after aliases are expanded

[[noreturn]] void error(const std::string& msg) { throw ConfigError(msg); }

// Strict JSON (see nn/strict_json.hpp): a repeated key names its dotted path.
json parse_strict(const std::string& text, const std::string& where) {
  try {
    return nn::parse_json_strict(text, kMaxDepth);
  } catch (const nn::JsonError& e) {
    if (!e.duplicate.empty()) error(where + ": " + e.what());
    error(where + ": not valid JSON: " + e.what());
  }
}

// An integer that int64 holds (JSON and YAML also give unsigned integers up to 2^64 - 1).
bool is_int64(const json& v) {
  return v.is_number_integer() &&
         (!v.is_number_unsigned() ||
          v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
}

std::string kind_of(const json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer() && !is_int64(v)) return "an integer beyond int64";
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

// A list of numbers (where the default holds a non-integer; its values are kept as doubles, so
// it stays one), else a list of integers.
bool number_list(const json& d) {
  return d.is_array() &&
         std::any_of(d.begin(), d.end(), [](const json& e) { return e.is_number_float(); });
}

// Does `v` fit where the default is `d`? Integers fit where numbers are expected.
bool same_kind(const json& d, const json& v) {
  if (d.is_number_float()) return v.is_number();
  if (d.is_number_integer()) return is_int64(v);
  if (d.is_array()) {
    if (!v.is_array()) return false;
    const bool numbers = number_list(d);
    for (const auto& e : v)
      if (numbers ? !e.is_number() : !is_int64(e)) return false;
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
      error(where + ": unknown key '" + text_excerpt(key, 120) + "' (known" +
            (prefix.empty() ? "" : " in " + prefix) + ": " + known_keys(base) + ")");
    json& slot = base[it.key()];
    if (slot.is_object()) {
      merge_into(slot, it.value(), key, where);
    } else if (!same_kind(slot, it.value())) {
      error(where + ": key '" + key + "' expects " + kind_of(slot) + ", got " +
            kind_of(it.value()) + " (" + json_excerpt(it.value()) + ")");
    } else {
      if (number_list(slot)) {
        json doubles = json::array();
        for (const json& e : it.value()) doubles.push_back(e.get<double>());
        slot = doubles;
      } else {
        slot = slot.is_number_float() ? json(it.value().get<double>()) : it.value();
      }
    }
  }
}

// Strings must be UTF-8, as in JSON (the configuration is written back as JSON).
const std::string& checked_utf8(const std::string& s, const std::string& where) {
  try {
    (void)json(s).dump();
  } catch (const json::exception&) {
    error(where + ": the string " +
          text_excerpt(json(s).dump(-1, ' ', false, json::error_handler_t::replace), 60) +
          " is not valid UTF-8");
  }
  return s;
}

// The YAML tree as JSON, refusing what JSON would: a key given twice (yaml-cpp keeps both), a
// non-string key, nesting deeper than kMaxDepth (also what an alias to its own ancestor gives)
// and, since aliases share nodes that the conversion copies, more than kMaxYamlValues values.
class YamlToJson {
 public:
  explicit YamlToJson(std::string where) : where_(std::move(where)) {}
  json operator()(const YAML::Node& n) { return convert(n, "", 0); }

 private:
  json convert(const YAML::Node& n, const std::string& path, int depth) {
    if (++values_ > kMaxYamlValues)
      error(where_ + ": more than " + std::to_string(kMaxYamlValues) +
            " values (after expanding aliases)");
    switch (n.Type()) {
      case YAML::NodeType::Map: {
        if (depth >= kMaxDepth) too_deep();
        json o = json::object();
        for (const auto& kv : n) {
          if (!kv.first.IsScalar())
            error(where_ + ": a key in '" + text_excerpt(path, 120) + "' is not a plain string");
          const std::string k = utf8(kv.first.Scalar());
          const std::string key = join(path, k);
          if (o.contains(k))
            error(where_ + ": key '" + text_excerpt(key, 120) + "' is given twice");
          o[k] = convert(kv.second, key, depth + 1);
        }
        return o;
      }
      case YAML::NodeType::Sequence: {
        if (depth >= kMaxDepth) too_deep();
        json a = json::array();
        for (const auto& e : n) a.push_back(convert(e, path, depth + 1));
        return a;
      }
      case YAML::NodeType::Scalar: {
        const std::string s = utf8(n.Scalar());
        if (n.Tag() == "!") return s;  // quoted: a string
        if (s == "true" || s == "True") return true;
        if (s == "false" || s == "False") return false;
        // Numbers as JSON reads them (integers stay integers); nothing nested.
        try {
          json v = nn::parse_json_strict(s, 0);
          if (v.is_number()) return v;
        } catch (const nn::JsonError&) {
        }
        return s;
      }
      default:
        return nullptr;
    }
  }
  std::string utf8(const std::string& s) const { return checked_utf8(s, where_); }
  [[noreturn]] void too_deep() const {
    error(where_ + ": not valid YAML: nested deeper than " + std::to_string(kMaxDepth) +
          " levels of lists and maps");
  }
  std::string where_;
  std::size_t values_ = 0;
};

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
  if (!ok) error("configuration key '" + key + "' expects " + what + ", got " + json_excerpt(v));
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
      "fd_eps": 0.1,
      "schedule": "learned_endpoints",
      "gamma_min": -13.3,
      "gamma_max": 5.0,
      "levels": 256,
      "timesteps": 0,
      "antithetic": true,
      "fourier_features": false,
      "schedule_gradient": "automatic"
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
  std::string text;
  try {
    text = nn::read_regular_file(path, kMaxFileBytes, "configuration file");
  } catch (const IOError& e) {
    error(std::string("cannot read ") + e.what());
  }
  const bool yaml = path.ends_with(".yaml") || path.ends_with(".yml");
  json tree;
  if (yaml) {
    try {
      tree = YamlToJson(path)(YAML::Load(text));
    } catch (const YAML::Exception& e) {
      error(path + ": not valid YAML: " + text_excerpt(e.what(), 300));
    }
    if (tree.is_null()) tree = json::object();  // an empty file
  } else {
    tree = parse_strict(text, path);
  }
  merge(config, tree, path);
}

void apply_override(Config& config, const std::string& assignment) {
  const std::string shown = text_excerpt(assignment, 120);  // in errors
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    error("override '" + shown + "' is not of the form key.sub=value");
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
      error("override '" + shown + "': unknown key '" + text_excerpt(join(prefix, part), 120) +
            "'" +
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
    value = checked_utf8(text, "override '" + shown + "'");
  } else if (base->is_boolean()) {
    if (text == "true" || text == "1")
      value = true;
    else if (text == "false" || text == "0")
      value = false;
    else
      error("override '" + shown + "': key '" + key + "' expects a boolean, got \"" +
            text_excerpt(text, 120) + "\"");
  } else if (base->is_object()) {
    error("override '" + shown + "': '" + key + "' is a section (keys: " + known_keys(*base) + ")");
  } else {
    try {
      value = nn::parse_json_strict(text, kMaxDepth);
    } catch (const nn::JsonError&) {
      error("override '" + shown + "': key '" + key + "' expects " + kind_of(*base) + ", got \"" +
            text_excerpt(text, 120) + "\"");
    }
  }
  (*node)[leaf] = value;
  merge(config, tree, "override '" + shown + "'");
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
  merge(c, parse_strict(json_text, where + ": configuration"), where);
  return c;
}

}  // namespace sg::cli
