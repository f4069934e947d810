// Optimizers (SGD, Adam, AdamW), gradient clipping, the warm-up + cosine schedule and the EMA of
// parameters, with their state export/import. Every update is computed with tensor ops under
// NoGradGuard and assigned to the slot as a new leaf (see optim.hpp).
#include "nn/optim.hpp"

#include <cmath>
#include <numbers>
#include <set>

#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"

namespace sg::nn {

namespace {

Tensor i64_scalar(int64_t v) {
  Tensor t = empty({}, DType::i64);
  *t.data<int64_t>() = v;
  return t;
}
int64_t i64_value(const Tensor& t) { return t.values<int64_t>().at(0); }

bool is_i64_scalar(const Tensor& t) {
  return t.defined() && t.dtype() == DType::i64 && t.rank() == 0;
}
bool is_f64_scalar(const Tensor& t) {
  return t.defined() && t.dtype() == DType::f64 && t.rank() == 0;
}

std::string expected_like(const Tensor& p) { return describe(p); }

// A detached, private copy on `device` (callers may hold on to what they passed in).
Tensor own_copy(const Tensor& t, Device device) {
  NoGradGuard off;
  return to_device(t.detach(), device).clone().detach();
}

void check_slots(const ParamSlots& slots, const std::string& who) {
  std::set<std::string> seen;
  for (std::size_t i = 0; i < slots.size(); ++i) {
    const auto& [name, slot] = slots[i];
    if (!slot) fail<ValueError>(who, ": parameter slot ", i, " ('", name, "') is null");
    if (!slot->defined()) fail<ValueError>(who, ": parameter '", name, "' is an undefined tensor");
    if (!is_floating(slot->dtype()))
      fail<DTypeError>(who, ": parameter '", name, "' is ", describe(*slot), ", not floating");
    if (!seen.insert(name).second)
      fail<ValueError>(who, ": parameter name '", name, "' appears twice");
  }
}

}  // namespace

// ---- Optimizer ---------------------------------------------------------------------------------

Optimizer::Optimizer(std::string name, std::string kind, ParamSlots slots, double lr)
    : name_(std::move(name)), kind_(std::move(kind)), slots_(std::move(slots)), lr_(0) {
  check_slots(slots_, name_);
  set_lr(lr);
  state_.resize(slots_.size());
}

void Optimizer::set_lr(double lr) {
  if (!std::isfinite(lr) || lr < 0)
    fail<ValueError>(name_, ": learning rate ", lr, " must be finite and >= 0");
  lr_ = lr;
}

void Optimizer::step(const std::vector<Tensor>& grads) {
  if (grads.size() != slots_.size())
    fail<ValueError>(name_, ".step: ", grads.size(), " gradients for ", slots_.size(),
                     " parameters");
  bool any = false;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    const Tensor& g = grads[i];
    if (!g.defined()) continue;
    any = true;
    const auto& [name, slot] = slots_[i];
    if (!(g.shape() == slot->shape()))
      fail<ShapeError>(name_, ".step: gradient for '", name, "' is ", describe(g),
                       ", parameter is ", describe(*slot));
    if (g.dtype() != slot->dtype())
      fail<DTypeError>(name_, ".step: gradient for '", name, "' is ", describe(g),
                       ", parameter is ", describe(*slot));
    if (!(g.device() == slot->device()))
      fail<DeviceError>(name_, ".step: gradient for '", name, "' is on ", device_name(g.device()),
                        ", parameter on ", device_name(slot->device()));
  }
  if (!any && !slots_.empty())
    fail<GradError>(
        name_,
        ".step: no parameter has a gradient (run backward(loss) or pass grad(loss, params))");
  NoGradGuard off;
  ++steps_;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (!grads[i].defined()) continue;
    Tensor* slot = slots_[i].second;
    follow_device(i, slot->device());
    assign_leaf(slot, update(i, slot->detach(), grads[i].detach()));
  }
}

void Optimizer::step() {
  std::vector<Tensor> grads;
  grads.reserve(slots_.size());
  for (auto& [name, slot] : slots_) grads.push_back(slot->grad());
  step(grads);
}

