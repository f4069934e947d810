// Optimizers and training utilities: the Optimizer base over named parameter slots, SGD
// (momentum, Nesterov, weight decay), Adam, AdamW; global gradient-norm clipping; a warm-up +
// cosine learning-rate schedule; an exponential moving average (EMA) of parameters; and the
// export/import of all their state as NamedTensors so that a checkpoint resumes bit-identically.
//
//   sg::nn::Adam opt(net.named_parameters(), {.lr = 1e-3});
//   sg::nn::Ema ema(net, 0.999);
//   sg::nn::WarmupCosine sched{.base_lr = 1e-3, .min_lr = 1e-5, .warmup_steps = 100, .total_steps =
//   10000}; for (int64_t s = 0; s < 10000; ++s) {
//     auto grads = sg::grad(loss(net, batch()), net.parameters());
//     sg::nn::clip_grad_norm(grads, 1.0);
//     opt.set_lr(sched.lr(s));
//     opt.step(grads);
//     ema.update();
//   }
//
// Parameters are replaced, never written in place: each step assigns a new leaf to every slot
// that received a gradient (`*slot = new_value.detach().requires_grad_()` under NoGradGuard).
// A consequence: the new leaf has no `.grad()`, so `step()` also clears the gradients it used.
// Slots point into their Module (or wherever the caller keeps them), which must outlive the
// optimizer / EMA.
//
// State names (all in one flat NamedTensors map, see Optimizer::state and Ema::state):
//   optim.step                 int64 []   number of step() calls
//   optim.lr                   float64 [] the learning rate in effect
//   optim.sgd.momentum.<param> like the parameter (only once created, i.e. after the first step)
//   optim.adam.m.<param>       like the parameter (first moment)
//   optim.adam.v.<param>       like the parameter (second moment)
//   optim.adam.step.<param>    int64 []   steps this parameter took (bias correction)
//   ema.num_updates            int64 []
//   ema.shadow.<param>         like the parameter
// Hyper-parameters other than the learning rate (betas, eps, momentum, weight decay, decay)
// are configuration, not state: construct the resumed objects with the same options.
//
// Devices: per-parameter state (SGD momentum, Adam m and v, EMA shadows) lives on its
// parameter's device; counters (optim.step, optim.adam.step.*, ema.num_updates) and optim.lr
// are host scalars. State created before a Module::to move follows its parameter at the next
// step() / update() (and apply_to / swap put the shadow on the module's device), so building
// the optimizer before or after the move gives the same run. load_state puts loaded state on
// the parameters' current devices, whatever device it was saved from: a checkpoint written on
// one device loads on another (nn/checkpoint.hpp). Gradients must be on their parameter's
// device (DeviceError naming the parameter and both devices).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "autodiff/core/tensor.hpp"
#include "nn/module.hpp"

namespace sg::nn {

// (name, slot) pairs, as returned by Module::named_parameters().
using ParamSlots = std::vector<std::pair<std::string, Tensor*>>;

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One gradient per slot, in slot order; an undefined Tensor skips that parameter (its
  // state is left untouched). Shapes and dtypes must match the parameters exactly. Everything
  // is checked before any parameter changes. Throws GradError when no gradient is defined.
  void step(const std::vector<Tensor>& grads);
  // Uses each slot's accumulated `.grad()` (from backward()); slots without one are skipped.
  void step();
  void zero_grad();

  double lr() const { return lr_; }
  void set_lr(double lr);  // takes effect from the next step; must be finite and >= 0
  int64_t steps() const { return steps_; }  // number of step() calls so far
  const ParamSlots& slots() const { return slots_; }
  const std::string& name() const { return name_; }

  // All state under the names listed at the top of this file (tensors are shared, not copied;
  // nothing here is ever modified in place).
  NamedTensors state() const;
  // Throws ValueError listing every unknown name, missing required entry ("optim.step",
  // "optim.lr") and shape/dtype mismatch; changes nothing.
  void check_state(const NamedTensors& state) const;
  // check_state, then replaces all state (entries absent from `state` become "not created").
  void load_state(const NamedTensors& state);

 protected:
  // A per-parameter state buffer: shaped like the parameter, or an int64 scalar counter.
  struct BufferSpec {
    const char* name;
    bool counter;
  };
  Optimizer(std::string name, std::string kind, ParamSlots slots, double lr);
  virtual std::vector<BufferSpec> buffer_specs() const = 0;
  // The new value of parameter i from its value p and gradient g (both detached, checked;
  // recording is off). Reads and replaces buffers through buffer(i, name).
  virtual Tensor update(std::size_t i, const Tensor& p, const Tensor& g) = 0;
  Tensor& buffer(std::size_t i, const std::string& name) { return state_[i][name]; }

 private:
  // Moves parameter i's buffers (not its host counters) to `device`, where they are not.
  void follow_device(std::size_t i, Device device);
  std::string name_;  // for messages: "SGD", "Adam", "AdamW"
  std::string kind_;  // state-name component: "sgd", "adam"
  ParamSlots slots_;
  double lr_;
  int64_t steps_ = 0;
  std::vector<NamedTensors> state_;  // per slot: buffer name -> tensor (absent until created)
};

struct SGDOptions {
  double lr = 1e-2;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;  // L2: added to the gradient
  bool nesterov = false;    // needs momentum > 0 and dampening == 0
};
// As torch.optim.SGD:
//   g = g + wd*p
//   b = g (first step), b = momentum*b + (1 - dampening)*g (later steps)
//   d = g + momentum*b (Nesterov) or d = b (classical); without momentum d = g
//   p = p - lr*d
class SGD : public Optimizer {
 public:
  SGD(ParamSlots slots, SGDOptions opts = {});
  const SGDOptions& options() const { return opts_; }

