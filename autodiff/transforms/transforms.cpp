// The function transforms, each a few lines over grad() and DualLevel.
#include "autodiff/transforms/transforms.hpp"

#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/forward.hpp"

namespace sg {

Tensor detail::track(const Tensor& x) {
  if (x.requires_grad()) return x;
  Tensor leaf = x.detach();
  leaf.requires_grad_();
  copy_tangents(x, leaf);
  return leaf;
}

Tensor detail::unit_vectors(int64_t first, int64_t count, int64_t n, const Tensor& like) {
  const Device d = like.device();
  const Tensor cols = reshape(arange(n, DType::i64, d), {1, n});
  const Tensor rows = reshape(
      arange(static_cast<double>(first), static_cast<double>(first + count), 1, DType::i64, d),
      {count, 1});
  return cast(eq(cols, rows), like.dtype());
}

void detail::check_device(const char* op, const char* ref_name, const Tensor& ref, const char* what,
                          const Tensor& t) {
  if (!t.defined() || !ref.defined() || t.device() == ref.device()) return;
  auto on = [](const Tensor& a) {
    return cat(dtype_name(a.dtype()), a.shape().str(), " on ", device_name(a.device()));
  };
  fail<DeviceError>(op, ": ", what, " ", on(t), " is not on the device of ", ref_name, " ",
                    on(ref));
}

std::pair<Tensor, Tensor> value_and_grad(const Fn& f, const Tensor& x) {
  const bool keep_graph = grad_enabled();  // record the result only if someone may differentiate it
  EnableGradGuard on;
  const Tensor xt = detail::track(x);
  Tensor y = f(xt);
  if (y.numel() != 1)
    fail<GradError>("grad: f returned ", describe(y), "; a scalar is required (use vjp)");
  if (!y.requires_grad()) return {y, zeros_like(x)};
  Tensor g = sg::grad(y, {xt}, {.create_graph = keep_graph, .allow_unused = true})[0];
  return {y, g};
}
Tensor grad(const Fn& f, const Tensor& x) { return value_and_grad(f, x).second; }
Fn grad_fn(Fn f) {
  return [f = std::move(f)](const Tensor& x) { return grad(f, x); };
}

std::pair<Tensor, Tensor> vjp(const Fn& f, const Tensor& x, const Tensor& cotangent) {
  const bool keep_graph = grad_enabled();
  EnableGradGuard on;
  const Tensor xt = detail::track(x);
  Tensor y = f(xt);
  detail::check_device("vjp", "f(x)", y, "cotangent", cotangent);
  if (!y.requires_grad()) return {y, zeros_like(x)};
  Tensor g =
      sg::grad({y}, {xt}, {cotangent}, {.create_graph = keep_graph, .allow_unused = true})[0];
  return {y, g};
}

std::pair<Tensor, Tensor> jvp(const Fn& f, const Tensor& x, const Tensor& tangent) {
  detail::check_device("jvp", "x", x, "tangent", tangent);
  DualLevel level;
  const Tensor y = f(level.make_dual(x, tangent));
  Tensor t = level.tangent(y);
  // Return plain tensors: y's tangent entry is dropped with the level.
  return {y, t};
}

Tensor hvp(const Fn& f, const Tensor& x, const Tensor& v, HvpMode mode) {
  detail::check_device("hvp", "x", x, "direction", v);
  if (mode == HvpMode::forward_over_reverse) return jvp(grad_fn(f), x, v).second;
  const bool keep_graph = grad_enabled();
  EnableGradGuard on;
  const Tensor xt = detail::track(x);
  const Tensor g = sg::grad(f(xt), {xt}, {.create_graph = true})[0];
  return sg::grad(sum(g * v), {xt}, {.create_graph = keep_graph, .allow_unused = true})[0];
}

Tensor jacobian(const Fn& f, const Tensor& x, JacobianMode mode) {
  const int64_t n = x.numel();
  std::vector<Tensor> parts;
  if (mode == JacobianMode::forward) {
    for (int64_t j = 0; j < n; ++j) {
      const Tensor e = reshape(detail::unit_vectors(j, 1, n, x), x.shape());
      parts.push_back(jvp(f, x, e).second);  // column j, shape f(x).shape
    }
    const Tensor cols = stack(parts, -1);  // f.shape ++ [n]
    Shape s = cols.shape();
    s.erase(s.rank() - 1);
    for (int64_t d : x.shape()) s.push_back(d);
    return reshape(cols, s);
  }
  const bool keep_graph = grad_enabled();
  EnableGradGuard on;
  const Tensor xt = detail::track(x);
  const Tensor y = f(xt);
  for (int64_t i = 0; i < y.numel(); ++i) {
    const Tensor e = reshape(detail::unit_vectors(i, 1, y.numel(), y), y.shape());
    Tensor g = sg::grad({y}, {xt}, {e}, {.create_graph = keep_graph, .allow_unused = true})[0];
    parts.push_back(g);  // row i, shape x.shape
  }
  const Tensor rows = stack(parts, 0);
  Shape s = y.shape();
  for (int64_t d : x.shape()) s.push_back(d);
  return reshape(rows, s);
}

Tensor hessian(const Fn& f, const Tensor& x) {
  return jacobian(grad_fn(f), x, JacobianMode::forward);
}

Tensor divergence(const Fn& f, const Tensor& x, const Divergence& m) {
  if (x.rank() < 2) fail<ShapeError>("divergence: x must be [batch, ...], got ", describe(x));
  const int64_t B = x.dim(0), D = x.numel() / std::max<int64_t>(B, 1);
  Shape per_sample;  // the axes summed per sample
  for (int d = 1; d < x.rank(); ++d) per_sample.push_back(d);
  const bool keep_graph = grad_enabled();
  EnableGradGuard on;
  if (m.kind == Divergence::Kind::exact && m.chunk > 0) {
    // c coordinates per pass: the batch replicated c times, one backward for all of them.
    Tensor total;
    for (int64_t i0 = 0; i0 < D; i0 += m.chunk) {
      const int64_t c = std::min<int64_t>(m.chunk, D - i0);
      const Tensor xr = detail::track(reshape(expand(unsqueeze(x, 0),
                                                     [&] {
                                                       Shape s = x.shape();
                                                       s.insert(0, c);
                                                       return s;
                                                     }()),
                                              [&] {
                                                Shape s = x.shape();
                                                s[0] = c * B;
                                                return s;
                                              }()));
      const Tensor y = f(xr);
      // Cotangent: block k holds the unit vector of coordinate i0 + k for every sample.
      Tensor e = detail::unit_vectors(i0, c, D, x);
      e = reshape(expand(reshape(e, {c, 1, D}), {c, B, D}), y.shape());
      const Tensor g =
          sg::grad({y}, {xr}, {e}, {.create_graph = keep_graph, .allow_unused = true})[0];
      const Tensor part = sum(reshape(g * e, {c, B, D}), {0, 2});
      total = total.defined() ? total + part : part;
    }
    return total;
  }
  const Tensor xt = detail::track(x);
  const Tensor y = f(xt);
  if (!(y.shape() == x.shape()))
    fail<ShapeError>("divergence: f maps ", describe(x), " to ", describe(y),
                     "; shapes must match");
  Tensor total;
  const int64_t passes = m.kind == Divergence::Kind::exact ? D : m.probes;
  for (int64_t i = 0; i < passes; ++i) {
    Tensor v;
    if (m.kind == Divergence::Kind::exact) {
      v = reshape(expand(detail::unit_vectors(i, 1, D, x), {B, D}), x.shape());
    } else {
      if (!m.gen) fail<ValueError>("divergence: Hutchinson needs a generator");
      v = m.kind == Divergence::Kind::hutchinson_gaussian ? randn_like(x, *m.gen)
                                                          : rademacher_like(x, *m.gen);
    }
    const Tensor g =
        sg::grad({y}, {xt}, {v}, {.create_graph = keep_graph, .allow_unused = true})[0];
    const Tensor part = sum(g * v, per_sample);
    total = total.defined() ? total + part : part;
  }
  return m.kind == Divergence::Kind::exact ? total : total / static_cast<double>(m.probes);
}

}  // namespace sg