void Optimizer::follow_device(std::size_t i, Device device) {
  for (const auto& spec : buffer_specs()) {
    auto it = state_[i].find(spec.name);
    if (spec.counter || it == state_[i].end() || !it->second.defined()) continue;
    if (!(it->second.device() == device)) it->second = to_device(it->second, device).detach();
  }
}

void Optimizer::zero_grad() {
  for (auto& [name, slot] : slots_) slot->zero_grad();
}

NamedTensors Optimizer::state() const {
  NamedTensors out;
  out["optim.step"] = i64_scalar(steps_);
  out["optim.lr"] = scalar(lr_, DType::f64);
  for (std::size_t i = 0; i < slots_.size(); ++i)
    for (const auto& [buf, t] : state_[i])
      if (t.defined()) out["optim." + kind_ + "." + buf + "." + slots_[i].first] = t.detach();
  return out;
}

void Optimizer::check_state(const NamedTensors& state) const {
  std::string problems;
  auto it = state.find("optim.step");
  if (it == state.end())
    problems += "\n  missing: optim.step (int64[])";
  else if (!is_i64_scalar(it->second) || i64_value(it->second) < 0)
    problems +=
        "\n  mismatch: optim.step expects a non-negative int64[], got " + describe(it->second);
  it = state.find("optim.lr");
  if (it == state.end())
    problems += "\n  missing: optim.lr (float64[])";
  else if (!is_f64_scalar(it->second) || !std::isfinite(it->second.item()) || it->second.item() < 0)
    problems += "\n  mismatch: optim.lr expects a finite non-negative float64[], got " +
                describe(it->second);

  const std::string prefix = "optim." + kind_ + ".";
  const auto specs = buffer_specs();
  for (const auto& [key, t] : state) {
    if (key == "optim.step" || key == "optim.lr") continue;
    if (key.rfind(prefix, 0) != 0) {
      problems += "\n  unexpected: " + key + " (" + (t.defined() ? describe(t) : "undefined") +
                  "; " + name_ + " state names start with " + prefix + ")";
      continue;
    }
    const std::string rest = key.substr(prefix.size());
    const auto dot = rest.find('.');
    const std::string buf = rest.substr(0, dot),
                      param = dot == std::string::npos ? "" : rest.substr(dot + 1);
    const BufferSpec* spec = nullptr;
    for (const auto& s : specs)
      if (buf == s.name) spec = &s;
    const Tensor* slot = nullptr;
    for (const auto& [n, s] : slots_)
      if (n == param) slot = s;
    if (!spec || !slot) {
      problems +=
          "\n  unexpected: " + key +
          (spec ? " (no parameter named '" + param + "')" : " (unknown buffer '" + buf + "')");
      continue;
    }
    if (!t.defined()) {
      problems += "\n  mismatch: " + key + " is an undefined tensor";
    } else if (spec->counter) {
      if (!is_i64_scalar(t) || i64_value(t) < 0)
        problems += "\n  mismatch: " + key + " expects a non-negative int64[], got " + describe(t);
    } else if (!(t.shape() == slot->shape()) || t.dtype() != slot->dtype()) {
      problems +=
          "\n  mismatch: " + key + " expects " + expected_like(*slot) + ", got " + describe(t);
    }
  }
  if (!problems.empty()) fail<ValueError>(name_, ".load_state:", problems);
}

void Optimizer::load_state(const NamedTensors& state) {
  check_state(state);
  const std::string prefix = "optim." + kind_ + ".";
  std::vector<NamedTensors> fresh(slots_.size());
  for (std::size_t i = 0; i < slots_.size(); ++i)
    for (const auto& s : buffer_specs()) {
      auto it = state.find(prefix + s.name + "." + slots_[i].first);
      if (it != state.end())
        fresh[i][s.name] =
            own_copy(it->second, s.counter ? Device::cpu() : slots_[i].second->device());
    }
  state_ = std::move(fresh);
  steps_ = i64_value(state.at("optim.step"));
  lr_ = state.at("optim.lr").item();
}

// ---- SGD ---------------------------------------------------------------------------------------

