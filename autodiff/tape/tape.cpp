// The engine: apply() runs a primitive and records it; the reverse loop computes VJPs; dual
// levels propagate JVPs. Everything common to all op rows lives here and only here:
// cotangent reduction to broadcast input shapes, zero (missing) cotangents and tangents,
// skipping inputs that need no gradient, anomaly checks.
#include "autodiff/tape/tape.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"
#include "autodiff/tape/forward.hpp"

namespace sg {

// ---- thread-local state --------------------------------------------------------------------
namespace detail {
bool& grad_enabled_flag() {
  thread_local bool on = true;
  return on;
}
bool& anomaly_flag() {
  thread_local bool on = false;
  return on;
}
void on_external_zero(TensorImpl* t) { t->tape->on_external_zero(t); }
void on_external_one(TensorImpl* t) { t->tape->on_external_one(t); }
}  // namespace detail

Tape& current_tape() {
  thread_local Tape tape;
  return tape;
}
bool grad_enabled() { return detail::grad_enabled_flag(); }
NoGradGuard::NoGradGuard() : prev_(detail::grad_enabled_flag()) {
  detail::grad_enabled_flag() = false;
}
NoGradGuard::~NoGradGuard() { detail::grad_enabled_flag() = prev_; }
EnableGradGuard::EnableGradGuard() : prev_(detail::grad_enabled_flag()) {
  detail::grad_enabled_flag() = true;
}
EnableGradGuard::~EnableGradGuard() { detail::grad_enabled_flag() = prev_; }
AnomalyGuard::AnomalyGuard(bool on) : prev_(detail::anomaly_flag()) { detail::anomaly_flag() = on; }
AnomalyGuard::~AnomalyGuard() { detail::anomaly_flag() = prev_; }
Scope::Scope() : start_(current_tape().size()) { current_tape().push_scope(&start_); }
Scope::~Scope() {
  Tape& tape = current_tape();
  tape.pop_scope(&start_);
  tape.truncate(start_);
}
std::size_t debug::tape_size() { return current_tape().size(); }
std::size_t debug::collect_tape() { return current_tape().collect(); }
namespace {
std::size_t& vjp_rule_counter() {
  thread_local std::size_t n = 0;
  return n;
}
}  // namespace
std::size_t debug::vjp_rule_calls() { return vjp_rule_counter(); }
namespace {
std::size_t& swept_counter() {
  thread_local std::size_t n = 0;
  return n;
}
}  // namespace
std::size_t debug::reverse_sweep_nodes() { return swept_counter(); }

// ---- tape ------------------------------------------------------------------------------------
Tape::~Tape() { truncate(0); }

void Tape::record(OpId op, std::span<const Tensor> in, const Attrs& attrs, const Tensor& out) {
  Node& n = nodes_.emplace_back();
  n.op = op;
  n.serial = next_serial_++;
  for (const Tensor& t : in) n.inputs.push_back(t.ref());
  n.out = out.ref();
  n.attrs = attrs;
  n.ext_live = 1;  // `out` is the single handle apply() holds
  const auto index = static_cast<uint32_t>(nodes_.size() - 1);
  n.reach_lo = index;
  for (const Tensor& t : in) {
    if (!is_live(t.impl())) continue;
    Node& producer = nodes_[t.impl()->node];
    ++producer.int_uses;
    n.reach_lo = std::min(n.reach_lo, producer.reach_lo);
  }
  TensorImpl* o = out.impl();
  o->tape = this;
  o->node = index;
  o->serial = n.serial;
  o->ext_refs = 1;
  if (nodes_.size() >= collect_at_ && pins_ == 0 && !releasing_) {
    collect();
    collect_at_ = std::max(kMinCollect, 2 * nodes_.size());
  }
}

void Tape::pop_scope(std::size_t* start) {
  auto it = std::find(scopes_.rbegin(), scopes_.rend(), start);
  if (it != scopes_.rend()) scopes_.erase(std::next(it).base());
}

void Tape::retire(std::size_t k) {
  if (k >= nodes_.size() || nodes_[k].dead) return;
  Node& n = nodes_[k];
  for (const TensorRef& x : n.inputs) {
    if (!is_live(x.get())) continue;
    Node& producer = nodes_[x->node];
    if (--producer.int_uses == 0 && producer.ext_live == 0) dying_.push_back(x->node);
  }
  n.out->tape = nullptr;  // if anything still holds it, it is a constant now
  Node gone = std::move(n);
  n = Node();
  n.dead = true;  // serial 0: matches no tensor
}  // `gone` releases its references here; handles dropped meanwhile only queue in dying_

void Tape::release_dying() {
  if (releasing_) return;  // the loop below picks up what was queued
  releasing_ = true;
  while (!dying_.empty()) {
    const std::size_t k = dying_.back();
    dying_.pop_back();
    retire(k);
  }
  while (!nodes_.empty() && nodes_.back().dead) nodes_.pop_back();
  releasing_ = false;
}

std::size_t Tape::collect() {
  if (pins_ > 0 || releasing_) return 0;
  const std::size_t n = nodes_.size();
  // Close the gaps in creation order; old index -> new index for reach_lo and the scopes.
  std::vector<uint32_t> renumber(n + 1, 0);
  std::size_t j = 0;
  for (std::size_t i = 0; i < n; ++i) {
    renumber[i] = static_cast<uint32_t>(j);
    if (nodes_[i].dead) continue;
    if (j != i) nodes_[j] = std::move(nodes_[i]);
    Node& kept = nodes_[j];
    kept.out->node = static_cast<uint32_t>(j);
    kept.reach_lo = renumber[kept.reach_lo];  // an ancestor: below, so already renumbered
    ++j;
  }
  renumber[n] = static_cast<uint32_t>(j);
  for (std::size_t* start : scopes_) *start = renumber[std::min(*start, n)];
  while (nodes_.size() > j) nodes_.pop_back();  // moved-from slots and tombstones hold nothing
  nodes_.shrink_chunks();
  return n - j;
}

void Tape::on_external_one(TensorImpl* t) {
  if (is_live(t)) ++nodes_[t->node].ext_live;
}
void Tape::on_external_zero(TensorImpl* t) {
  if (!is_live(t)) return;
  Node& n = nodes_[t->node];
  if (--n.ext_live == 0 && n.int_uses == 0) {
    dying_.push_back(t->node);
    release_dying();
  }
}
void Tape::truncate(std::size_t n) {
  const bool outer = !releasing_;
  releasing_ = true;
  while (nodes_.size() > n) {
    retire(nodes_.size() - 1);  // an escaped tensor becomes a constant
    nodes_.pop_back();
  }
  if (outer) {
    releasing_ = false;
    release_dying();
  }
}

bool is_tracked(const TensorImpl* t) {
  if (t->requires_grad) return true;
  if (!t->tape) return false;
  Tape& tape = current_tape();
  if (t->tape != &tape)
    fail<GradError>(
        "a tensor recorded on another thread's tape was used here; tapes are "
        "thread-local (detach() it, or differentiate on the thread that made it)");
  return tape.is_live(t);
}

// ---- forward-mode levels -------------------------------------------------------------------
namespace {
struct LevelState {
  uint64_t id;
  std::vector<TensorRef> touched;
};
struct FwdState {
  std::vector<LevelState> levels;
  int visible = 0;  // levels [0, visible) propagate; rules of level L run with visible = L
  uint64_t next_id = 1;
};
FwdState& fwd() {
  thread_local FwdState s;
  return s;
}
const Tensor* tangent_at(const TensorImpl* t, uint64_t level) {
  for (const LevelTangent& lt : t->tangents)
    if (lt.level == level) return &lt.tangent;
  return nullptr;
}
struct VisibleGuard {
  int prev;
  explicit VisibleGuard(int v) : prev(fwd().visible) { fwd().visible = v; }
  ~VisibleGuard() { fwd().visible = prev; }
};

void check_finite(const OpDef& d, const Tensor& t, std::span<const Tensor> in, const char* phase) {
  if (!t.defined() || !is_floating(t.dtype())) return;
  std::vector<double> values;
  {
    AnomalyGuard off(false);  // reading the values runs ops too
    NoGradGuard no_record;
    values = t.to_vector();
  }
  for (double v : values) {
    if (!std::isfinite(v)) {
      std::string shapes;
      for (const Tensor& x : in) shapes += (shapes.empty() ? "" : ", ") + describe(x);
      fail<AnomalyError>("anomaly: ", phase, " of ", d.name, " produced ",
                         std::isnan(v) ? "NaN" : "Inf", " (inputs: ", shapes, ")");
    }
  }
}

void propagate_tangents(const OpDef& d, std::span<const Tensor> in, const Attrs& attrs,
                        const Tensor& out) {
  FwdState& s = fwd();
  const int nvis = s.visible;
  for (int L = 0; L < nvis; ++L) {
    const uint64_t id = s.levels[L].id;
    bool any = false;
    for (std::size_t j = 0; j < in.size(); ++j) any |= tangent_at(in[j].impl(), id) != nullptr;
    if (!any || !d.jvp) continue;
    Tensor acc;
    {
      VisibleGuard mask(L);
      const bool anomaly = detail::anomaly_flag();
      AnomalyGuard rule_ops(false);  // the rule's result is checked below, under this op's name
      std::vector<Tensor> scratch;
      RuleCtx ctx{in, out, attrs, &scratch};
      for (std::size_t j = 0; j < in.size(); ++j) {
        if (d.nondiff_inputs >> j & 1u) continue;
        const Tensor* t = tangent_at(in[j].impl(), id);
        if (!t) continue;
        Tensor c = d.jvp(ctx, static_cast<int>(j), *t);
        if (!c.defined()) continue;
        acc = acc.defined() ? acc + c : c;
      }
      if (!acc.defined()) continue;
      if (!(acc.shape() == out.shape())) acc = expand(acc, out.shape());
      if (anomaly) check_finite(d, acc, in, "jvp");
    }
    out.impl()->tangents.push_back({id, acc});
    s.levels[L].touched.push_back(out.ref());
  }
}
}  // namespace

DualLevel::DualLevel() {
  FwdState& s = fwd();
  if (s.visible != static_cast<int>(s.levels.size()))
    fail<GradError>("DualLevel: a level cannot be opened inside a JVP rule");
  id_ = s.next_id++;
  s.levels.push_back({id_, {}});
  s.visible = static_cast<int>(s.levels.size());
}
DualLevel::~DualLevel() {
  FwdState& s = fwd();
  LevelState lvl = std::move(s.levels.back());
  s.levels.pop_back();
  s.visible = static_cast<int>(s.levels.size());
  for (TensorRef& r : lvl.touched) {
    auto& ts = r->tangents;
    SmallVec<LevelTangent, 1> keep;
    for (LevelTangent& lt : ts)
      if (lt.level != id_) keep.push_back(std::move(lt));
    ts = std::move(keep);
  }
}
Tensor DualLevel::make_dual(const Tensor& primal, const Tensor& tangent) const {
  if (!(primal.shape() == tangent.shape()) || primal.dtype() != tangent.dtype())
    fail<ShapeError>("make_dual: primal ", describe(primal), " and tangent ", describe(tangent),
                     " must have the same shape and dtype");
  if (!(primal.device() == tangent.device()))
    fail<DeviceError>("make_dual: primal ", describe(primal), " on ", device_name(primal.device()),
                      " and tangent ", describe(tangent), " on ", device_name(tangent.device()),
                      " must be on the same device");
  Tensor d = apply(OpId::reshape, {primal}, Attrs{.a = primal.shape()});  // a recorded alias
  d.impl()->tangents.push_back({id_, tangent});
  fwd().levels.back().touched.push_back(d.ref());
  return d;
}
bool DualLevel::has_tangent(const Tensor& t) const { return tangent_at(t.impl(), id_) != nullptr; }
Tensor DualLevel::tangent(const Tensor& t) const {
  const Tensor* tt = tangent_at(t.impl(), id_);
  return tt ? *tt : zeros_like(t);
}

// ---- apply -----------------------------------------------------------------------------------
Tensor apply(OpId id, std::span<const Tensor> in, const Attrs& attrs) {
  const OpDef& d = op_def(id);
  if (d.arity >= 0 && static_cast<int>(in.size()) != d.arity)
    fail<ValueError>(d.name, ": expected ", d.arity, " inputs, got ", in.size());
  for (std::size_t i = 0; i < in.size(); ++i)
    if (!in[i].defined()) fail<ValueError>(d.name, ": input ", i, " is an undefined tensor");
  const Meta meta = d.shape(in, attrs);
  checked_numel(meta.shape, d.name, itemsize(meta.dtype));  // every output's size is countable
  Tensor out = d.forward(in, attrs, meta);
  if (detail::anomaly_flag()) check_finite(d, out, in, "forward");
  if (d.vjp && detail::grad_enabled_flag()) {
    bool any = false;
    for (std::size_t i = 0; i < in.size() && !any; ++i)
      any = !(d.nondiff_inputs >> i & 1u) && is_tracked(in[i].impl());
    if (any) current_tape().record(id, in, attrs, out);
  }
  if (fwd().visible > 0) propagate_tangents(d, in, attrs, out);
  return out;
}

// ---- reverse mode ----------------------------------------------------------------------------
namespace {
struct LeafGrads {
  std::vector<std::pair<TensorImpl*, Tensor>> items;
  Tensor* find(TensorImpl* t) {
    for (auto& [k, v] : items)
      if (k == t) return &v;
    return nullptr;
  }
  void add(TensorImpl* t, Tensor g) {
    if (Tensor* v = find(t)) {
      *v = *v + g;
    } else {
      items.emplace_back(t, std::move(g));
    }
  }
};

struct BackwardResult {
  std::size_t lo = 0;       // first node the pass looked at
  std::vector<Tensor> cot;  // by node index - lo (kept only for requested non-leaf inputs)
  LeafGrads leaves;
  Tensor* node_cot(const Tape& tape, const TensorImpl* t) {
    if (!tape.is_live(t) || t->node < lo || t->node - lo >= cot.size()) return nullptr;
    return &cot[t->node - lo];
  }
};

// `requested`: the inputs of grad(), or null for backward() (every leaf requiring grad).
BackwardResult run_backward(const std::vector<Tensor>& outputs,
                            const std::vector<Tensor>& cotangents,
                            const std::vector<Tensor>* requested, bool create_graph,
                            bool allow_unused, bool partial = false) {
  Tape& tape = current_tape();
  if (!cotangents.empty() && cotangents.size() != outputs.size())
    fail<GradError>("grad: ", outputs.size(), " outputs but ", cotangents.size(), " cotangents");
  BackwardResult r;
  std::size_t hi = 0;
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    const Tensor& y = outputs[k];
    if (!y.defined()) fail<GradError>("grad: output ", k, " is undefined");
    if (cotangents.empty() || !cotangents[k].defined()) {
      if (y.numel() != 1)
        fail<GradError>("grad: output ", k, " (", describe(y),
                        ") is not a scalar; pass a cotangent of its shape");
    } else if (!(cotangents[k].shape() == y.shape()) || cotangents[k].dtype() != y.dtype()) {
      fail<GradError>("grad: cotangent ", describe(cotangents[k]), " does not match output ", k,
                      " (", describe(y), ")");
    } else if (!(cotangents[k].device() == y.device())) {
      fail<DeviceError>("grad: cotangent ", describe(cotangents[k]), " on ",
                        device_name(cotangents[k].device()), " for output ", k, " (", describe(y),
                        ") on ", device_name(y.device()));
    }
    if (tape.is_live(y.impl())) hi = std::max<std::size_t>(hi, y.impl()->node + 1);
  }
  // Nothing below the lowest node in the outputs' histories can receive a cotangent.
  std::size_t reach_lo = hi;
  for (const Tensor& y : outputs)
    if (tape.is_live(y.impl()))
      reach_lo = std::min<std::size_t>(reach_lo, tape.node(y.impl()->node).reach_lo);
  r.lo = reach_lo;

