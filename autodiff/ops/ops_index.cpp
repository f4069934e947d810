// Op table, indexing family: index_select, gather and scatter_add (int64 indices, checked
// against the axis extent by the backend), and one_hot built from comparisons.
#include "autodiff/ops/op_table.hpp"

namespace sg {
namespace {

void check_index(const char* op, const Tensor& idx, const Tensor& x) {
  if (idx.dtype() != DType::i64) fail<DTypeError>(op, ": index must be int64, got ", describe(idx));
  if (!(idx.device() == x.device()))
    fail<DeviceError>(op, ": index on ", device_name(idx.device()), " but input on ",
                      device_name(x.device()));
}

// index_select(x, axis, idx[k]): out = x with axis `axis` replaced by x[..., idx, ...]
Meta index_select_shape(std::span<const Tensor> in, const Attrs& a) {
  check_index("index_select", in[1], in[0]);
  if (in[1].rank() != 1) fail<ShapeError>("index_select: index must be 1-D, got ", describe(in[1]));
  Shape s = in[0].shape();
  s[static_cast<int>(a.axis)] = in[1].numel();
  return {s, in[0].dtype(), in[0].device()};
}
// The 1-D index placed on `axis` and broadcast over `shape` (a view, no copy).
Tensor spread_index(const Tensor& idx, int axis, const Shape& shape) {
  Shape s = Shape::filled(shape.rank(), 1);
  s[axis] = idx.numel();
  return expand(reshape(idx, s), shape);
}
Tensor index_select_fwd(std::span<const Tensor> in, const Attrs& a, const Meta& m) {
  Tensor out = fresh(m);
  const int ax = static_cast<int>(a.axis);
  if (out.numel())
    backend_of(out).gather(kview(in[0]), kview(spread_index(in[1], ax, m.shape)), ax, kview(out));
  return out;
}

// gather(x, axis, idx): out[i] = x[i with i_axis := idx[i]], out.shape = idx.shape
Meta gather_shape(std::span<const Tensor> in, const Attrs& a) {
  const Tensor &x = in[0], &idx = in[1];
  check_index("gather", idx, x);
  bool ok = idx.rank() == x.rank();
  for (int d = 0; ok && d < x.rank(); ++d) ok = d == a.axis || idx.shape()[d] <= x.shape()[d];
  if (!ok)
    fail<ShapeError>("gather: index ", describe(idx), " does not fit input ", describe(x),
                     " off axis ", a.axis);
  return {idx.shape(), x.dtype(), x.device()};
}
Tensor gather_fwd(std::span<const Tensor> in, const Attrs& a, const Meta& m) {
  Tensor out = fresh(m);
  if (out.numel())
    backend_of(out).gather(kview(in[0]), kview(in[1]), static_cast<int>(a.axis), kview(out));
  return out;
}

// scatter_add(base, axis, idx, src): out = base; out[i with i_axis := idx[i]] += src[i]
Meta scatter_add_shape(std::span<const Tensor> in, const Attrs& a) {
  const Tensor &base = in[0], &idx = in[1], &src = in[2];
  check_index("scatter_add", idx, base);
  check_same_dtype("scatter_add", std::vector<Tensor>{base, src});
  bool ok = idx.shape() == src.shape() && idx.rank() == base.rank();
  for (int d = 0; ok && d < base.rank(); ++d) ok = d == a.axis || idx.shape()[d] <= base.shape()[d];
  if (!ok)
    fail<ShapeError>("scatter_add: index ", describe(idx), " and source ", describe(src),
                     " do not fit ", describe(base), " on axis ", a.axis);
  return {base.shape(), base.dtype(), base.device()};
}
Tensor scatter_add_fwd(std::span<const Tensor> in, const Attrs& a, const Meta& m) {
  Tensor out = fresh(m);
  if (out.numel()) {
    backend_of(out).copy(kview(in[0]), kview(out));
    if (in[2].numel())
      backend_of(out).scatter_add(kview(in[1]), kview(in[2]), static_cast<int>(a.axis), kview(out));
  }
  return out;
}

const OpDef kOps[] = {
    // y = x[idx] on attrs.axis:  dx = scatter_add(0, idx, g);  dy = index_select(dx)
    {OpId::index_select, "index_select", 2, index_select_shape, index_select_fwd,
     [](const RuleCtx& c, int, const Tensor& g) {
       const int ax = static_cast<int>(c.attrs.axis);
       return scatter_add(zeros_like(c.in[0]), ax, spread_index(c.in[1], ax, g.shape()), g);
     },
     [](const RuleCtx& c, int, const Tensor& t) { return index_select(t, c.attrs.axis, c.in[1]); },
     /*nondiff_inputs=*/0b10u},
    // y = gather(x, idx):  dx = scatter_add(0, idx, g);  dy = gather(dx, idx)
    {OpId::gather, "gather", 2, gather_shape, gather_fwd,
     [](const RuleCtx& c, int, const Tensor& g) {
       return scatter_add(zeros_like(c.in[0]), c.attrs.axis, c.in[1], g);
     },
     [](const RuleCtx& c, int, const Tensor& t) { return gather(t, c.attrs.axis, c.in[1]); },
     /*nondiff_inputs=*/0b10u},
    // y = base + scatter(src, idx):  dbase = g, dsrc = gather(g, idx)
    {OpId::scatter_add, "scatter_add", 3, scatter_add_shape, scatter_add_fwd,
     [](const RuleCtx& c, int i, const Tensor& g) {
       return i == 0 ? g : gather(g, c.attrs.axis, c.in[1]);
     },
     [](const RuleCtx& c, int i, const Tensor& t) {
       return i == 0 ? t : scatter_add(zeros_like(c.out), c.attrs.axis, c.in[1], t);
     },
     /*nondiff_inputs=*/0b010u},
};

}  // namespace

std::span<const OpDef> index_ops() { return kOps; }

Tensor index_select(const Tensor& x, int64_t axis, const Tensor& index) {
  return apply(OpId::index_select, {x, index},
               Attrs{.axis = normalize_axis(axis, x.rank(), "index_select")});
}
Tensor gather(const Tensor& x, int64_t axis, const Tensor& index) {
  return apply(OpId::gather, {x, index}, Attrs{.axis = normalize_axis(axis, x.rank(), "gather")});
}
Tensor scatter_add(const Tensor& base, int64_t axis, const Tensor& index, const Tensor& src) {
  return apply(OpId::scatter_add, {base, index, src},
               Attrs{.axis = normalize_axis(axis, base.rank(), "scatter_add")});
}
// one_hot(idx, n)[..., k] = [idx == k]
Tensor one_hot(const Tensor& index, int64_t classes, DType dtype) {
  if (index.dtype() != DType::i64)
    fail<DTypeError>("one_hot: index must be int64, got ", describe(index));
  if (classes <= 0) fail<ValueError>("one_hot: classes must be positive, got ", classes);
  if (index.numel() && (min(index).item() < 0 || max(index).item() >= static_cast<double>(classes)))
    fail<ValueError>("one_hot: indices of ", describe(index), " must lie in [0, ", classes, ")");
  const Tensor hit = eq(unsqueeze(index, -1), arange(classes, DType::i64, index.device()));
  return cast(hit, dtype);
}

}  // namespace sg
