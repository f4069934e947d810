// Op table, movement family: reshape, permute, expand and slice are views (no copy) when the
// layout allows; pad, concat, copy, cast and to_device write new tensors. Plus the public
// composites on top of them: transpose, squeeze/unsqueeze, flatten, select, stack.
#include <algorithm>
#include <numeric>

#include "autodiff/ops/op_table.hpp"
#include "autodiff/tape/autograd.hpp"

namespace sg {
namespace {

Meta same_meta(const Tensor& x, const Shape& s) { return {s, x.dtype(), x.device()}; }
Tensor copy_to_new(const Tensor& x, DType dtype, Device device) {
  Tensor out = empty(x.shape(), dtype, device);
  if (out.numel() == 0) return out;
  if (x.device() == device) {
    backend_of(out).copy(kview(x), kview(out));
  } else if (!x.device().is_cpu() && !device.is_cpu()) {
    // Between two devices that are not the host: the backend's direct copy where it has one
    // (CUDA: a peer copy cuda:i -> cuda:j), else through host memory.
    if (x.device().type == device.type) {
      const Tensor src =
          x.is_contiguous() && x.dtype() == dtype ? x : copy_to_new(x, dtype, x.device());
      if (backend_for(device).copy_between_devices(
              out.impl()->data_ptr(), device, src.impl()->data_ptr(), x.device(),
              static_cast<std::size_t>(out.numel()) * itemsize(dtype)))
        return out;
    }
    const Tensor host = copy_to_new(x, dtype, Device::cpu());
    return copy_to_new(host, dtype, device);
  } else {
    // Host <-> device: make x contiguous with the target dtype on its own device, then memcpy.
    const Tensor src =
        x.is_contiguous() && x.dtype() == dtype ? x : copy_to_new(x, dtype, x.device());
    const bool to_host = device.is_cpu();
    Backend& dev = backend_for(to_host ? x.device() : device);
    dev.memcpy_host(out.impl()->data_ptr(), src.impl()->data_ptr(),
                    static_cast<std::size_t>(out.numel()) * itemsize(dtype), to_host);
  }
  return out;
}

Meta reshape_shape(std::span<const Tensor> in, const Attrs& a) {
  if (a.a.numel() != in[0].numel())
    fail<ShapeError>("reshape: cannot view ", describe(in[0]), " as ", a.a.str());
  return same_meta(in[0], a.a);
}
Tensor reshape_fwd(std::span<const Tensor> in, const Attrs&, const Meta& m) {
  const Tensor x =
      in[0].is_contiguous() ? in[0] : copy_to_new(in[0], in[0].dtype(), in[0].device());
  return make_view(x, m.shape, contiguous_strides(m.shape), x.offset());
}

Meta permute_shape(std::span<const Tensor> in, const Attrs& a) {
  const int r = in[0].rank();
  if (a.a.rank() != r)
    fail<ShapeError>("permute: permutation ", a.a.str(), " for ", describe(in[0]));
  Shape seen = Shape::filled(r, 0), s;
  for (int64_t p : a.a) {
    if (p < 0 || p >= r || seen[static_cast<int>(p)]++)
      fail<ShapeError>("permute: ", a.a.str(), " is not a permutation of ", r, " axes");
    s.push_back(in[0].shape()[static_cast<int>(p)]);
  }
  return same_meta(in[0], s);
}
Tensor permute_fwd(std::span<const Tensor> in, const Attrs& a, const Meta& m) {
  Shape st;
  for (int64_t p : a.a) st.push_back(in[0].strides()[static_cast<int>(p)]);
  return make_view(in[0], m.shape, st, in[0].offset());
}
Shape inverse_perm(const Shape& p) {
  Shape inv = Shape::filled(p.rank(), 0);
  for (int i = 0; i < p.rank(); ++i) inv[static_cast<int>(p[i])] = i;
  return inv;
}

Meta expand_shape(std::span<const Tensor> in, const Attrs& a) {
  if (!broadcastable_to(in[0].shape(), a.a))
    fail<ShapeError>("expand: ", describe(in[0]), " cannot be broadcast to ", a.a.str());
  return same_meta(in[0], a.a);
}
Tensor expand_fwd(std::span<const Tensor> in, const Attrs&, const Meta& m) {
  return make_view(in[0], m.shape, broadcast_strides(in[0].shape(), in[0].strides(), m.shape),
                   in[0].offset());
}

// slice: attrs.axis, attrs.a = {start, stop, step} (already clamped, step > 0)
Meta slice_shape(std::span<const Tensor> in, const Attrs& a) {
  Shape s = in[0].shape();
  const int ax = static_cast<int>(a.axis);
  s[ax] = a.a[1] > a.a[0] ? (a.a[1] - a.a[0] + a.a[2] - 1) / a.a[2] : 0;
  return same_meta(in[0], s);
}
Tensor slice_fwd(std::span<const Tensor> in, const Attrs& a, const Meta& m) {
  Shape st = in[0].strides();
  const int ax = static_cast<int>(a.axis);
  const int64_t off = in[0].offset() + a.a[0] * st[ax];
  st[ax] *= a.a[2];
  return make_view(in[0], m.shape, st, m.shape.numel() ? off : in[0].offset());
}
// The adjoint of slice: g placed at the sliced positions of a zero tensor of x's shape.
Tensor unslice(const Tensor& g, const Tensor& x, const Attrs& a) {
  const int ax = static_cast<int>(a.axis);
  if (a.a[2] == 1) {
    Shape before = Shape::filled(x.rank(), 0), after = Shape::filled(x.rank(), 0);
    before[ax] = a.a[0];
    after[ax] = x.shape()[ax] - a.a[0] - g.shape()[ax];
    return pad(g, before, after);
  }
  Shape ishape = Shape::filled(x.rank(), 1);
  ishape[ax] = g.shape()[ax];
  const Tensor idx = expand(reshape(arange(static_cast<double>(a.a[0]),
                                           static_cast<double>(a.a[0] + a.a[2] * g.shape()[ax]),
                                           static_cast<double>(a.a[2]), DType::i64, g.device()),
                                    ishape),
                            g.shape());
  return scatter_add(zeros(x.shape(), g.dtype(), g.device()), ax, idx, g);
}

// pad: attrs.a = before, attrs.b = after (non-negative), attrs.scalar = fill value
Meta pad_shape(std::span<const Tensor> in, const Attrs& a) {
  const Tensor& x = in[0];
  if (a.a.rank() != x.rank() || a.b.rank() != x.rank())
    fail<ShapeError>("pad: padding ", a.a.str(), "/", a.b.str(), " does not match ", describe(x));
  Shape s = x.shape();
  for (int d = 0; d < x.rank(); ++d) {
    if (a.a[d] < 0 || a.b[d] < 0)
      fail<ShapeError>("pad: negative padding ", a.a.str(), "/", a.b.str());
    s[d] += a.a[d] + a.b[d];
  }
  return same_meta(x, s);
}
Tensor interior(const Tensor& out, const Shape& before, const Shape& inner) {
  int64_t off = 0;
  for (int d = 0; d < out.rank(); ++d) off += before[d] * out.strides()[d];
  return make_view(out, inner, out.strides(), out.offset() + off);
}
Tensor pad_fwd(std::span<const Tensor> in, const Attrs& a, const Meta& m) {
  Tensor out = full(m.shape, a.scalar, m.dtype, m.device);
  if (in[0].numel()) backend_of(out).copy(kview(in[0]), kview(interior(out, a.a, in[0].shape())));
  return out;
}
Tensor unpad(const Tensor& g, const Tensor& x, const Attrs& a) {
  Tensor r = g;
  for (int d = 0; d < x.rank(); ++d)
    if (a.a[d] || a.b[d]) r = slice(r, d, a.a[d], a.a[d] + x.shape()[d]);
  return r;
}

// concat: attrs.axis
Meta concat_shape(std::span<const Tensor> in, const Attrs& a) {
  if (in.empty()) fail<ValueError>("concat: no tensors");
  check_same_device("concat", in);
  check_same_dtype("concat", in);
  Shape s = in[0].shape();
  const int ax = static_cast<int>(a.axis);
  s[ax] = 0;
  for (const Tensor& t : in) {
    bool ok = t.rank() == s.rank();
    for (int d = 0; ok && d < s.rank(); ++d) ok = d == ax || t.shape()[d] == s[d];
    if (!ok)
      fail<ShapeError>("concat: ", describe(t), " does not match ", describe(in[0]), " off axis ",
                       ax);
    s[ax] += t.shape()[ax];
  }
  return same_meta(in[0], s);
}
Tensor concat_fwd(std::span<const Tensor> in, const Attrs& a, const Meta& m) {
  Tensor out = fresh(m);
  const int ax = static_cast<int>(a.axis);
  Shape before = Shape::filled(m.shape.rank(), 0);
  for (const Tensor& t : in) {
    if (t.numel()) backend_of(out).copy(kview(t), kview(interior(out, before, t.shape())));
    before[ax] += t.shape()[ax];
  }
  return out;
}
int64_t concat_offset(const RuleCtx& c, int i) {
  int64_t off = 0;
  for (int j = 0; j < i; ++j) off += c.in[j].shape()[static_cast<int>(c.attrs.axis)];
  return off;
}

Meta cast_shape(std::span<const Tensor> in, const Attrs& a) {
  return {in[0].shape(), a.dtype, in[0].device()};
}
Meta copy_shape(std::span<const Tensor> in, const Attrs&) {
  return same_meta(in[0], in[0].shape());
}

const OpDef kOps[] = {
    // reshape to attrs.a:  dx = reshape(g, x.shape)
    {OpId::reshape, "reshape", 1, reshape_shape, reshape_fwd,
     [](const RuleCtx& c, int, const Tensor& g) { return reshape(g, c.in[0].shape()); },
     [](const RuleCtx& c, int, const Tensor& t) { return reshape(t, c.out.shape()); }},
    // permute by attrs.a:  dx = permute(g, inverse)
    {OpId::permute, "permute", 1, permute_shape, permute_fwd,
     [](const RuleCtx& c, int, const Tensor& g) { return permute(g, inverse_perm(c.attrs.a)); },
     [](const RuleCtx& c, int, const Tensor& t) { return permute(t, c.attrs.a); }},
    // broadcast to attrs.a:  dx = sum_to(g, x.shape) (done by the engine)
    {OpId::expand, "expand", 1, expand_shape, expand_fwd,
     [](const RuleCtx&, int, const Tensor& g) { return g; },
     [](const RuleCtx& c, int, const Tensor& t) { return expand(t, c.attrs.a); }},
    // x[start:stop:step] on attrs.axis:  dx = g placed into zeros
    {OpId::slice, "slice", 1, slice_shape, slice_fwd,
     [](const RuleCtx& c, int, const Tensor& g) { return unslice(g, c.in[0], c.attrs); },
     [](const RuleCtx& c, int, const Tensor& t) {
       return slice(t, c.attrs.axis, c.attrs.a[0], c.attrs.a[1], c.attrs.a[2]);
     }},
    // constant padding:  dx = the interior of g
    {OpId::pad, "pad", 1, pad_shape, pad_fwd,
     [](const RuleCtx& c, int, const Tensor& g) { return unpad(g, c.in[0], c.attrs); },
     [](const RuleCtx& c, int, const Tensor& t) { return pad(t, c.attrs.a, c.attrs.b, 0.0); }},
    // concat on attrs.axis:  dx_i = g's block i;  dy = concat(dx_i), as a sum of padded blocks
    {OpId::concat, "concat", -1, concat_shape, concat_fwd,
     [](const RuleCtx& c, int i, const Tensor& g) {
       const int64_t off = concat_offset(c, i);
       return slice(g, c.attrs.axis, off, off + c.in[i].shape()[static_cast<int>(c.attrs.axis)]);
     },
     [](const RuleCtx& c, int i, const Tensor& t) {
       const int ax = static_cast<int>(c.attrs.axis);
       Shape before = Shape::filled(t.rank(), 0), after = Shape::filled(t.rank(), 0);
       before[ax] = concat_offset(c, i);
       after[ax] = c.out.shape()[ax] - before[ax] - t.shape()[ax];
       return pad(t, before, after);
     }},
    // index_select (ops_index.cpp), gather, scatter_add come from the index family.
    // cast to attrs.dtype:  dx = cast(g, x.dtype)
    {OpId::cast, "cast", 1, cast_shape,
     [](std::span<const Tensor> in, const Attrs& a, const Meta&) {
       return copy_to_new(in[0], a.dtype, in[0].device());
     },
     [](const RuleCtx& c, int, const Tensor& g) { return cast(g, c.in[0].dtype()); },
     [](const RuleCtx& c, int, const Tensor& t) {
       return is_floating(c.attrs.dtype) ? cast(t, c.attrs.dtype) : Tensor();
     }},
    // contiguous copy:  dx = g
    {OpId::copy, "copy", 1, copy_shape,
     [](std::span<const Tensor> in, const Attrs&, const Meta&) {
       return copy_to_new(in[0], in[0].dtype(), in[0].device());
     },
     [](const RuleCtx&, int, const Tensor& g) { return g; },
     [](const RuleCtx&, int, const Tensor& t) { return t; }},
    // move to attrs.device:  dx = g moved back
    {OpId::to_device, "to_device", 1,
     [](std::span<const Tensor> in, const Attrs& a) {
       return Meta{in[0].shape(), in[0].dtype(), a.device};
     },
     [](std::span<const Tensor> in, const Attrs& a, const Meta&) {
       return copy_to_new(in[0], in[0].dtype(), a.device);
     },
     [](const RuleCtx& c, int, const Tensor& g) { return to_device(g, c.in[0].device()); },
     [](const RuleCtx& c, int, const Tensor& t) { return to_device(t, c.attrs.device); }},
};

}  // namespace

std::span<const OpDef> shape_ops() { return kOps; }

Tensor reshape(const Tensor& x, const Shape& shape) {
  Shape s = shape;
  int infer = -1;
  int64_t known = 1;
  for (int d = 0; d < s.rank(); ++d) {
    if (s[d] == -1) {
      if (infer >= 0) fail<ShapeError>("reshape: more than one -1 in ", shape.str());
      infer = d;
    } else if (s[d] < 0) {
      fail<ShapeError>("reshape: extent ", s[d], " in ", shape.str(),
                       " (extents are >= 0, or -1 for one inferred extent)");
    } else if (__builtin_mul_overflow(known, s[d], &known)) {
      fail<ShapeError>("reshape: cannot view ", describe(x), " as ", shape.str());
    }
  }
  if (infer >= 0) {
    if (known == 0 || x.numel() % known)
      fail<ShapeError>("reshape: cannot view ", describe(x), " as ", shape.str());
    s[infer] = x.numel() / known;
  }
  return apply(OpId::reshape, {x}, Attrs{.a = s});
}
Tensor permute(const Tensor& x, const Shape& perm) {
  Shape p;
  for (int64_t a : perm) p.push_back(normalize_axis(a, x.rank(), "permute"));
  return apply(OpId::permute, {x}, Attrs{.a = p});
}
Tensor transpose(const Tensor& x, int64_t a, int64_t b) {
  const int r = x.rank();
  Shape p;
  for (int i = 0; i < r; ++i) p.push_back(i);
  std::swap(p[normalize_axis(a, r, "transpose")], p[normalize_axis(b, r, "transpose")]);
  return apply(OpId::permute, {x}, Attrs{.a = p});
}
Tensor expand(const Tensor& x, const Shape& shape) {
  return apply(OpId::expand, {x}, Attrs{.a = shape});
}
Tensor squeeze(const Tensor& x, int64_t axis) {
  const int ax = normalize_axis(axis, x.rank(), "squeeze");
  if (x.shape()[ax] != 1)
    fail<ShapeError>("squeeze: axis ", axis, " of ", describe(x), " is not 1");
  Shape s = x.shape();
  s.erase(ax);
  return reshape(x, s);
}
Tensor unsqueeze(const Tensor& x, int64_t axis) {
  const int ax = normalize_axis(axis, x.rank() + 1, "unsqueeze");
  Shape s = x.shape();
  s.insert(ax, 1);
  return reshape(x, s);
}
Tensor flatten(const Tensor& x, int64_t start_axis) {
  const int st = normalize_axis(start_axis, x.rank(), "flatten");
  Shape s;
  for (int d = 0; d < st; ++d) s.push_back(x.shape()[d]);
  s.push_back(-1);
  return reshape(x, s);
}
Tensor slice(const Tensor& x, int64_t axis, int64_t start, int64_t stop, int64_t step) {
  const int ax = normalize_axis(axis, x.rank(), "slice");
  if (step <= 0) fail<ValueError>("slice: step must be positive, got ", step);
  const int64_t n = x.shape()[ax];
  auto clampi = [n](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + n : i, 0, n); };
  start = clampi(start);
  stop = std::max(start, clampi(stop));
  return apply(OpId::slice, {x}, Attrs{.a = {start, stop, step}, .axis = ax});
}
Tensor select(const Tensor& x, int64_t axis, int64_t index) {
  const int ax = normalize_axis(axis, x.rank(), "select");
  const int64_t n = x.shape()[ax];
  if (index < -n || index >= n)
    fail<ShapeError>("select: index ", index, " out of range for axis ", axis, " of ", describe(x));
  if (index < 0) index += n;
  return squeeze(slice(x, ax, index, index + 1), ax);
}
Tensor pad(const Tensor& x, const Shape& before, const Shape& after, double value) {
  return apply(OpId::pad, {x}, Attrs{.a = before, .b = after, .scalar = value});
}
Tensor concat(const std::vector<Tensor>& xs, int64_t axis) {
  if (xs.empty()) fail<ValueError>("concat: no tensors");
  const int ax = normalize_axis(axis, xs[0].rank(), "concat");
  const std::vector<Tensor> p = promote_halves(xs);
  return apply(OpId::concat, std::span<const Tensor>(p), Attrs{.axis = ax});
}
Tensor stack(const std::vector<Tensor>& xs, int64_t axis) {
  if (xs.empty()) fail<ValueError>("stack: no tensors");
  std::vector<Tensor> u;
  for (const Tensor& x : xs)
    u.push_back(unsqueeze(x, normalize_axis(axis, xs[0].rank() + 1, "stack")));
  return concat(u, axis);
}
Tensor cast(const Tensor& x, DType dtype) {
  check_cast_values(x, dtype);
  if (is_floating(dtype)) return apply(OpId::cast, {x}, Attrs{.dtype = dtype});
  NoGradGuard guard;  // integer and bool results carry no gradient
  return apply(OpId::cast, {x}, Attrs{.dtype = dtype});
}
Tensor contiguous(const Tensor& x) { return x.is_contiguous() ? x : apply(OpId::copy, {x}); }
Tensor to_device(const Tensor& x, Device device) {
  return x.device() == device ? x : apply(OpId::to_device, {x}, Attrs{.device = device});
}

}  // namespace sg
