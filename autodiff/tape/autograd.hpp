// Reverse-mode differentiation: backward into leaves, functional gradients of any order,
// and the thread-local switches (no-grad, enable-grad, anomaly mode, scopes).
//
//   auto x = sg::randn({4, 3}, gen, sg::DType::f64).requires_grad_();
//   auto y = sg::sum(sg::tanh(x));
//   auto [g] = sg::grad(y, {x}, {.create_graph = true});   // dy/dx, itself differentiable
//   auto [h] = sg::grad(sg::sum(g), {x});                   // sum of d2y/dx2 rows
#pragma once
#include <cstddef>
#include <vector>

#include "autodiff/core/tensor.hpp"

namespace sg {

struct GradOptions {
  bool create_graph = false;  // record the backward pass so its result can be differentiated
  bool allow_unused = false;  // give zeros (instead of GradError) for inputs off the path
  // Partial derivatives: cotangents stop at the requested inputs instead of flowing on into
  // their histories (as JAX's vjp of a function of exactly these arguments). Default: total
  // derivatives, as torch.autograd.grad, where an input that depends on another adds its path.
  bool partial = false;
};

// d(outputs)/d(inputs) contracted with `cotangents` (default: ones for scalar outputs).
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& cotangents = {}, GradOptions opts = {});
std::vector<Tensor> grad(const Tensor& output, const std::vector<Tensor>& inputs,
                         GradOptions opts = {});
// Accumulates d(output)/d(leaf) into leaf.grad() for every tracked leaf output depends on.
void backward(const Tensor& output, const Tensor& cotangent = {}, bool create_graph = false);

// RAII: disable recording (e.g. optimizer updates, evaluation).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};
// RAII: enable recording inside a no-grad region.
class EnableGradGuard {
 public:
  EnableGradGuard();
  ~EnableGradGuard();
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool prev_;
};
bool grad_enabled();

// Anomaly mode: every forward and backward op checks its output for NaN/Inf and throws
// AnomalyError naming the op and its input shapes.
class AnomalyGuard {
 public:
  explicit AnomalyGuard(bool on = true);
  ~AnomalyGuard();
  AnomalyGuard(const AnomalyGuard&) = delete;
  AnomalyGuard& operator=(const AnomalyGuard&) = delete;

 private:
  bool prev_;
};

// A nested tape scope: nodes recorded inside are released on exit; tensors created inside
// that outlive it keep their values but lose their history (they become constants). An
// adjoint ODE step or an inner Hutchinson probe thus costs one step of tape memory.
class Scope {
 public:
  Scope();
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  std::size_t start_;
};

namespace debug {
std::size_t tape_size();  // nodes on this thread's tape
// Compacts this thread's tape: removes the slots of released nodes and renumbers the rest
// (the tape does this by itself whenever it has doubled); returns how many slots it removed.
std::size_t collect_tape();
// VJP rule calls made by reverse passes on this thread since it started (for tests).
std::size_t vjp_rule_calls();
// Tape nodes that reverse passes on this thread have swept (each pass: its window [lo, hi)).
std::size_t reverse_sweep_nodes();
}  // namespace debug

}  // namespace sg
