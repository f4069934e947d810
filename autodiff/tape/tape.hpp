// The tape: a flat, creation-ordered list of recorded op applications, one per thread.
//
// Lifetime without recursion: a node is popped as soon as it is the last node and no external
// handle (user-held Tensor) can reach its output, so a training loop's graph disappears when
// its loss goes out of scope, in stack order. Handles held only by nodes are internal. A
// Scope (autograd.hpp) cuts the tape back to where it started on exit; tensors that escaped
// it keep their values and become constants. Backward is one reverse loop over the list.
#pragma once
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

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

// Nodes in fixed-size chunks: stable addresses while the tape grows during a backward pass,
// and no allocation per node (std::deque would allocate one chunk per node of this size).
class NodeStore {
 public:
  static constexpr std::size_t kChunk = 256;
  NodeStore() = default;
  NodeStore(const NodeStore&) = delete;
  NodeStore& operator=(const NodeStore&) = delete;
  ~NodeStore() {
    while (size_) pop_back();
    for (Node* c : chunks_) std::allocator<Node>().deallocate(c, kChunk);
  }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  Node& operator[](std::size_t i) { return chunks_[i / kChunk][i % kChunk]; }
  const Node& operator[](std::size_t i) const { return chunks_[i / kChunk][i % kChunk]; }
  Node& back() { return (*this)[size_ - 1]; }
  Node& emplace_back() {
    if (size_ == chunks_.size() * kChunk)
      chunks_.push_back(std::allocator<Node>().allocate(kChunk));
    Node* n = new (&chunks_[size_ / kChunk][size_ % kChunk]) Node();
    ++size_;
    return *n;
  }
  void pop_back() {
    --size_;
    (*this)[size_].~Node();
  }

 private:
  std::vector<Node*> chunks_;
  std::size_t size_ = 0;
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
  NodeStore nodes_;
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
