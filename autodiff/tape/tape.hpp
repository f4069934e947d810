// The tape: a flat, creation-ordered list of recorded op applications, one per thread.
//
// Lifetime without recursion: each node counts the external handles (user-held Tensors) to its
// output and the later nodes that consume it. When both reach zero it is released at once,
// and so, through a work list rather than recursion, is every node that only it kept alive;
// its slot stays as a tombstone, popped when it reaches the end. So a training loop's graph
// disappears when its loss goes out of scope, and a handle kept across iterations (`last =
// loss;`) keeps exactly its own step. When the tape has doubled since the last compaction,
// collect() closes the tombstone gaps in creation order, renumbering the survivors and the
// open Scopes; never while a reverse pass holds node indices (pin()). Each node remembers the
// lowest node in its history (`reach_lo`), where a reverse pass from it starts. A Scope
// (autograd.hpp) cuts the tape back to where it started on exit; tensors that escaped it keep
// their values and become constants. Backward is one reverse loop over the list.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

#include "autodiff/ops/op_def.hpp"

namespace sg {

struct Node {
  OpId op;
  bool dead = false;      // released: a tombstone until popped or compacted
  uint32_t ext_live = 0;  // external handles to `out`
  uint32_t int_uses = 0;  // later nodes that consume `out`
  uint32_t reach_lo = 0;  // lowest node index in this node's history (itself included)
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
  // Frees the chunks beyond the first `keep` nodes' (after a collection shrank the tape).
  void shrink_chunks() {
    const std::size_t need = (size_ + kChunk - 1) / kChunk;
    while (chunks_.size() > need + 1) {
      std::allocator<Node>().deallocate(chunks_.back(), kChunk);
      chunks_.pop_back();
    }
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

  // Removes the tombstones and renumbers the live nodes (keeping their order). Returns the
  // number of slots removed; 0 while pinned.
  std::size_t collect();
  // While pinned (a reverse pass reading node indices), collect() does nothing.
  void pin() { ++pins_; }
  void unpin() { --pins_; }
  // Open Scopes register their start index so that a collection can renumber it.
  void push_scope(std::size_t* start) { scopes_.push_back(start); }
  void pop_scope(std::size_t* start);

 private:
  // Releases node k's references and leaves a tombstone; queues inputs left unreferenced.
  void retire(std::size_t k);
  // Retires every queued node (and what they alone kept alive), then pops the dead tail.
  void release_dying();
  NodeStore nodes_;
  uint64_t next_serial_ = 1;
  bool releasing_ = false;
  std::vector<std::size_t> dying_;
  int pins_ = 0;
  std::size_t collect_at_ = kMinCollect;  // collect when the tape reaches this many nodes
  std::vector<std::size_t*> scopes_;
  static constexpr std::size_t kMinCollect = 8192;
};

// Holds the tape's node indices fixed for its lifetime (no collection).
struct TapePin {
  Tape& tape;
  explicit TapePin(Tape& t) : tape(t) { tape.pin(); }
  ~TapePin() { tape.unpin(); }
  TapePin(const TapePin&) = delete;
  TapePin& operator=(const TapePin&) = delete;
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