  // Pruning: a VJP is computed only into an input that is, or depends on, a requested input
  // (so nothing is propagated past requested inputs, nor into unrequested weights). `dep[i -
  // lo]` marks node i's output as such; one forward sweep sets it. Without requested inputs
  // (backward()) every tracked input qualifies and no sweep is made.
  std::vector<const TensorImpl*> req_leaves;  // sorted
  std::vector<char> dep;
  std::vector<char> keep;  // requested non-leaf inputs: their cotangents are returned
  if (requested) {
    std::size_t first = hi;
    for (const Tensor& x : *requested) {
      if (!x.defined()) continue;
      const TensorImpl* t = x.impl();
      if (tape.is_live(t)) {
        if (t->node < hi) first = std::min<std::size_t>(first, t->node);
      } else if (t->requires_grad) {
        req_leaves.push_back(t);
        first = 0;  // a leaf may feed any node of the outputs' histories
      }
    }
    std::sort(req_leaves.begin(), req_leaves.end());
    r.lo = std::max(reach_lo, first);
    const std::size_t lo = r.lo;
    dep.assign(hi - lo, 0);
    keep.assign(hi - lo, 0);
    for (const Tensor& x : *requested)
      if (x.defined() && tape.is_live(x.impl()) && x.impl()->node < hi && x.impl()->node >= lo)
        dep[x.impl()->node - lo] = keep[x.impl()->node - lo] = 1;
    for (std::size_t i = lo; i < hi; ++i) {
      if (dep[i - lo]) continue;
      const Node& n = tape.node(static_cast<uint32_t>(i));
      const uint32_t nondiff = op_def(n.op).nondiff_inputs;
      for (std::size_t j = 0; j < n.inputs.size() && !dep[i - lo]; ++j) {
        if (nondiff >> j & 1u) continue;
        const TensorImpl* t = n.inputs[j].get();
        if (tape.is_live(t)) {
          dep[i - lo] = t->node >= lo && dep[t->node - lo];
        } else {
          dep[i - lo] =
              t->requires_grad && std::binary_search(req_leaves.begin(), req_leaves.end(), t);
        }
      }
    }
  }
  // Whether the reverse pass must compute a VJP into `t` (an input of a node it reaches).
  auto wanted = [&](const TensorImpl* t) {
    if (!requested) return is_tracked(t);
    if (tape.is_live(t)) return t->node >= r.lo && dep[t->node - r.lo] != 0;
    return t->requires_grad && std::binary_search(req_leaves.begin(), req_leaves.end(), t);
  };

