// One op-table row: a primitive's shape rule, forward, VJP and JVP side by side. The rules are
// written in differentiable Tensor ops, so derivatives of any order come from the same rows.
// The engine (tape/tape.cpp) handles what is common to all rows: recording, reducing a
// cotangent to its input's broadcast shape, summing JVP contributions, skipping zeros.
#pragma once
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "autodiff/backend/backend.hpp"
#include "autodiff/core/tensor.hpp"
#include "autodiff/ops/op_list.hpp"

namespace sg {

// The derivative rule of a `custom` op, supplied by the caller (see custom_op in ops.hpp).
struct CustomRule {
  virtual ~CustomRule() = default;
  virtual std::string name() const = 0;
  // Cotangents of every input given the output's cotangent (undefined entries are zero).
  // The engine asks input by input; it calls vjp() once per application and cotangent and
  // hands the inputs their entries (RuleCtx::scratch holds them, never the rule: a rule may be
  // shared, differentiated again, or used from another thread).
  virtual std::vector<Tensor> vjp(std::span<const Tensor> inputs, const Tensor& out,
                                  const Tensor& cot) const = 0;
};

// Static arguments of an op (which fields mean what is documented in each op's block).
struct Attrs {
  Shape a, b, c;  // axes / target shape / permutation / slice or pad extents
  double scalar = 0;
  int64_t axis = 0;
  bool keepdim = false;
  DType dtype = DType::f32;
  uint8_t kind = 0;  // BinaryOp of `compare`
  Device device;
  std::shared_ptr<const CustomRule> custom;  // `custom`: the rule
  Tensor value;                              // `custom`: the precomputed output
};

// What the shape rule decides before any kernel runs.
struct Meta {
  Shape shape;
  DType dtype = DType::f32;
  Device device;
};

// The view a rule gets of one recorded application: inputs, output and attributes. `scratch`
// lives exactly as long as one application's VJPs (or JVPs) for one cotangent (tangent): a
// rule that computes every input's share at once (custom) keeps them there.
struct RuleCtx {
  std::span<const Tensor> in;
  const Tensor& out;
  const Attrs& attrs;
  std::vector<Tensor>* scratch = nullptr;
};

using ShapeRule = Meta (*)(std::span<const Tensor> in, const Attrs& attrs);
using ForwardFn = Tensor (*)(std::span<const Tensor> in, const Attrs& attrs, const Meta& meta);
// Cotangent (or tangent) contribution of input i. A VJP may return a tensor in the output's
// broadcast shape: the engine sums it down to input i's shape.
using VjpFn = Tensor (*)(const RuleCtx& c, int i, const Tensor& cotangent);
// Contribution of input i's tangent to the output tangent (the engine adds them up).
using JvpFn = Tensor (*)(const RuleCtx& c, int i, const Tensor& tangent);

struct OpDef {
  OpId id;
  const char* name;
  int arity;  // -1: any number of inputs
  ShapeRule shape;
  ForwardFn forward;
  VjpFn vjp;  // nullptr: the output is not differentiable (comparisons, integer casts)
  JvpFn jvp;
  // Inputs that never carry gradients (indices, conditions), as a bit mask.
  uint32_t nondiff_inputs = 0;
};

const OpDef& op_def(OpId id);

// Runs a primitive: shape rule, forward, then records it on this thread's tape when an input
// requires grad, and propagates forward-mode tangents when a jvp level is active.
Tensor apply(OpId id, std::span<const Tensor> in, const Attrs& attrs = {});
inline Tensor apply(OpId id, std::initializer_list<Tensor> in, const Attrs& attrs = {}) {
  return apply(id, std::span<const Tensor>(in.begin(), in.size()), attrs);
}

// Helpers for forward functions.
KView kview(const Tensor& t);
KView kview_broadcast(const Tensor& t, const Shape& to);
Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset);
Backend& backend_of(const Tensor& t);
// Checks that all inputs share a device and (when `same_dtype`) a dtype; names `op`.
void check_same_device(const char* op, std::span<const Tensor> in);
void check_same_dtype(const char* op, std::span<const Tensor> in);
void check_floating(const char* op, const Tensor& t);
// Type promotion for the 2-byte dtypes: when floating tensors of different dtypes meet and one of
// them is bfloat16 or float16, each is cast to the widest of them (float32 for bfloat16 with
// float16), as in PyTorch. Any other mix is returned unchanged (and refused by the op).
std::vector<Tensor> promote_halves(std::span<const Tensor> in);

}  // namespace sg
