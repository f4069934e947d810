// Module: named parameters (trainable leaves), buffers and child modules, with train/eval
// modes, dtype/device moves, state dicts, and a functional call with substituted parameters.
//
//   struct Net : sg::nn::Module {
//     sg::nn::Linear& fc = child("fc", std::make_unique<sg::nn::Linear>(2, 16, gen));
//     sg::Tensor operator()(const sg::Tensor& x) { return sg::silu(fc(x)); }
//   };
//   for (auto& [name, p] : net.named_parameters()) ...;   // "fc.weight", "fc.bias"
//
// Parameters are replaced, never written in place: an optimizer assigns new leaves to the
// slots (so tensors saved on the tape for an earlier gradient are never corrupted).
//
// Devices: layers create their parameters on the CPU (initialisation draws from a host
// Generator); `to(device)` then moves every parameter and buffer, recursively:
//   auto net = std::make_unique<Net>(gen);
//   net->to(sg::Device::standin());        // or sg::parse_device("cuda:0")
// Moves keep the slots: each slot (the Tensor* of named_parameters()) gets the moved tensor, a
// new leaf with the same requires_grad flag and no gradient, so an optimizer or EMA built on
// the slots before the move keeps working; their per-parameter state follows the parameters'
// device at the next step (nn/optim.hpp). Every forward pass builds its constants (masks,
// indices, frequencies) on its input's device, so inputs must be on the module's device;
// mixing devices is a DeviceError naming the op. load_state_dict copies values onto each
// slot's current device, whatever device they come from.
#pragma once
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autodiff/core/tensor.hpp"

namespace sg::nn {

using NamedTensors = std::map<std::string, Tensor>;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Recursive, in registration order, with dotted names ("blocks.0.conv.weight").
  std::vector<std::pair<std::string, Tensor*>> named_parameters();
  std::vector<std::pair<std::string, Tensor*>> named_buffers();
  std::vector<Tensor> parameters();
  int64_t num_parameters();
  // Parameters and buffers by name (detached values).
  NamedTensors state_dict();
  // Copies values in; checks every name, shape and dtype, and with `strict` that nothing is
  // missing or unexpected. The error lists every mismatch.
  void load_state_dict(const NamedTensors& state, bool strict = true);

  void train(bool on = true);
  void eval() { train(false); }
  bool training() const { return training_; }
  void to(DType dtype);    // floating parameters and buffers
  void to(Device device);  // every parameter and buffer, in place of the old (see the top)
  void zero_grad();

 protected:
  // Registration; the returned reference stays valid for the module's lifetime.
  Tensor& param(const std::string& name, Tensor init);
  Tensor& buffer(const std::string& name, Tensor init);
  template <class M>
  M& child(const std::string& name, std::unique_ptr<M> m) {
    M& ref = *m;
    children_.emplace_back(name, std::move(m));
    return ref;
  }

 private:
  void collect(const std::string& prefix, bool params,
               std::vector<std::pair<std::string, Tensor*>>& out);
  std::deque<std::pair<std::string, Tensor>> params_, buffers_;
  std::vector<std::pair<std::string, std::unique_ptr<Module>>> children_;
  bool training_ = true;
};

// A parameter slot's new value: `value` detached, with the slot's requires_grad flag kept (how
// moves, load_state_dict, optimizers and the EMA replace parameters).
void assign_leaf(Tensor* slot, const Tensor& value);

// RAII: the module's parameters replaced by `values` (by name) until destruction. Gradients
// of the module's output then flow to `values` (functional use: adjoints, research code).
class ParameterSwap {
 public:
  ParameterSwap(Module& m, const NamedTensors& values);
  ~ParameterSwap();
  ParameterSwap(const ParameterSwap&) = delete;
  ParameterSwap& operator=(const ParameterSwap&) = delete;

 private:
  std::vector<std::pair<Tensor*, Tensor>> saved_;
};
template <class F>
auto functional_call(Module& m, const NamedTensors& params, F&& f) {
  ParameterSwap swap(m, params);
  return f();
}

}  // namespace sg::nn