SGD::SGD(ParamSlots slots, SGDOptions opts)
    : Optimizer("SGD", "sgd", std::move(slots), opts.lr), opts_(opts) {
  auto bad = [](double v) { return !std::isfinite(v) || v < 0; };
  if (bad(opts.momentum))
    fail<ValueError>("SGD: momentum ", opts.momentum, " must be finite and >= 0");
  if (bad(opts.dampening))
    fail<ValueError>("SGD: dampening ", opts.dampening, " must be finite and >= 0");
  if (bad(opts.weight_decay))
    fail<ValueError>("SGD: weight_decay ", opts.weight_decay, " must be finite and >= 0");
  if (opts.nesterov && (opts.momentum <= 0 || opts.dampening != 0))
    fail<ValueError>("SGD: nesterov needs momentum > 0 and dampening == 0 (got momentum ",
                     opts.momentum, ", dampening ", opts.dampening, ")");
}

std::vector<Optimizer::BufferSpec> SGD::buffer_specs() const { return {{"momentum", false}}; }

Tensor SGD::update(std::size_t i, const Tensor& p, const Tensor& g0) {
  Tensor g = g0;
  if (opts_.weight_decay != 0) g = g + p * opts_.weight_decay;  // g = g + wd*p
  if (opts_.momentum != 0) {
    Tensor& b = buffer(i, "momentum");
    if (!b.defined())
      b = g.clone().detach();  // b = g (first step)
    else
      b = (b * opts_.momentum + g * (1 - opts_.dampening)).detach();  // b = mu*b + (1-damp)*g
    g = opts_.nesterov ? g + b * opts_.momentum : b;                  // d = g + mu*b or b
  }
  return p - g * lr();  // p = p - lr*d
}

// ---- Adam / AdamW ------------------------------------------------------------------------------

Adam::Adam(ParamSlots slots, AdamOptions opts) : Adam("Adam", std::move(slots), opts, false) {}

Adam::Adam(std::string name, ParamSlots slots, AdamOptions opts, bool decoupled)
    : Optimizer(name, "adam", std::move(slots), opts.lr), opts_(opts), decoupled_(decoupled) {
  if (!(opts.beta1 >= 0 && opts.beta1 < 1))
    fail<ValueError>(name, ": beta1 ", opts.beta1, " must be in [0, 1)");
  if (!(opts.beta2 >= 0 && opts.beta2 < 1))
    fail<ValueError>(name, ": beta2 ", opts.beta2, " must be in [0, 1)");
  if (!(opts.eps >= 0) || !std::isfinite(opts.eps))
    fail<ValueError>(name, ": eps ", opts.eps, " must be finite and >= 0");
  if (!(opts.weight_decay >= 0) || !std::isfinite(opts.weight_decay))
    fail<ValueError>(name, ": weight_decay ", opts.weight_decay, " must be finite and >= 0");
}

std::vector<Optimizer::BufferSpec> Adam::buffer_specs() const {
  return {{"m", false}, {"v", false}, {"step", true}};
}

Tensor Adam::update(std::size_t i, const Tensor& p0, const Tensor& g0) {
  Tensor p = p0, g = g0;
  if (opts_.weight_decay != 0) {
    if (decoupled_)
      p = p * (1 - lr() * opts_.weight_decay);  // AdamW: p = p*(1 - lr*wd)
    else
      g = g + p * opts_.weight_decay;  // Adam: g = g + wd*p
  }
  Tensor& m = buffer(i, "m");
  Tensor& v = buffer(i, "v");
  Tensor& t_buf = buffer(i, "step");
  if (!m.defined()) m = zeros_like(p);
  if (!v.defined()) v = zeros_like(p);
  const int64_t t = (t_buf.defined() ? i64_value(t_buf) : 0) + 1;
  t_buf = i64_scalar(t);
  m = (m * opts_.beta1 + g * (1 - opts_.beta1)).detach();          // m = b1*m + (1-b1)*g
  v = (v * opts_.beta2 + square(g) * (1 - opts_.beta2)).detach();  // v = b2*v + (1-b2)*g^2
  const double c1 = 1 - std::pow(opts_.beta1, static_cast<double>(t));
  const double c2 = 1 - std::pow(opts_.beta2, static_cast<double>(t));
  return p - m / (sqrt(v) / std::sqrt(c2) + opts_.eps) *
                 (lr() / c1);  // p - lr/c1 * m/(sqrt(v)/sqrt(c2)+eps)
}

