// The options schema of the scoregrad command (options.hpp).
#include "cli/options.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "objectives/registry.hpp"

namespace sg::cli {
namespace {

using json = nlohmann::json;
using T = OptionType;
const double kInt64 = static_cast<double>(std::numeric_limits<int64_t>::max());

OptionSpec integer(std::string key, double lo, double hi, std::string selector = "",
                   std::vector<std::string> used_by = {}) {
  return {.key = std::move(key),
          .type = T::integer,
          .lo = lo,
          .hi = hi,
          .selector = std::move(selector),
          .used_by = std::move(used_by)};
}
OptionSpec number(std::string key, double lo, double hi, bool lo_open, std::string selector = "",
                  std::vector<std::string> used_by = {}) {
  return {.key = std::move(key),
          .type = T::number,
          .lo = lo,
          .hi = hi,
          .lo_open = lo_open,
          .selector = std::move(selector),
          .used_by = std::move(used_by)};
}
OptionSpec choice(std::string key, std::vector<std::string> choices, std::string selector = "",
                  std::vector<std::string> used_by = {}) {
  return {.key = std::move(key),
          .type = T::choice,
          .choices = std::move(choices),
          .selector = std::move(selector),
          .used_by = std::move(used_by)};
}
OptionSpec boolean(std::string key, std::string selector = "",
                   std::vector<std::string> used_by = {}) {
  return {.key = std::move(key),
          .type = T::boolean,
          .selector = std::move(selector),
          .used_by = std::move(used_by)};
}

std::vector<OptionSpec> make_schema() {
  const std::vector<std::string> mlp = {"mlp"}, unet = {"unet"}, vp = {"vp", "subvp"}, ve = {"ve"};
  const std::string kind = "model.kind", sde = "sde.name", obj = "objective.name",
                    method = "sample.method";
  std::vector<OptionSpec> s = {
      {.key = "data.path", .type = T::text, .selector = "data.name", .used_by = {"digits"}},

      choice("model.kind", {"auto", "mlp", "unet"}),
      integer("model.hidden", 1, 65536, kind, mlp),
      integer("model.layers", 1, 64, kind, mlp),
      integer("model.embed_dim", 2, 4096, kind, mlp),  // and even
      number("model.fourier_scale", 0, 1e4, false, kind, mlp),
      choice("model.activation",
             {"identity", "relu", "silu", "tanh", "softplus", "gelu", "elu", "sigmoid"}, kind, mlp),
      integer("model.channels", 1, 4096, kind, unet),
      {.key = "model.multipliers",
       .type = T::int_list,
       .lo = 1,
       .hi = 64,
       .max_entries = 8,
       .selector = kind,
       .used_by = unet},
      integer("model.groups", 1, 4096, kind, unet),  // and dividing every level's width
      boolean("model.attention", kind, unet),
      number("model.dropout", 0, 0.99, false, kind, unet),

      choice("sde.name", {"vp", "subvp", "ve"}),
      number("sde.beta_min", 0, 1e4, false, sde, vp),  // and <= beta_max
      number("sde.beta_max", 0, 1e4, true, sde, vp),
      number("sde.sigma_min", 0, 1e6, true, sde, ve),  // and < sigma_max
      number("sde.sigma_max", 0, 1e6, true, sde, ve),

      {.key = "objective.name", .type = T::text},  // any registered objective
      number("objective.t_eps", 0, 0.5, true, obj),
      choice("objective.weighting", {"variance", "likelihood"}, obj),
      choice("objective.time_sampling", {"uniform", "importance"}, obj),
      choice("objective.projection", {"rademacher", "gaussian", "sphere"}, obj),
      integer("objective.projections", 1, 1024, obj),
      number("objective.fd_eps", 0, 10, true, obj),
      choice("objective.schedule",
             {"fixed", "learned_scalar", "monotone_net", "learned_endpoints", "vp"}, obj),
      number("objective.gamma_min", -1e4, 1e4, false, obj),  // and < gamma_max
      number("objective.gamma_max", -1e4, 1e4, false, obj),
      integer("objective.levels", 2, 65536, obj),  // and the data's levels
      integer("objective.timesteps", 0, double(int64_t{1} << 30), obj),
      boolean("objective.antithetic", obj),
      boolean("objective.fourier_features", obj),
      choice("objective.schedule_gradient", {"automatic", "vlb", "variance"}, obj),

      choice("sample.method", {"pc", "ode", "em", "ancestral"}),  // ancestral: vdm runs only
      integer("sample.n", 1, double(int64_t{1} << 30)),
      integer("sample.steps", 1, double(int64_t{1} << 30), method, {"pc", "em", "ancestral"}),
      number("sample.t_eps", 0, 0.5, true, method, {"pc", "ode", "em"}),
      number("sample.snr", 0, 10, false, method, {"pc"}),
      integer("sample.corrector_steps", 0, 1000, method, {"pc"}),
      number("sample.rtol", 1e-12, 1, false, method, {"ode"}),
      number("sample.atol", 1e-12, 1, false, method, {"ode"}),
      integer("sample.seed", 0, kInt64),
      boolean("sample.use_ema"),
  };
  return s;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& e : v) out += (out.empty() ? "" : ", ") + e;
  return out;
}
std::string num(double v) {
  if (v >= kInt64) return "2^63-1";
  if (v == std::floor(v) && std::abs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  std::ostringstream s;
  s << v;
  return s.str();
}
std::string interval(const OptionSpec& spec) {
  return (spec.lo_open ? "(" : "[") + num(spec.lo) + ", " + num(spec.hi) + "]";
}
bool in_range(const OptionSpec& spec, double v) {
  return std::isfinite(v) && (spec.lo_open ? v > spec.lo : v >= spec.lo) && v <= spec.hi;
}

}  // namespace

const std::vector<OptionSpec>& option_schema() {
  static const std::vector<OptionSpec> schema = make_schema();
  return schema;
}

const OptionSpec* find_option(const std::string& key) {
  for (const OptionSpec& s : option_schema())
    if (s.key == key) return &s;
  return nullptr;
}

std::vector<std::string> users_of(const OptionSpec& spec) {
  if (spec.selector != "objective.name") return spec.used_by;
  const std::string option = spec.key.substr(spec.key.find('.') + 1);
  std::vector<std::string> out;
  for (const std::string& name : obj::objective_names())
    for (const obj::ObjectiveOption& o : obj::find_objective(name).options)
      if (o.name == option) out.push_back(name);
  return out;
}

bool option_used(const OptionSpec& spec, const std::string& selected) {
  if (spec.selector.empty()) return true;
  if (spec.selector == "objective.name") {
    const std::string option = spec.key.substr(spec.key.find('.') + 1);
    for (const obj::ObjectiveOption& o : obj::find_objective(selected).options)
      if (o.name == option) return true;
    return false;
  }
  return std::find(spec.used_by.begin(), spec.used_by.end(), selected) != spec.used_by.end();
}

std::string range_problem(const OptionSpec& spec, const json& v) {
  switch (spec.type) {
    case T::integer:
    case T::number:
      if (!v.is_number()) return "expects a number, got " + v.dump();
      if (!in_range(spec, v.get<double>())) return "is outside " + interval(spec);
      return "";
    case T::int_list:
    case T::number_list: {
      if (!v.is_array())
        return std::string("expects a list of ") +
               (spec.type == T::int_list ? "integers" : "numbers") + ", got " + v.dump();
      if (v.empty() || static_cast<int64_t>(v.size()) > spec.max_entries)
        return "must have 1 to " + std::to_string(spec.max_entries) + " entries";
      for (std::size_t i = 0; i < v.size(); ++i)
        if (!v[i].is_number() || !in_range(spec, v[i].get<double>()))
          return "has entry " + std::to_string(i) + " = " + v[i].dump() + " outside " +
                 interval(spec);
      return "";
    }
    case T::choice:
      if (!v.is_string() || std::find(spec.choices.begin(), spec.choices.end(),
                                      v.get<std::string>()) == spec.choices.end())
        return "is not one of " + join(spec.choices);
      return "";
    case T::boolean:
      return v.is_boolean() ? "" : "expects a boolean, got " + v.dump();
    case T::text:
      return v.is_string() ? "" : "expects a string, got " + v.dump();
  }
  return "";
}

namespace {
void check_spec(const OptionSpec& spec, const Config& c, const Config& baseline,
                const std::string& selected) {
  const json& v = value_at(c, spec.key);
  if (const std::string p = range_problem(spec, v); !p.empty())
    throw ConfigError("configuration key '" + spec.key + "' = " + v.dump() + " " + p);
  if (option_used(spec, selected) || v == value_at(baseline, spec.key)) return;
  const std::vector<std::string> users = users_of(spec);
  throw ConfigError("configuration key '" + spec.key + "' = " + v.dump() + " is not used by " +
                    spec.selector + " = \"" + selected + "\" (only by " +
                    (users.empty() ? std::string("none") : join(users)) +
                    "); remove it or leave it at " + value_at(baseline, spec.key).dump());
}
}  // namespace

void check_section(const Config& c, const Config& baseline, const std::string& section,
                   const std::string& selected) {
  for (const OptionSpec& spec : option_schema())
    if (spec.key.starts_with(section + ".")) check_spec(spec, c, baseline, selected);
}

void check_keys(const std::vector<OptionSpec>& schema, const Config& c, const Config& baseline) {
  for (const OptionSpec& spec : schema)
    check_spec(spec, c, baseline,
               spec.selector.empty() ? std::string() : get_string(c, spec.selector));
}

std::string schema_table() { return schema_table(option_schema()); }

std::string schema_table(const std::vector<OptionSpec>& schema) {
  std::string out = "| key | type | allowed | used by |\n|---|---|---|---|\n";
  for (const OptionSpec& spec : schema) {
    std::string type, allowed;
    switch (spec.type) {
      case T::integer:
        type = "integer", allowed = interval(spec);
        break;
      case T::number:
        type = "number", allowed = interval(spec);
        break;
      case T::int_list:
      case T::number_list:
        type = spec.type == T::int_list ? "list of integers" : "list of numbers";
        allowed = "1-" + std::to_string(spec.max_entries) + " entries in " + interval(spec);
        break;
      case T::choice:
        type = "choice", allowed = join(spec.choices);
        break;
      case T::boolean:
        type = "boolean", allowed = "true, false";
        break;
      case T::text:
        type = "string";
        allowed = spec.key == "objective.name" ? "a registered objective" : "a path";
        break;
    }
    std::vector<std::string> users = users_of(spec);
    if (spec.selector == "objective.name")  // with the choices an objective restricts itself to
      for (std::string& u : users)
        for (const obj::ObjectiveOption& o : obj::find_objective(u).options)
          if ("objective." + o.name == spec.key && !o.values.empty())
            u += " (" + join(o.values) + ")";
    const std::string used =
        spec.selector.empty() ? "all" : "`" + spec.selector + "` = " + join(users);
    out += "| `" + spec.key + "` | " + type + " | " + allowed + " | " + used + " |\n";
  }
  return out;
}

}  // namespace sg::cli