 protected:
  std::vector<BufferSpec> buffer_specs() const override;
  Tensor update(std::size_t i, const Tensor& p, const Tensor& g) override;

 private:
  SGDOptions opts_;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;  // Adam: L2 added to the gradient; AdamW: decoupled (see AdamW)
};
// As torch.optim.Adam (t = this parameter's step count, starting at 1):
//   g = g + wd*p                                   (Adam only, L2 regularisation)
//   m = beta1*m + (1 - beta1)*g,  v = beta2*v + (1 - beta2)*g^2   (m, v start at 0)
//   p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
class Adam : public Optimizer {
 public:
  Adam(ParamSlots slots, AdamOptions opts = {});
  const AdamOptions& options() const { return opts_; }

 protected:
  Adam(std::string name, ParamSlots slots, AdamOptions opts, bool decoupled);
  std::vector<BufferSpec> buffer_specs() const override;
  Tensor update(std::size_t i, const Tensor& p, const Tensor& g) override;

 private:
  AdamOptions opts_;
  bool decoupled_;
};
// AdamW (Loshchilov & Hutter), as torch.optim.AdamW: decay applied to the parameter, not the
// gradient, then the Adam step with no L2 term:
//   p = p * (1 - lr*wd),  then as Adam.
// Default weight_decay 1e-2 as PyTorch. Its state names are Adam's ("optim.adam.*").
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
};
class AdamW : public Adam {
 public:
  AdamW(ParamSlots slots, AdamWOptions opts = {});
};

// Global L2 norm clipping over all gradients (undefined entries are skipped), as
// torch.nn.utils.clip_grad_norm_. Returns the norm before clipping, computed in float64:
//   norm = sqrt(sum_i sum(g_i^2))
// and only when norm > max_norm replaces every gradient by
//   g_i = g_i * (max_norm / (norm + eps))        (eps = 1e-6 as PyTorch, so the clipped norm
//                                                  is a hair below max_norm)
// in the gradient's own dtype. A NaN/Inf norm throws ValueError unless error_if_nonfinite is
// false (then nothing is scaled and the non-finite norm is returned, e.g. to skip the step).
double clip_grad_norm(std::vector<Tensor>& grads, double max_norm, double eps = 1e-6,
                      bool error_if_nonfinite = true);
// The same on the slots' accumulated `.grad()`s (replaced via set_grad).
double clip_grad_norm(const ParamSlots& slots, double max_norm, double eps = 1e-6,
                      bool error_if_nonfinite = true);

// Linear warm-up then cosine decay to a floor; `step` counts from 0 (the step about to run):
//   step < warmup:            lr = base_lr * (step + 1) / warmup_steps
//   warmup <= step < total:   lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * (step - warmup) /
//   (total - warmup))) / 2 step >= total:            lr = min_lr
// so the first step already moves, base_lr is reached at step warmup - 1 and kept at step
// warmup, and min_lr is reached at step total. ValueError on negative steps or inconsistent
// fields (warmup_steps > total_steps, min_lr > base_lr, negative rates).
struct WarmupCosine {
  double base_lr = 1e-3;
  double min_lr = 0;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double lr(int64_t step) const;
};

// Exponential moving average of parameters (a shadow copy per parameter, same dtype):
//   shadow = d * shadow + (1 - d) * param       (computed in that order, elementwise)
// starting from a copy of the parameters at construction, with d = decay, or with warm-up
// d = min(decay, (1 + n) / (10 + n)) after n updates (as TensorFlow's num_updates), so that a
// short run's average is not dominated by the initial weights.
class Ema {
 public:
  Ema(Module& module, double decay, bool warmup = false);
  Ema(ParamSlots slots, double decay, bool warmup = false);

  void update();  // one averaging step from the current slot values
  // Copies the shadow into `module`'s parameters (new leaves; requires_grad kept). The
  // module's parameter names, shapes and dtypes must match the shadow's exactly (ValueError
  // listing every difference otherwise).
  void apply_to(Module& module) const;
  // Exchanges `module`'s parameters with the shadow (same checks as apply_to): call once to
  // evaluate with averaged weights, once more to go back. Do not update() while swapped.
  void swap(Module& module);

  double decay() const { return decay_; }
  double next_decay() const;  // the d the next update() uses
  int64_t num_updates() const { return num_updates_; }
  const NamedTensors& shadow() const { return shadow_; }

  NamedTensors state() const;  // "ema.num_updates", "ema.shadow.<param>"
  // Every shadow must be present with the right shape and dtype, nothing else (ValueError
  // listing every problem); check_state changes nothing.
  void check_state(const NamedTensors& state) const;
  void load_state(const NamedTensors& state);

 private:
  void check_module(Module& module, const char* op) const;
  ParamSlots slots_;
  NamedTensors shadow_;
  double decay_;
  bool warmup_ = false;
  int64_t num_updates_ = 0;
};

}  // namespace sg::nn