AdamW::AdamW(ParamSlots slots, AdamWOptions o)
    : Adam("AdamW", std::move(slots),
           AdamOptions{.lr = o.lr,
                       .beta1 = o.beta1,
                       .beta2 = o.beta2,
                       .eps = o.eps,
                       .weight_decay = o.weight_decay},
           true) {}

// ---- clipping ----------------------------------------------------------------------------------

double clip_grad_norm(std::vector<Tensor>& grads, double max_norm, double eps,
                      bool error_if_nonfinite) {
  if (!(max_norm > 0) || !std::isfinite(max_norm))
    fail<ValueError>("clip_grad_norm: max_norm ", max_norm, " must be finite and > 0");
  if (!(eps >= 0)) fail<ValueError>("clip_grad_norm: eps ", eps, " must be >= 0");
  NoGradGuard off;
  double sq = 0;  // sum of squares in float64
  for (const Tensor& g : grads)
    if (g.defined()) {
      if (!is_floating(g.dtype()))
        fail<DTypeError>("clip_grad_norm: gradient ", describe(g), " is not floating");
      sq += sum(square(cast(g.detach(), DType::f64))).item();
    }
  const double norm = std::sqrt(sq);  // norm = sqrt(sum_i sum(g_i^2))
  if (!std::isfinite(norm)) {
    if (error_if_nonfinite)
      fail<ValueError>(
          "clip_grad_norm: the total gradient norm is ", norm,
          " (a gradient has NaN or Inf); pass error_if_nonfinite = false to skip instead");
    return norm;
  }
  if (norm > max_norm) {
    const double scale = max_norm / (norm + eps);  // scale = max_norm/(norm+eps)
    for (Tensor& g : grads)
      if (g.defined()) g = (g.detach() * scale).detach();
  }
  return norm;
}

double clip_grad_norm(const ParamSlots& slots, double max_norm, double eps,
                      bool error_if_nonfinite) {
  std::vector<Tensor> grads;
  for (const auto& [name, slot] : slots) {
    if (!slot) fail<ValueError>("clip_grad_norm: parameter slot '", name, "' is null");
    grads.push_back(slot->grad());
  }
  const double norm = clip_grad_norm(grads, max_norm, eps, error_if_nonfinite);
  for (std::size_t i = 0; i < slots.size(); ++i)
    if (grads[i].defined()) slots[i].second->set_grad(grads[i]);
  return norm;
}

// ---- schedule ----------------------------------------------------------------------------------

double WarmupCosine::lr(int64_t step) const {
  if (!(base_lr >= 0) || !(min_lr >= 0) || !std::isfinite(base_lr) || min_lr > base_lr)
    fail<ValueError>("WarmupCosine: need 0 <= min_lr <= base_lr (got min_lr ", min_lr, ", base_lr ",
                     base_lr, ")");
  if (warmup_steps < 0 || total_steps < warmup_steps)
    fail<ValueError>("WarmupCosine: need 0 <= warmup_steps <= total_steps (got warmup_steps ",
                     warmup_steps, ", total_steps ", total_steps, ")");
  if (step < 0) fail<ValueError>("WarmupCosine.lr: step ", step, " is negative");
  if (step < warmup_steps)
    return base_lr * static_cast<double>(step + 1) /
           static_cast<double>(warmup_steps);  // base*(s+1)/warmup
  if (step >= total_steps) return min_lr;
  const double progress =
      static_cast<double>(step - warmup_steps) / static_cast<double>(total_steps - warmup_steps);
  return min_lr +
         (base_lr - min_lr) * 0.5 *
             (1 + std::cos(std::numbers::pi * progress));  // min + (base-min)(1+cos(pi*p))/2
}

// ---- EMA ---------------------------------------------------------------------------------------

Ema::Ema(Module& module, double decay, bool warmup)
    : Ema(module.named_parameters(), decay, warmup) {}

Ema::Ema(ParamSlots slots, double decay, bool warmup)
    : slots_(std::move(slots)), decay_(decay), warmup_(warmup) {
  if (!(decay >= 0 && decay <= 1)) fail<ValueError>("Ema: decay ", decay, " must be in [0, 1]");
  check_slots(slots_, "Ema");
  for (const auto& [name, slot] : slots_) shadow_[name] = own_copy(*slot, slot->device());
}

