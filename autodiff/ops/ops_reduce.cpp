// Op table, reduction family: sum, max and min over any set of axes (attrs.a, normalised and
// sorted), with or without keeping reduced axes (attrs.keepdim); plus the composites built on
// them: mean, var, logsumexp, softmax, and the engine's sum_to.
#include <cmath>

#include "autodiff/ops/autocast.hpp"
#include "autodiff/ops/op_table.hpp"

namespace sg {
namespace {

// x's shape with every reduced axis set to 1.
Shape kept_shape(const Shape& x, const Shape& axes) {
  Shape s = x;
  for (int64_t a : axes) s[static_cast<int>(a)] = 1;
  return s;
}
Shape reduced_shape(const Shape& x, const Shape& axes, bool keepdim) {
  if (keepdim) return kept_shape(x, axes);
  Shape s;
  int j = 0;
  for (int d = 0; d < x.rank(); ++d) {
    if (j < axes.rank() && axes[j] == d) {
      ++j;
      continue;
    }
    s.push_back(x[d]);
  }
  return s;
}

template <ReduceOp K>
Meta reduce_shape(std::span<const Tensor> in, const Attrs& a) {
  const char* name = K == ReduceOp::sum ? "sum" : K == ReduceOp::max ? "max" : "min";
  if (in[0].dtype() == DType::b8)
    fail<DTypeError>(name, ": bool tensors are not numbers (", describe(in[0]), ")");
  for (int64_t ax : a.a)
    if (ax < 0 || ax >= std::max(in[0].rank(), 1)) fail<ShapeError>(name, ": bad axis ", ax);
  if (K != ReduceOp::sum)
    for (int64_t ax : a.a)
      if (in[0].rank() > 0 && in[0].shape()[static_cast<int>(ax)] == 0)
        fail<ShapeError>(name, ": cannot reduce the empty axis ", ax, " of ", describe(in[0]));
  return {reduced_shape(in[0].shape(), a.a, a.keepdim), in[0].dtype(), in[0].device()};
}
template <ReduceOp K>
Tensor reduce_fwd(std::span<const Tensor> in, const Attrs& a, const Meta& m) {
  const Tensor& x = in[0];
  Tensor out = fresh(m);
  if (out.numel() == 0) return out;
  KView o = kview(out);
  o.shape = kept_shape(x.shape(), a.a);  // same memory, x's rank
  o.strides = contiguous_strides(o.shape);
  if (x.numel() == 0) {
    backend_of(out).fill(o, 0.0);
  } else {
    backend_of(out).reduce(K, kview(x), o);
  }
  return out;
}

// The output (or a cotangent of its shape) viewed with x's rank, size 1 on reduced axes.
Tensor keep(const Tensor& y, const RuleCtx& c) {
  return c.attrs.keepdim ? y : reshape(y, kept_shape(c.in[0].shape(), c.attrs.a));
}
// Share of the cotangent each element receives from max/min: the elements equal to the result
// (its argmax) split it evenly at ties (convention). A NaN result is the NaN elements'
// (max/min propagate NaN): they take it, and every other element of that slice gets 0.
Tensor arg_weight(const RuleCtx& c) {
  const Tensor &x = c.in[0], y = keep(c.out, c);
  const Tensor hit = where(eq(x, y), ones_like(x), where(ne(x, x), ones_like(x), zeros_like(x)));
  return hit / sum(hit, c.attrs.a, true);
}

const OpDef kOps[] = {
    // y = sum_axes x:  dx = broadcast(g);  dy = sum_axes dx
    {OpId::sum, "sum", 1, reduce_shape<ReduceOp::sum>, reduce_fwd<ReduceOp::sum>,
     [](const RuleCtx& c, int, const Tensor& g) { return expand(keep(g, c), c.in[0].shape()); },
     [](const RuleCtx& c, int, const Tensor& t) { return sum(t, c.attrs.a, c.attrs.keepdim); }},
    // y = max_axes x:  dx = broadcast(g) w, w = [x = y] / #ties;  dy = sum_axes(w dx)
    {OpId::max, "max", 1, reduce_shape<ReduceOp::max>, reduce_fwd<ReduceOp::max>,
     [](const RuleCtx& c, int, const Tensor& g) { return keep(g, c) * arg_weight(c); },
     [](const RuleCtx& c, int, const Tensor& t) {
       return sum(t * arg_weight(c), c.attrs.a, c.attrs.keepdim);
     }},
    // y = min_axes x:  as max
    {OpId::min, "min", 1, reduce_shape<ReduceOp::min>, reduce_fwd<ReduceOp::min>,
     [](const RuleCtx& c, int, const Tensor& g) { return keep(g, c) * arg_weight(c); },
     [](const RuleCtx& c, int, const Tensor& t) {
       return sum(t * arg_weight(c), c.attrs.a, c.attrs.keepdim);
     }},
};

Tensor reduce(OpId id, const char* name, const Tensor& x, const Shape& axes, bool keepdim) {
  return apply(id, {x}, Attrs{.a = normalize_axes(axes, x.rank(), name), .keepdim = keepdim});
}
int64_t count(const Tensor& x, const Shape& axes) {
  int64_t n = 1;
  for (int64_t a : normalize_axes(axes, x.rank(), "mean")) n *= x.shape()[static_cast<int>(a)];
  return n;
}

}  // namespace

std::span<const OpDef> reduce_ops() { return kOps; }

// Summing bools counts them (as int64), as in NumPy.
Tensor sum(const Tensor& x, const Shape& axes, bool keepdim) {
  return reduce(OpId::sum, "sum", x.dtype() == DType::b8 ? cast(x, DType::i64) : x, axes, keepdim);
}
Tensor max(const Tensor& x, const Shape& axes, bool keepdim) {
  return reduce(OpId::max, "max", x, axes, keepdim);
}
Tensor min(const Tensor& x, const Shape& axes, bool keepdim) {
  return reduce(OpId::min, "min", x, axes, keepdim);
}

namespace {
// The float32 list of autocast (autocast.hpp): f on a 2-byte x runs on x widened to float32;
// the result stays float32 under autocast and is rounded back once otherwise.
template <class F>
Tensor in_float32(const Tensor& x, F&& f) {
  if (!is_half(x.dtype())) return f(x);
  Tensor r = f(cast(x, DType::f32));
  return detail::autocast_active() ? r : cast(r, x.dtype());
}
}  // namespace

// mean = sum / n
Tensor mean(const Tensor& x, const Shape& axes, bool keepdim) {
  check_floating("mean", x);
  return in_float32(x, [&](const Tensor& y) {
    return sum(y, axes, keepdim) / static_cast<double>(count(y, axes));
  });
}
// var = sum (x - mean)^2 / (n - correction)
Tensor var(const Tensor& x_in, const Shape& axes, int64_t correction, bool keepdim) {
  check_floating("var", x_in);
  if (is_half(x_in.dtype()))
    return in_float32(x_in, [&](const Tensor& y) { return var(y, axes, correction, keepdim); });
  const Tensor& x = x_in;
  const int64_t n = count(x, axes);
  if (n - correction <= 0)
    fail<ValueError>("var: ", n, " elements with correction ", correction,
                     " leave no degrees of freedom");
  const Tensor d = x - mean(x, axes, true);
  return sum(d * d, axes, keepdim) / static_cast<double>(n - correction);
}
namespace {
// x - m with m = max x over `axes` (kept), held constant: every function below is invariant
// to the shift, so its derivatives of every order are those of the unshifted formula. An
// infinite max shifts by 0 (an all -inf row stays -inf, not NaN).
Tensor shifted(const Tensor& x, const Shape& axes, Tensor* m_out = nullptr) {
  Tensor m = max(x, axes, true).detach();
  m = where(abs(m) < INFINITY, m, zeros_like(m));
  if (m_out) *m_out = m;
  return x - m;
}
}  // namespace

// logsumexp = m + log sum e^(x - m), m = max x held constant (the result does not depend on m)
Tensor logsumexp(const Tensor& x, const Shape& axes, bool keepdim) {
  check_floating("logsumexp", x);
  if (is_half(x.dtype()))
    return in_float32(x, [&](const Tensor& y) { return logsumexp(y, axes, keepdim); });
  Tensor m;
  const Tensor z = shifted(x, axes, &m);
  Tensor r = log(sum(exp(z), axes, true)) + m;
  return keepdim ? r
                 : reshape(r, reduced_shape(x.shape(), normalize_axes(axes, x.rank(), "logsumexp"),
                                            false));
}
// log_softmax = (x - m) - log sum e^(x - m): the shift is never added back, so large logits
// keep their answer (x - logsumexp(x) would lose it to rounding in m + log sum: at 1e15 the
// sum's log(2) rounds to 0.75, at 1e300 to 0).
Tensor log_softmax(const Tensor& x, int64_t axis) {
  check_floating("log_softmax", x);
  if (is_half(x.dtype()))
    return in_float32(x, [&](const Tensor& y) { return log_softmax(y, axis); });
  const Tensor z = shifted(x, {axis});
  return z - log(sum(exp(z), {axis}, true));
}
// softmax = e^(x - m) / sum e^(x - m)
Tensor softmax(const Tensor& x, int64_t axis) {
  check_floating("softmax", x);
  if (is_half(x.dtype())) return in_float32(x, [&](const Tensor& y) { return softmax(y, axis); });
  const Tensor e = exp(shifted(x, {axis}));
  return e / sum(e, {axis}, true);
}

Shape sample_axes(const Tensor& x) {
  Shape a;
  for (int d = 1; d < x.rank(); ++d) a.push_back(d);
  return a;
}

// Sums a broadcast cotangent back down to `shape`.
Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  if (!broadcastable_to(shape, x.shape()))
    fail<ShapeError>("sum_to: ", describe(x), " cannot be reduced to ", shape.str());
  const int lead = x.rank() - shape.rank();
  Shape axes;
  for (int d = 0; d < x.rank(); ++d)
    if (d < lead || (shape[d - lead] == 1 && x.shape()[d] != 1)) axes.push_back(d);
  Tensor r = axes.empty() ? x : sum(x, axes, true);
  return reshape(r, shape);
}

}  // namespace sg
