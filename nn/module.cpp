// Module bookkeeping: registration, recursive traversal, state dicts, parameter swaps.
#include "nn/module.hpp"

#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"

namespace sg::nn {

Tensor& Module::param(const std::string& name, Tensor init) {
  if (!is_floating(init.dtype()))
    fail<DTypeError>("Module::param ", name, ": ", describe(init), " is not floating");
  params_.emplace_back(name, init.detach().requires_grad_());
  return params_.back().second;
}
Tensor& Module::buffer(const std::string& name, Tensor init) {
  buffers_.emplace_back(name, init.detach());
  return buffers_.back().second;
}

void Module::collect(const std::string& prefix, bool params,
                     std::vector<std::pair<std::string, Tensor*>>& out) {
  for (auto& [n, t] : params ? params_ : buffers_) out.emplace_back(prefix + n, &t);
  for (auto& [n, c] : children_) c->collect(prefix + n + ".", params, out);
}
std::vector<std::pair<std::string, Tensor*>> Module::named_parameters() {
  std::vector<std::pair<std::string, Tensor*>> out;
  collect("", true, out);
  return out;
}
std::vector<std::pair<std::string, Tensor*>> Module::named_buffers() {
  std::vector<std::pair<std::string, Tensor*>> out;
  collect("", false, out);
  return out;
}
std::vector<Tensor> Module::parameters() {
  std::vector<Tensor> out;
  for (auto& [n, p] : named_parameters()) out.push_back(*p);
  return out;
}
int64_t Module::num_parameters() {
  int64_t n = 0;
  for (auto& [name, p] : named_parameters()) n += p->numel();
  return n;
}
NamedTensors Module::state_dict() {
  NamedTensors out;
  for (auto& [n, p] : named_parameters()) out[n] = p->detach();
  for (auto& [n, b] : named_buffers()) out[n] = b->detach();
  return out;
}

void assign_leaf(Tensor* slot, const Tensor& value) {
  const bool leaf_grad = slot->defined() && slot->impl()->requires_grad;
  Tensor v = value.detach();
  if (leaf_grad) v.requires_grad_();
  *slot = std::move(v);
}

void Module::load_state_dict(const NamedTensors& state, bool strict) {
  std::string problems;
  auto slots = named_parameters();
  for (auto& b : named_buffers()) slots.push_back(b);
  std::map<std::string, bool> used;
  for (auto& [name, slot] : slots) {
    auto it = state.find(name);
    if (it == state.end()) {
      if (strict) problems += "\n  missing: " + name + " (" + describe(*slot) + ")";
      continue;
    }
    used[name] = true;
    const Tensor& v = it->second;
    if (!(v.shape() == slot->shape()) || v.dtype() != slot->dtype())
      problems += "\n  mismatch: " + name + " expects " + describe(*slot) + ", got " + describe(v);
  }
  if (strict)
    for (auto& [name, v] : state)
      if (!used.count(name)) problems += "\n  unexpected: " + name + " (" + describe(v) + ")";
  if (!problems.empty()) fail<ValueError>("load_state_dict:", problems);
  NoGradGuard off;
  for (auto& [name, slot] : slots) {
    auto it = state.find(name);
    if (it == state.end()) continue;
    assign_leaf(slot, it->second.detach().clone().to(slot->device()));
  }
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
}
void Module::to(DType dtype) {
  NoGradGuard off;
  for (auto& [n, p] : named_parameters()) assign_leaf(p, cast(*p, dtype));
  for (auto& [n, b] : named_buffers())
    if (is_floating(b->dtype())) *b = cast(*b, dtype).detach();
}
void Module::to(Device device) {
  NoGradGuard off;
  for (auto& [n, p] : named_parameters()) assign_leaf(p, to_device(*p, device));
  for (auto& [n, b] : named_buffers()) *b = to_device(*b, device).detach();
}
void Module::zero_grad() {
  for (auto& [n, p] : named_parameters()) p->zero_grad();
}

ParameterSwap::ParameterSwap(Module& m, const NamedTensors& values) {
  for (auto& [name, slot] : m.named_parameters()) {
    auto it = values.find(name);
    if (it == values.end()) continue;
    if (!(it->second.shape() == slot->shape()) || it->second.dtype() != slot->dtype())
      fail<ShapeError>("functional_call: parameter ", name, " expects ", describe(*slot), ", got ",
                       describe(it->second));
    saved_.emplace_back(slot, *slot);
    *slot = it->second;
  }
  if (saved_.size() != values.size()) {
    std::string unknown;
    auto named = m.named_parameters();
    for (auto& [name, v] : values) {
      bool found = false;
      for (auto& [n, s] : named) found |= n == name;
      if (!found) unknown += " " + name;
    }
    for (auto& [slot, old] : saved_) *slot = old;
    fail<ValueError>("functional_call: unknown parameters:", unknown);
  }
}
ParameterSwap::~ParameterSwap() {
  for (auto& [slot, old] : saved_) *slot = old;
}

}  // namespace sg::nn