void Ema::update() {
  for (const auto& [name, slot] : slots_) {
    const Tensor& s = shadow_.at(name);
    if (!(slot->shape() == s.shape()) || slot->dtype() != s.dtype())
      fail<ShapeError>("Ema.update: parameter '", name, "' is now ", describe(*slot),
                       ", its average is ", describe(s));
  }
  NoGradGuard off;
  const double d = next_decay();
  for (const auto& [name, slot] : slots_) {
    Tensor& s = shadow_.at(name);
    if (!(s.device() == slot->device())) s = to_device(s, slot->device()).detach();
    s = (s * d + slot->detach() * (1 - d)).detach();  // shadow = d*shadow + (1-d)*param
  }
  ++num_updates_;
}

double Ema::next_decay() const {
  if (!warmup_) return decay_;
  const double n = static_cast<double>(num_updates_);
  return std::min(decay_, (1 + n) / (10 + n));
}

void Ema::check_module(Module& module, const char* op) const {
  std::string problems;
  std::set<std::string> seen;
  for (const auto& [name, slot] : module.named_parameters()) {
    seen.insert(name);
    auto it = shadow_.find(name);
    if (it == shadow_.end())
      problems += "\n  not averaged: " + name + " (" + describe(*slot) + ")";
    else if (!(it->second.shape() == slot->shape()) || it->second.dtype() != slot->dtype())
      problems += "\n  mismatch: " + name + " is " + describe(*slot) + ", its average is " +
                  describe(it->second);
  }
  for (const auto& [name, s] : shadow_)
    if (!seen.count(name))
      problems += "\n  missing from the module: " + name + " (" + describe(s) + ")";
  if (!problems.empty()) fail<ValueError>("Ema.", op, ":", problems);
}

void Ema::apply_to(Module& module) const {
  check_module(module, "apply_to");
  NoGradGuard off;
  for (auto& [name, slot] : module.named_parameters())
    assign_leaf(slot, own_copy(shadow_.at(name), slot->device()));
}

void Ema::swap(Module& module) {
  check_module(module, "swap");
  for (auto& [name, slot] : module.named_parameters()) {
    Tensor old = slot->detach();
    assign_leaf(slot, to_device(shadow_.at(name), slot->device()));
    shadow_.at(name) = old;
  }
}

NamedTensors Ema::state() const {
  NamedTensors out;
  out["ema.num_updates"] = i64_scalar(num_updates_);
  for (const auto& [name, s] : shadow_) out["ema.shadow." + name] = s.detach();
  return out;
}

void Ema::check_state(const NamedTensors& state) const {
  std::string problems;
  auto it = state.find("ema.num_updates");
  if (it == state.end())
    problems += "\n  missing: ema.num_updates (int64[])";
  else if (!is_i64_scalar(it->second) || i64_value(it->second) < 0)
    problems +=
        "\n  mismatch: ema.num_updates expects a non-negative int64[], got " + describe(it->second);
  for (const auto& [name, s] : shadow_) {
    auto jt = state.find("ema.shadow." + name);
    if (jt == state.end())
      problems += "\n  missing: ema.shadow." + name + " (" + describe(s) + ")";
    else if (!jt->second.defined() || !(jt->second.shape() == s.shape()) ||
             jt->second.dtype() != s.dtype())
      problems += "\n  mismatch: ema.shadow." + name + " expects " + describe(s) + ", got " +
                  (jt->second.defined() ? describe(jt->second) : "undefined");
  }
  for (const auto& [key, t] : state) {
    if (key == "ema.num_updates") continue;
    if (key.rfind("ema.shadow.", 0) == 0 && shadow_.count(key.substr(11))) continue;
    problems += "\n  unexpected: " + key + " (" + (t.defined() ? describe(t) : "undefined") + ")";
  }
  if (!problems.empty()) fail<ValueError>("Ema.load_state:", problems);
}

void Ema::load_state(const NamedTensors& state) {
  check_state(state);
  NamedTensors fresh;
  for (const auto& [name, slot] : slots_)
    fresh[name] = own_copy(state.at("ema.shadow." + name), slot->device());
  shadow_ = std::move(fresh);
  num_updates_ = i64_value(state.at("ema.num_updates"));
}

}  // namespace sg::nn
