// The tape: a flat, creation-ordered list of recorded op applications, one per thread.
//
// Lifetime without recursion: a node is popped as soon as it is the last node and no external
// handle (user-held Tensor) can reach its output, so a training loop's graph disappears when
// its loss goes out of scope, in stack order. Handles held only by nodes are internal. A
// Scope (autograd.hpp) cuts the tape back to where it started on exit; tensors that escaped
// it keep their values and become constants. Backward is one reverse loop over the list.
#pragma once
#include <cstdint>
#include <deque>

#include "autodiff/ops/op_def.hpp"

namespace sg {

struct Node {
  OpId op;
  uint32_t ext_live = 0;  // external handles to `out`
  uint64_t serial = 0;
  SmallVec<TensorRef, 2> inputs;
  TensorRef out;
  Attrs attrs;
};

class Tape {
 public:
  Tape() = default;
  ~Tape();
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  // Links `out` (held by exactly one external handle) to a new node.
  void record(OpId op, std::span<const Tensor> in, const Attrs& attrs, const Tensor& out);
  bool is_live(const TensorImpl* t) const {
    return t->tape == this && t->node < nodes_.size() && nodes_[t->node].serial == t->serial;
  }
  Node& node(uint32_t i) { return nodes_[i]; }
  std::size_t size() const { return nodes_.size(); }
  // Pops nodes from the end down to `n` (scope exit), detaching tensors that escaped.
  void truncate(std::size_t n);

  void on_external_zero(TensorImpl* t);
  void on_external_one(TensorImpl* t);

 private:
  void pop_unreferenced();
  std::deque<Node> nodes_;
  uint64_t next_serial_ = 1;
  bool popping_ = false;
};

// This thread's tape.
Tape& current_tape();
// True if t takes part in differentiation: a leaf marked requires_grad, or the live output of a
// node on this thread's tape. Throws GradError for a tensor recorded on another thread.
bool is_tracked(const TensorImpl* t);

// Thread-local switches (public guards in autograd.hpp).
namespace detail {
bool& grad_enabled_flag();
bool& anomaly_flag();
}  // namespace detail

}  // namespace sg