  std::optional<NoGradGuard> no_grad;
  std::optional<EnableGradGuard> with_grad;
  if (create_graph) {
    with_grad.emplace();
  } else {
    no_grad.emplace();
  }
  const std::size_t lo = r.lo;
  r.cot.resize(hi - lo);
  swept_counter() += hi - lo;

  auto accumulate = [&](TensorImpl* t, Tensor g) {
    if (tape.is_live(t)) {
      if (t->node < lo) return;  // below every requested input: not needed
      Tensor& c = r.cot[t->node - lo];
      c = c.defined() ? c + g : std::move(g);
    } else if (t->requires_grad) {
      r.leaves.add(t, std::move(g));
    }
  };
  bool any_tracked = false;
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    const Tensor& y = outputs[k];
    if (!is_tracked(y.impl())) continue;
    any_tracked = true;
    Tensor seed = cotangents.empty() || !cotangents[k].defined() ? ones_like(y) : cotangents[k];
    accumulate(y.impl(), seed);
  }
  if (!any_tracked && !allow_unused)
    fail<GradError>("grad: no output depends on a tensor that requires grad");

  std::vector<Tensor> ins;  // contiguous: rules see the inputs as a span
  const bool anomaly = detail::anomaly_flag();
  AnomalyGuard rule_ops(false);  // each rule's result is checked below, under its op's name
  for (std::size_t i = hi; i-- > lo;) {
    if (!r.cot[i - lo].defined()) continue;
    if (requested && !dep[i - lo]) continue;  // cannot lead to a requested input
    if (partial && keep[i - lo]) continue;    // a requested input: its history is not traversed
    Tensor ct = requested && keep[i - lo] ? r.cot[i - lo] : std::move(r.cot[i - lo]);
    Node& n = tape.node(static_cast<uint32_t>(i));
    if (n.dead) continue;
    const OpDef& d = op_def(n.op);
    ins.clear();
    for (const TensorRef& x : n.inputs) ins.push_back(Tensor(x));
    const Tensor out(n.out);
    const std::span<const Tensor> in_span(ins);
    std::vector<Tensor> scratch;  // this application's shares for this cotangent
    RuleCtx ctx{in_span, out, n.attrs, &scratch};
    for (std::size_t j = 0; j < ins.size(); ++j) {
      if (d.nondiff_inputs >> j & 1u) continue;
      if (!wanted(ins[j].impl())) continue;
      ++vjp_rule_counter();
      Tensor g = d.vjp(ctx, static_cast<int>(j), ct);
      if (!g.defined()) continue;
      if (!(g.shape() == ins[j].shape())) g = sum_to(g, ins[j].shape());
      if (anomaly) check_finite(d, g, in_span, "backward");
      accumulate(ins[j].impl(), std::move(g));
    }
  }
  return r;
}
}  // namespace

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& cotangents, GradOptions opts) {
  Tape& tape = current_tape();
  const TapePin pin(tape);  // node indices stay valid until the results are read
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    if (!inputs[k].defined()) fail<GradError>("grad: input ", k, " is undefined");
    if (!is_tracked(inputs[k].impl()) && !opts.allow_unused)
      fail<GradError>(
          "grad: input ", k, " (", describe(inputs[k]),
          ") does not require grad; call requires_grad_() on it before computing the output");
  }
  BackwardResult r = run_backward(outputs, cotangents, &inputs, opts.create_graph,
                                  opts.allow_unused, opts.partial);
  std::vector<Tensor> result;
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    TensorImpl* t = inputs[k].impl();
    Tensor g;
    if (Tensor* c = r.node_cot(tape, t)) {
      g = *c;
    } else if (Tensor* lg = r.leaves.find(t)) {
      g = *lg;
    }
    if (!g.defined()) {
      if (!opts.allow_unused)
        fail<GradError>("grad: input ", k, " (", describe(inputs[k]),
                        ") is not on the path from the outputs; pass allow_unused for zeros");
      g = zeros_like(inputs[k]);
    }
    result.push_back(std::move(g));
  }
  return result;
}

std::vector<Tensor> grad(const Tensor& output, const std::vector<Tensor>& inputs,
                         GradOptions opts) {
  return grad(std::vector<Tensor>{output}, inputs, {}, opts);
}

void backward(const Tensor& output, const Tensor& cotangent, bool create_graph) {
  const TapePin pin(current_tape());
  BackwardResult r = run_backward({output}, {cotangent}, nullptr, create_graph, false);
  for (auto& [leaf, g] : r.leaves.items) {
    Tensor h(leaf);
    h.set_grad(h.grad().defined() ? h.grad() + g : g);
  }
}

}  // namespace sg

namespace sg::detail {
void copy_tangents(const Tensor& from, const Tensor& to) {
  FwdState& s = fwd();
  for (int L = 0; L < s.visible; ++L) {
    if (const Tensor* t = tangent_at(from.impl(), s.levels[L].id)) {
      to.impl()->tangents.push_back({s.levels[L].id, *t});
      s.levels[L].touched.push_back(to.ref());
    }
  }
}
}  // namespace sg::detail
